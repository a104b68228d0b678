"""daily_histories cost: seconds for one day of ~1 M events, and the cost of one day as the window grows.

    .venv/bin/python benchmarks/histories.py [--day-profiles 870000] [--curve-profiles 60000] [--windows 7 30 90 180]

Raw events are written straight from the simulator to raw_events partitions (the
JSON landing path has its own benchmark). Part one builds day D from snapshot D-1
with a day of about a million events. Part two, for each window W, builds snapshot
D-1 over W days, then times day D three ways: as a layer of the profiles that
changed (what most days are), written in full from D-1 (a compaction day) and from
the W days of raw events. A layer's cost should stay flat as W grows; the other two
grow with the snapshot. The amortised figure spreads one compaction over the days
between two, as the default Compaction would schedule them for this layer size.
A layer rewrites each changed profile's kept history (at most L events), so its cost
follows the events it rewrites, which stop growing once histories reach L: the
microseconds per rewritten event show that the window itself adds nothing.
"""

import argparse
import math
import tempfile
import time
from datetime import date, timedelta

import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumer_assets.asset_keys import HISTORIES, RAW_EVENTS
from consumer_assets.features.build_snapshot import Compaction, build_snapshot
from consumer_assets.features.histories import HistoryConfig, histories_from_scratch
from consumer_assets.features.snapshots import layers_of
from consumer_assets.features.spark import SparkStorage, spark_session
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


def timed(build, repeat: int = 1):
    """(fastest seconds, result) of ``repeat`` runs: this machine's timings vary by a second or two."""
    best = math.inf
    for _ in range(repeat):
        started = time.perf_counter()
        result = build()
        best = min(best, time.perf_counter() - started)
    return best, result


def newest_layer_events(root: StorageRoot, day: date) -> int:
    """Events kept in the rows of the newest layer of ``day``: what the layer rewrote."""
    layer = layers_of(root.manifest(HISTORIES, day), day)[-1]
    prefix = root.partition_key(HISTORIES, day)
    return sum(
        pc.sum(pq.read_table(root.path(prefix, name), columns=["length"], filesystem=root.fs)["length"]).as_py() or 0
        for name in layer.files
    )


def days_between_compactions(base_rows: int, layer_rows: int, compaction: Compaction) -> int:
    """Days from one full snapshot to the next: layers are added until they reach the share or the count."""
    return min(math.ceil(compaction.max_change_share * base_rows / max(layer_rows, 1)), compaction.max_layers - 1) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day-profiles", type=int, default=870_000, help="profiles for the ~1 M events day")
    parser.add_argument("--curve-profiles", type=int, default=60_000)
    parser.add_argument("--windows", type=int, nargs="+", default=[7, 30, 90, 180])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each timing on the curve; the fastest counts")
    args = parser.parse_args()
    spark = spark_session(
        "local[*]", {"spark.driver.memory": "8g", "spark.sql.shuffle.partitions": "8", "spark.ui.enabled": "false"}
    )
    spark.range(1).count()  # start the JVM before timing
    compaction = Compaction()

    with tempfile.TemporaryDirectory() as folder:
        spark_storage = SparkStorage(StorageRoot(folder))
        events = land_raw(spark_storage.root, args.day_profiles, 2)
        per_day = events // 2
        config = HistoryConfig(window_days=90)
        print(f"one day of {per_day:,} events (window {config.window_days} days, L={config.max_events})")
        seconds, built = timed(lambda: build_snapshot(spark, spark_storage, D - timedelta(days=1), config, files=4))
        print(f"  snapshot D-1 from scratch   {seconds:>8.1f} s  ({built.manifest.rows:,} profiles)")
        seconds, built = timed(lambda: build_snapshot(spark, spark_storage, D, config, files=4, compaction=compaction))
        print(
            f"  snapshot D ({built.mode})   {seconds:>8.1f} s  ({built.manifest.rows:,} profiles, "
            f"{built.changed_profiles:,} written)"
        )
        print(f"  events/s                    {per_day / seconds:>8,.0f}")

    print(f"\ncost of one day as the window grows ({args.curve_profiles:,} profiles; seconds)")
    print(
        f"  {'window':>6} {'events in window':>17} {'profiles':>9} {'changed':>8} {'rewritten events':>17} "
        f"{'layer':>6} "
        f"{'us/event':>9} {'in full':>8} {'every':>6} {'amortised':>10} {'from scratch':>13}"
    )
    for window in args.windows:
        with tempfile.TemporaryDirectory() as folder:
            spark_storage = SparkStorage(StorageRoot(folder))
            read = lambda dataset, days: spark.read.parquet(*spark_storage.input_paths(dataset, days))  # noqa: E731
            events = land_raw(spark_storage.root, args.curve_profiles, window + 1)
            config = HistoryConfig(window_days=window)
            build_snapshot(spark, spark_storage, D - timedelta(days=1), config)
            layer_s, layer = timed(
                lambda: build_snapshot(spark, spark_storage, D, config, compaction=compaction), args.repeat
            )
            rewritten = newest_layer_events(spark_storage.root, D)
            full_s, full = timed(
                lambda: build_snapshot(spark, spark_storage, D, config, compaction=Compaction(max_change_share=0)),
                args.repeat,
            )
            window_days = [D - timedelta(days=k) for k in range(window)]
            scratch_s, _ = timed(
                lambda: spark_storage.write_partition(
                    histories_from_scratch(read(RAW_EVENTS, window_days), D, config), "scratch", D
                ),
                args.repeat,
            )
            assert (layer.mode, full.mode) == ("incremental", "compacted")
            every = days_between_compactions(full.manifest.rows, layer.changed_profiles, compaction)
            amortised = (layer_s * (every - 1) + full_s) / every
            print(
                f"  {window:>6} {events:>17,} {full.manifest.rows:>9,} {layer.changed_profiles:>8,} {rewritten:>17,} "
                f"{layer_s:>6.1f} "
                f"{layer_s / rewritten * 1e6:>9.1f} {full_s:>8.1f} "
                f"{every:>4} d {amortised:>10.1f} {scratch_s:>13.1f}"
            )


if __name__ == "__main__":
    main()
