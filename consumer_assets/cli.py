"""The ``consumer-assets`` command: simulate events, list models, roll the model in service back."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import date

from consumer_assets.model.store import ModelLoadError, ModelStore
from consumer_assets.resources import DEFAULT_ROOT
from consumer_assets.simulation import Drift, SimulationConfig, simulate_to_landing
from consumer_assets.storage import StorageError, StorageRoot
from consumer_assets.validation.gate import VERDICT


def _simulate(args: argparse.Namespace) -> int:
    root = StorageRoot(args.root)
    drift = Drift(season_shift_from=args.season_shift_from, tracking_fault_from=args.tracking_fault_from)
    config = SimulationConfig(profiles=args.profiles, seed=args.seed, horizon_days=args.horizon, drift=drift)
    started = time.perf_counter()
    landed = simulate_to_landing(root, args.start, args.days, config, bad_rate=args.bad_rate)
    seconds = time.perf_counter() - started
    events = sum(day.events for day in landed)
    print(f"landed {events:,} events over {len(landed)} days under {root.uri}/landing/events in {seconds:.1f} s ({events / seconds:,.0f} events/s)")
    return 0


def _models_list(args: argparse.Namespace) -> int:
    store = ModelStore(StorageRoot(args.root))
    serving = store.serving()
    print(f"{'version':<28} {'validated':<10} {'test AUC':>8}  serving")
    for version in store.versions():
        verdict = store.read_json(version, VERDICT)
        evaluation = store.read_json(version, "evaluation.json") or {}
        targets = evaluation.get("targets") or ["order_any"]
        auc = evaluation.get("candidate", {}).get(targets[0], {}).get("auc")
        state = "-" if verdict is None else ("passed" if verdict["passed"] else "REJECTED")
        marker = "<- in service" if serving and serving["version"] == version else ""
        shown = "-" if auc is None else f"{auc:.4f}"
        print(f"{version:<28} {state:<10} {shown:>8}  {marker}")
    return 0


def _models_promote(args: argparse.Namespace) -> int:
    """Roll back (or forward) to a version that passed the gate before; never to one that did not."""
    store = ModelStore(StorageRoot(args.root))
    verdict = store.read_json(args.version, VERDICT)
    if verdict is None or not verdict["passed"]:
        reason = "it was never validated" if verdict is None else "it failed the gate: " + "; ".join(verdict["failed"])
        print(f"error: refusing to serve {args.version}: {reason}", file=sys.stderr)
        return 2
    previous = store.serving()
    record = store.promote(args.version, {"promoted_by": "consumer-assets models promote", "reason": args.reason, "previous_version": previous["version"] if previous else None})
    print(f"serving {record['version']} since {record['since']} (was {record['previous_version']})")
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
    simulate.add_argument("--season-shift-from", type=date.fromisoformat, default=None, help="drift: from this day, browsing moves to the next season's categories")
    simulate.add_argument("--tracking-fault-from", type=date.fromisoformat, default=None, help="drift: from this day, the tracker loses 90%% of view events")
    simulate.set_defaults(handler=_simulate)

    models = commands.add_parser("models", help="the candidates and the model in service").add_subparsers(dest="models_command", required=True)
    listing = models.add_parser("list", help="every candidate, its verdict and test AUC, and which one serves")
    listing.set_defaults(handler=_models_list)
    promote = models.add_parser("promote", help="put a previously validated version (back) into service")
    promote.add_argument("version")
    promote.add_argument("--reason", default="manual rollback", help="kept in the serving history")
    promote.set_defaults(handler=_models_promote)
    for sub in (listing, promote):
        sub.add_argument("--root", default=os.environ.get("CONSUMER_ASSETS_ROOT", DEFAULT_ROOT), help="storage root (default: $CONSUMER_ASSETS_ROOT or .data)")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (StorageError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
