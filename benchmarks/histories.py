"""daily_histories cost: seconds for one day of ~1 M events, and the cost of one day as the window grows.

    .venv/bin/python benchmarks/histories.py [--day-profiles 870000] [--curve-profiles 60000] [--windows 7 30 90]

Raw events are written straight from the simulator to raw_events partitions (the
JSON landing path has its own benchmark). Part one builds day D incrementally from
snapshot D-1 with a day of about a million events. Part two, for each window W, builds
snapshot D-1 over W days, then times day D built incrementally (from D-1 and D's
events) against day D built from scratch (from the W days of events): the first stays
flat as W grows, the second grows with it.
"""

import argparse
import tempfile
import time
from datetime import date, timedelta

from consumer_assets.features.histories import HistoryConfig, histories_from_scratch, histories_incremental
from consumer_assets.features.spark import SparkStorage, spark_session
from consumer_assets.datasets import HISTORIES, RAW_EVENTS
from consumer_assets.simulation import ShopSimulator, SimulationConfig
from consumer_assets.storage import StorageRoot

D = date(2026, 12, 31)


def land_raw(root: StorageRoot, profiles: int, days: int) -> int:
    simulator = ShopSimulator(SimulationConfig(profiles=profiles))
    events = 0
    for day_events in simulator.simulate(D - timedelta(days=days - 1), days):
        root.write_partition(RAW_EVENTS, day_events.day, day_events.events)
        events += day_events.events.num_rows
    return events


def timed(label: str, build) -> float:
    started = time.perf_counter()
    manifest = build()
    seconds = time.perf_counter() - started
    print(f"  {label:<42} {seconds:>8.1f} s  ({manifest.rows:,} profiles)")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day-profiles", type=int, default=870_000, help="profiles for the ~1 M events day")
    parser.add_argument("--curve-profiles", type=int, default=60_000)
    parser.add_argument("--windows", type=int, nargs="+", default=[7, 30, 90])
    args = parser.parse_args()
    spark = spark_session("local[*]", {"spark.driver.memory": "8g", "spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false"})
    spark.range(1).count()  # start the JVM before timing

    with tempfile.TemporaryDirectory() as folder:
        root = StorageRoot(folder)
        bridge = SparkStorage(root)
        events = land_raw(root, args.day_profiles, 2)
        per_day = events // 2
        config = HistoryConfig(window_days=90)
        read = lambda dataset, days: spark.read.parquet(*bridge.input_paths(dataset, days))  # noqa: E731
        print(f"one day of {per_day:,} events (window {config.window_days} days, L={config.max_events})")
        timed("snapshot D-1 from scratch", lambda: bridge.write_partition(histories_from_scratch(read(RAW_EVENTS, [D - timedelta(days=1)]), D - timedelta(days=1), config), HISTORIES, D - timedelta(days=1), files=4))
        seconds = timed("snapshot D incremental", lambda: bridge.write_partition(histories_incremental(read(HISTORIES, [D - timedelta(days=1)]), read(RAW_EVENTS, [D]), D, config), HISTORIES, D, files=4))
        print(f"  events/s                                   {per_day / seconds:>8,.0f}")

    print(f"\ncost of one day as the window grows ({args.curve_profiles:,} profiles)")
    print(f"  {'window':>6} {'events in window':>17} {'incremental s':>14} {'from scratch s':>15}")
    for window in args.windows:
        with tempfile.TemporaryDirectory() as folder:
            root = StorageRoot(folder)
            bridge = SparkStorage(root)
            read = lambda dataset, days: spark.read.parquet(*bridge.input_paths(dataset, days))  # noqa: E731
            events = land_raw(root, args.curve_profiles, window + 1)
            config = HistoryConfig(window_days=window)
            before = [D - timedelta(days=k) for k in range(1, window + 1)]
            bridge.write_partition(histories_from_scratch(read(RAW_EVENTS, before), D - timedelta(days=1), config), HISTORIES, D - timedelta(days=1))
            started = time.perf_counter()
            bridge.write_partition(histories_incremental(read(HISTORIES, [D - timedelta(days=1)]), read(RAW_EVENTS, [D]), D, config), HISTORIES, D)
            incremental = time.perf_counter() - started
            started = time.perf_counter()
            window_days = [D - timedelta(days=k) for k in range(window)]
            bridge.write_partition(histories_from_scratch(read(RAW_EVENTS, window_days), D, config), "scratch", D)
            scratch = time.perf_counter() - started
            print(f"  {window:>6} {events:>17,} {incremental:>14.1f} {scratch:>15.1f}")


if __name__ == "__main__":
    main()
