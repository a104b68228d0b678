"""Drift figures: PSI of each input feature on a stable day, the first day of a season shift and of a tracking fault.

    .venv/bin/python benchmarks/drift.py [--profiles 20000] [--days 10]

Simulates ``days`` stable days, ingests them and builds the snapshots with Spark, then
for each scenario simulates the next day (stable, season shift, tracking fault), builds
its snapshot and compares it with the previous 7 days exactly as monitoring_stats does.
"""

import argparse
import shutil
import tempfile
from dataclasses import replace
from datetime import date, timedelta

from consumer_assets.asset_keys import RAW_EVENTS
from consumer_assets.features.build_snapshot import build_snapshot
from consumer_assets.features.histories import HistoryConfig
from consumer_assets.features.spark import SparkStorage, spark_session
from consumer_assets.monitoring.daily import MonitoringConfig, monitor_day
from consumer_assets.simulation import Drift, ShopSimulator, SimulationConfig
from consumer_assets.storage import StorageRoot

START = date(2026, 10, 1)
WINDOW = 7


def land(spark, root: StorageRoot, day_events) -> None:
    root.write_partition(RAW_EVENTS, day_events.day, day_events.events)
    build_snapshot(spark, SparkStorage(root), day_events.day, HistoryConfig(window_days=WINDOW), files=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=10)
    args = parser.parse_args()
    spark = spark_session("local[*]", {"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"})
    shop = SimulationConfig(profiles=args.profiles)
    drift_day = START + timedelta(days=args.days)
    scenarios = {
        "stable": Drift(),
        "season shift": Drift(season_shift_from=drift_day),
        "tracking fault": Drift(tracking_fault_from=drift_day),
    }
    config = MonitoringConfig(reference_days=7, history_window_days=WINDOW)
    with tempfile.TemporaryDirectory() as folder:
        base = StorageRoot(f"{folder}/base")
        for day_events in ShopSimulator(shop).simulate(START, args.days):
            land(spark, base, day_events)
        results = {}
        for name, drift in scenarios.items():
            copy = f"{folder}/{name.replace(' ', '_')}"
            shutil.copytree(base.uri, copy)
            root = StorageRoot(copy)
            *_, last = ShopSimulator(replace(shop, drift=drift)).simulate(START, args.days + 1)
            land(spark, root, last)
            monitoring = monitor_day(root, drift_day, config)
            results[name] = (
                {row["feature"]: row["psi"] for row in monitoring.input_drift},
                monitoring.event_volume["ratio"],
            )
    features = list(next(iter(results.values()))[0])
    print(f"PSI against the previous 7 days, {args.profiles:,} profiles, first day of each scenario ({drift_day})")
    print(f"  {'feature':<15}" + "".join(f"{name:>16}" for name in results))
    for feature in features:
        print(f"  {feature:<15}" + "".join(f"{psi[feature]:>16.4f}" for psi, _ in results.values()))
    print(f"  {'events / ref.':<15}" + "".join(f"{ratio:>16.2f}" for _, ratio in results.values()))


if __name__ == "__main__":
    main()
