"""raw_events throughput: rows/s to parse, validate, de-duplicate and write one landed day.

.venv/bin/python benchmarks/raw_events.py [--profiles 400000] [--bad-rate 0.01]
"""

import argparse
import tempfile
import time
from datetime import date, timedelta

from consumer_assets.datasets import RAW_EVENTS
from consumer_assets.ingest.day import ingest_day, write_quarantine
from consumer_assets.simulation import ShopSimulator, SimulationConfig, land_day
from consumer_assets.storage import StorageRoot

DAY = date(2026, 10, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=400_000)
    parser.add_argument("--bad-rate", type=float, default=0.01)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = StorageRoot(folder)
        simulator = ShopSimulator(SimulationConfig(profiles=args.profiles))
        for day in (DAY - timedelta(days=1), DAY):
            land_day(root, simulator.simulate_day(day), bad_rate=args.bad_rate)
        # Yesterday is stored so that de-duplication reads a real look-back.
        previous = ingest_day(root, DAY - timedelta(days=1))
        root.write_partition(RAW_EVENTS, previous.day, previous.events)

        started = time.perf_counter()
        ingested = ingest_day(root, DAY)
        parsed = time.perf_counter()
        write_quarantine(root, ingested)
        root.write_partition(RAW_EVENTS, DAY, ingested.events)
        done = time.perf_counter()
    stats = ingested.stats
    print(f"rows read            {stats['rows_read']:>12,}")
    print(f"rows kept            {stats['rows_kept']:>12,}")
    print(f"rows quarantined     {stats['rows_quarantined']:>12,}")
    print(f"duplicates           {stats['duplicates']:>12,}")
    print(f"parse+validate s     {parsed - started:>12.2f}")
    print(f"write s              {done - parsed:>12.2f}")
    print(f"rows/s               {stats['rows_read'] / (done - started):>12,.0f}")


if __name__ == "__main__":
    main()
