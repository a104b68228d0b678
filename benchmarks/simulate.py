"""Simulator throughput: events/s for about a million events landed as gzip JSON lines.

.venv/bin/python benchmarks/simulate.py [--profiles 125000] [--days 7]
"""

import argparse
import tempfile
import time
from datetime import date

from consumer_assets.simulation import ShopSimulator, SimulationConfig, land_day
from consumer_assets.storage import StorageRoot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=125_000)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = StorageRoot(folder)
        started = time.perf_counter()
        simulator = ShopSimulator(SimulationConfig(profiles=args.profiles))
        setup = time.perf_counter() - started
        simulate_s = land_s = 0.0
        events = 0
        for day in range(args.days):
            t0 = time.perf_counter()
            day_events = simulator.simulate_day(date(2026, 10, 1 + day))
            t1 = time.perf_counter()
            land_day(root, day_events, bad_rate=0.01)
            t2 = time.perf_counter()
            simulate_s += t1 - t0
            land_s += t2 - t1
            events += day_events.events.num_rows
        total = time.perf_counter() - started
    print(f"profiles             {args.profiles:>12,}")
    print(f"days                 {args.days:>12,}")
    print(f"events               {events:>12,}")
    print(f"setup s              {setup:>12.2f}")
    print(f"simulate s           {simulate_s:>12.2f}")
    print(f"serialise+gzip s     {land_s:>12.2f}")
    print(f"total s              {total:>12.2f}")
    print(f"events/s             {events / total:>12,.0f}")


if __name__ == "__main__":
    main()
