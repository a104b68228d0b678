"""The ``consumer-assets`` command: simulate events (and, later, manage models)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import date

from consumer_assets.resources import DEFAULT_ROOT
from consumer_assets.simulation import SimulationConfig, simulate_to_landing
from consumer_assets.storage import StorageError, StorageRoot


def _simulate(args: argparse.Namespace) -> int:
    root = StorageRoot(args.root)
    config = SimulationConfig(profiles=args.profiles, seed=args.seed, horizon_days=args.horizon)
    started = time.perf_counter()
    landed = simulate_to_landing(root, args.start, args.days, config, bad_rate=args.bad_rate)
    seconds = time.perf_counter() - started
    events = sum(day.events for day in landed)
    print(f"landed {events:,} events over {len(landed)} days under {root.uri}/landing/events in {seconds:.1f} s ({events / seconds:,.0f} events/s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consumer-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    simulate = commands.add_parser("simulate", help="write simulated tracking events to the landing zone")
    simulate.add_argument("--root", default=os.environ.get("CONSUMER_ASSETS_ROOT", DEFAULT_ROOT), help="storage root: folder or s3://BUCKET/PREFIX (default: $CONSUMER_ASSETS_ROOT or .data)")
    simulate.add_argument("--start", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD")
    simulate.add_argument("--days", type=int, default=14, help="number of days (default 14)")
    simulate.add_argument("--profiles", type=int, default=SimulationConfig.profiles, help="number of profiles (default %(default)s)")
    simulate.add_argument("--seed", type=int, default=SimulationConfig.seed, help="random seed (default %(default)s)")
    simulate.add_argument("--horizon", type=int, default=SimulationConfig.horizon_days, help="label horizon H in days for the truth (default %(default)s)")
    simulate.add_argument("--bad-rate", type=float, default=0.0, help="share of rows that break the contract, plus one truncated file a day (default 0)")
    simulate.set_defaults(handler=_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
