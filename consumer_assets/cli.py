"""The ``consumer-assets`` command: simulate events, import a published event log, list models, roll the model in
service back, explain a score, serve online scores.

Exit status: 0 done, 1 a runtime error (named on stderr, no traceback), 2 a usage error (arguments, a missing setting).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import re
import sys
import time
from datetime import date
from pathlib import Path

from tqdm import tqdm

from consumer_assets import environment
from consumer_assets.ingest.public_logs import (
    CATALOGUE_FORMATS,
    FORMATS,
    ImportFormatError,
    import_catalogue,
    import_log,
    report_prefix,
)
from consumer_assets.model.store import EVALUATION, ModelLoadError, ModelStore
from consumer_assets.plots import explanation_timeline, png_bytes
from consumer_assets.serving.explain import ExplanationError, explain_profile
from consumer_assets.serving.online import LOOPBACK, NoStatesError, OnlineLimits, OnlineScorer, create_app
from consumer_assets.simulation import Drift, SimulationConfig, simulate_to_landing
from consumer_assets.storage import StorageError, StorageRoot
from consumer_assets.validation.evaluation import Evaluation
from consumer_assets.validation.gate import GateConfig, judge


def _simulate(args: argparse.Namespace) -> int:
    root = StorageRoot(args.root)
    drift = Drift(season_shift_from=args.season_shift_from, tracking_fault_from=args.tracking_fault_from)
    config = SimulationConfig(profiles=args.profiles, seed=args.seed, horizon_days=args.horizon, drift=drift)
    started = time.perf_counter()
    with tqdm(
        total=args.days, unit="day", desc="simulating", disable=None
    ) as bar:  # disable=None: no bar when not a terminal
        landed = simulate_to_landing(
            root,
            args.start,
            args.days,
            config,
            bad_rate=args.bad_rate,
            on_day=lambda day: bar.update(),
            article_attributes=not args.events_without_attributes,
        )
    seconds = time.perf_counter() - started
    events = sum(day.events for day in landed)
    print(
        f"landed {events:,} events and the catalogue over {len(landed)} days under {root.uri}/landing in "
        f"{seconds:.1f} s ({events / seconds:,.0f} events/s)"
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    root = StorageRoot(args.root)
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        print(f"error: no file {', '.join(missing)}", file=sys.stderr)
        return 1
    started = time.perf_counter()
    try:
        if args.format in CATALOGUE_FORMATS:
            reports = [import_catalogue(root, args.files, args.format)]
        else:
            reports = []
            for path in args.files:
                with tqdm(unit="row", unit_scale=True, desc=f"importing {path.name}", disable=None) as bar:
                    reports.append(import_log(root, path, args.format, on_block=bar.update))
    except ImportFormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for report in reports:
        reasons = ", ".join(f"{reason} {count:,}" for reason, count in sorted(report.rejected_reasons.items()))
        rejected = f"{report.rejected:,} row{'s' * (report.rejected != 1)} rejected{f' ({reasons})' if reasons else ''}"
        span = f"({report.days[0]} to {report.days[-1]})" if report.days else ""
        landed = (
            f"{len(report.days)} catalogue exports {span}, {report.landed:,} article lines, {report.unmapped:,} rows "
            "of other properties not mapped"
            if args.format in CATALOGUE_FORMATS
            else f"{report.landed:,} events over {len(report.days)} days {span}"
        )
        print(
            f"{report.source}: {landed}, {rejected}; rejected rows and the report in {root.uri}/{report_prefix(report)}"
        )
    days = sorted({day for report in reports for day in report.days})
    if not days:
        print(f"error: no row could be placed on a day; see {root.uri}/imports", file=sys.stderr)
        return 1
    print(
        f"landed under {root.uri}/landing in {time.perf_counter() - started:.1f} s; the days are daily partitions "
        f"from {days[0]}: set CONSUMER_ASSETS_START_DATE={days[0]} for the definitions, then materialise them or let "
        "the landing sensors run"
    )
    return 0


def _gate_state(store: ModelStore, version: str, evaluation: dict) -> str:
    """passed / REFUSED from the stored verdict; a candidate whose blocking checks stopped its run has none, so its
    stored evaluation is judged now by the default gate (marked *)."""
    verdict = store.read_verdict(version)
    if verdict is not None:
        return "passed" if verdict.passed else "REFUSED"
    if not evaluation or evaluation.get("load_error") is not None:
        return "not judged"
    outcomes = judge(Evaluation.from_json(evaluation), GateConfig())
    return "passed*" if all(v.passed for v in outcomes.values()) else "REFUSED*"


def _models_list(args: argparse.Namespace) -> int:
    store = ModelStore(StorageRoot(args.root))
    serving = store.serving()
    print(f"{'version':<28} {'gate':<10} {'test AUC':>8}  serving")
    for version in store.versions():
        evaluation = store.read_json(version, EVALUATION) or {}
        targets = evaluation.get("targets") or ["order_any"]
        auc = evaluation.get("candidate", {}).get(targets[0], {}).get("auc")
        marker = "<- in service" if serving and serving.version == version else ""
        shown = "-" if auc is None else f"{auc:.4f}"
        print(f"{version:<28} {_gate_state(store, version, evaluation):<10} {shown:>8}  {marker}")
    print(
        "* no verdict stored (a blocking check stopped the run): the stored evaluation judged now by the default gate"
    )
    return 0


def _models_promote(args: argparse.Namespace) -> int:
    """Roll back (or forward) to a version that passed the gate before, as a run of promote_model_job in the
    instance."""
    if not environment.DAGSTER_HOME.is_set():
        print(
            "error: a promotion is a Dagster run (promote_model_job) recorded in the instance at $DAGSTER_HOME, so "
            "that the UI "
            "and staleness tell the truth: set DAGSTER_HOME (make sets it to .dagster_home)",
            file=sys.stderr,
        )
        return 2
    import dagster as dg

    from consumer_assets.jobs import promote_model_job
    from consumer_assets.storage.resources import StorageResource

    storage = StorageResource(
        root=args.root, endpoint_url=environment.S3_ENDPOINT.value(), region=environment.S3_REGION.value()
    )
    with dg.DagsterInstance.get() as instance:
        result = promote_model_job.execute_in_process(
            run_config={"ops": {"promote_version": {"config": {"version": args.version, "reason": args.reason}}}},
            instance=instance,
            resources={"storage": storage},
            raise_on_error=False,
        )
    if not result.success:
        failures = [
            e.event_specific_data.error.message.strip()
            for e in result.all_events
            if e.event_type_value == "STEP_FAILURE"
        ]
        print(
            f"error: run {result.run_id} of promote_model_job failed: {'; '.join(failures) or 'see the run in the UI'}",
            file=sys.stderr,
        )
        return 1
    print(f"serving {result.output_for_node('promote_version')} (run {result.run_id} of promote_model_job)")
    return 0


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def plot_path(out: Path, profile_id: str, day: date) -> Path:
    """``explain-<id>-<day>.png`` inside ``out``, never a path the id makes: the id's letters, digits, ``_`` and ``-``
    (at most 64; anything else becomes ``_``) and, when that changed it, a hash of the whole id to keep names apart."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", profile_id[:64])
    if safe != profile_id:
        safe += "-" + hashlib.sha256(profile_id.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return out / f"explain-{safe}-{day}.png"


def _explain(args: argparse.Namespace) -> int:
    """Print a profile's events with each one's contribution to its score, and plot the trajectory."""
    try:
        result = explain_profile(StorageRoot(args.root), args.day, args.profile)
    except ExplanationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    explained = result.explanations
    events = explained.events.to_pylist()
    print(f"profile {result.profile_id} on {result.day}, model {result.model_version}")
    print(
        f"P({explained.target}) = {result.batch_score:.4f} (batch score); empty history: {explained.empty_score:.4f}; "
        f"{len(events)} events explained"
    )
    print(
        f"{'#':>3} {'before cut-off':>14} {'event':<17} {'category':<9} {'article':<10} {'P after':>8} "
        f"{'contribution':>12}"
    )
    for e in events:
        print(
            f"{e['position']:>3} {_duration(e['seconds_before_cutoff']):>14} {e['event_type']:<17} "
            f"{str(e['category_id']):<9} {str(e['article_id']):<10} "
            f"{e['probability']:>8.4f} {e['contribution']:>+12.4f}"
        )
    total = sum(e["contribution"] for e in events)
    print(
        f"sum of contributions {total:+.4f} = final {events[-1]['probability']:.4f} - empty {explained.empty_score:.4f}"
        if events
        else "no events"
    )
    plot = plot_path(args.out, result.profile_id, result.day)
    args.out.mkdir(parents=True, exist_ok=True)
    figure = explanation_timeline(
        result.profile_id,
        [e["seconds_before_cutoff"] / 3600 for e in events],
        [e["probability"] for e in events],
        [e["event_type"] for e in events],
        explained.empty_score,
    )
    with open(plot, "wb") as f:
        f.write(png_bytes(figure))
    print(f"plot written to {plot}")
    return 0


TOKEN_VARIABLE = environment.ONLINE_TOKEN.name


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    token = environment.ONLINE_TOKEN.value()
    if token is None and not (args.no_token and args.host in LOOPBACK):
        print(
            f"error: POST /events needs a token: set {TOKEN_VARIABLE} (clients send 'Authorization: Bearer <token>'); "
            "only a development service bound to 127.0.0.1 may run without one (--no-token)",
            file=sys.stderr,
        )
        return 2
    if token is None:
        logging.warning("writes are not authenticated (--no-token on %s): for development only", args.host)
    limits = OnlineLimits(max_body_bytes=args.max_body_bytes, max_events=args.max_events)
    try:
        scorer = OnlineScorer(
            StorageRoot(args.root), state_store=args.state_store, refresh_s=args.refresh_s, limits=limits
        )
        scorer.start()
    except NoStatesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        uvicorn.run(create_app(scorer, token), host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        scorer.stop()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consumer-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    simulate = commands.add_parser("simulate", help="write simulated tracking events to the landing zone")
    simulate.add_argument(
        "--root",
        default=environment.ROOT.value(),
        help="storage root: folder or s3://BUCKET/PREFIX (default: $CONSUMER_ASSETS_ROOT or .data)",
    )
    simulate.add_argument("--start", type=date.fromisoformat, required=True, help="first day, YYYY-MM-DD")
    simulate.add_argument("--days", type=int, default=14, help="number of days (default 14)")
    simulate.add_argument(
        "--profiles", type=int, default=SimulationConfig.profiles, help="number of profiles (default %(default)s)"
    )
    simulate.add_argument("--seed", type=int, default=SimulationConfig.seed, help="random seed (default %(default)s)")
    simulate.add_argument(
        "--horizon",
        type=int,
        default=SimulationConfig.horizon_days,
        help="label horizon H in days for the truth (default %(default)s)",
    )
    simulate.add_argument(
        "--bad-rate",
        type=float,
        default=0.0,
        help="share of rows that break the contract, plus one truncated file a day (default 0)",
    )
    simulate.add_argument(
        "--season-shift-from",
        type=date.fromisoformat,
        default=None,
        help="drift: from this day, browsing moves to the next season's categories",
    )
    simulate.add_argument(
        "--tracking-fault-from",
        type=date.fromisoformat,
        default=None,
        help="drift: from this day, the tracker loses 90%% of view events",
    )
    simulate.add_argument(
        "--events-without-attributes",
        action="store_true",
        help="events carry the article id alone, as real trackers send them; brand, category and price come from the "
        "catalogue export landed beside them",
    )
    simulate.set_defaults(handler=_simulate)
    importing = commands.add_parser(
        "import", help="convert a published e-commerce event log into landing files of the event contract"
    )
    importing.add_argument(
        "format", choices=[*FORMATS, *CATALOGUE_FORMATS], help="the log's format (docs/data.md names the files)"
    )
    importing.add_argument(
        "files",
        type=Path,
        nargs="+",
        help="the files as published (.gz and .bz2 are read too); a catalogue's parts are read together",
    )
    importing.set_defaults(handler=_import)

    models = commands.add_parser("models", help="the candidates and the model in service").add_subparsers(
        dest="models_command", required=True
    )
    listing = models.add_parser("list", help="every candidate, its verdict and test AUC, and which one serves")
    listing.set_defaults(handler=_models_list)
    promote = models.add_parser(
        "promote", help="put a previously validated version (back) into service, as a run of promote_model_job"
    )
    promote.add_argument("version")
    promote.add_argument("--reason", default="manual rollback", help="kept in the serving history")
    promote.set_defaults(handler=_models_promote)
    explain = commands.add_parser("explain", help="each event's contribution to a profile's score on a scored day")
    explain.add_argument(
        "--day", type=date.fromisoformat, required=True, help="a day batch_predictions scored, YYYY-MM-DD"
    )
    explain.add_argument("--profile", required=True, help="the profile id")
    explain.add_argument(
        "--out",
        type=Path,
        default=Path("."),
        help="folder for the PNG timeline, explain-<profile>-<day>.png (default: the current folder)",
    )
    explain.set_defaults(handler=_explain)
    serve = commands.add_parser(
        "serve", help="online scores: each profile's LSTM state carried forward, one step per event (HTTP)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s)")
    serve.add_argument("--port", type=int, default=8080, help="port (default %(default)s)")
    serve.add_argument(
        "--state-store",
        default=environment.STATE_STORE.value(),
        help="'embedded' (in this process, one machine) or redis://HOST:PORT/DB for several replicas (default: "
        "$CONSUMER_ASSETS_STATE_STORE or embedded)",
    )
    serve.add_argument(
        "--refresh-s",
        type=float,
        default=30.0,
        help="seconds between looks for newer profile_states (default %(default)s)",
    )
    serve.add_argument(
        "--no-token",
        action="store_true",
        help=f"accept writes without ${TOKEN_VARIABLE}: only with a loopback --host, for development",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=int,
        default=OnlineLimits.max_body_bytes,
        help="largest request body (default %(default)s)",
    )
    serve.add_argument(
        "--max-events",
        type=int,
        default=OnlineLimits.max_events,
        help="most events in one POST /events (default %(default)s)",
    )
    serve.set_defaults(handler=_serve)
    for sub in (importing, listing, promote, explain, serve):
        sub.add_argument(
            "--root",
            default=environment.ROOT.value(),
            help="storage root (default: $CONSUMER_ASSETS_ROOT or .data)",
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (StorageError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
