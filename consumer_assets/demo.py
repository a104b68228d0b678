"""``make demo``: a shop's last few weeks replayed day by day through the automation, on the embedded default.

First the shop's history before the replay (one history window, 90 days by default) lands and is ingested, as a
deployment's first backfill of ``raw_events`` would, so the first replayed snapshot already holds a full window and
every model trains and is judged on histories as long as a running shop's. Then every simulated day lands in the
landing zone with the day's catalogue export, then the same logic that runs a deployment unattended decides what to
run: the catalogue sensor requests the catalogue job, the landing sensor the daily data job, the automation condition
of order_labels requests the labels that have matured, the reconcile sensor rebuilds what the instance remembers but
the storage root lost (a demo after ``rm -rf .data``), the training schedule requests training on two days, and the
alert sensor sends failed checks to a webhook (a local sink started here). Along the way a deliberately bad candidate
(trained with a learning rate of zero) is refused by the blocking checks while the earlier model keeps serving, and a
season shift in the category mix trips the drift alert. Runs go to the Dagster instance in ``$DAGSTER_HOME``, so
``make dev`` shows all of it afterwards.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets import environment
from consumer_assets.asset_keys import LABELS, RAW_EVENTS
from consumer_assets.automation.freshness import day_checks
from consumer_assets.automation.resources import AlertResource, LandingSensorResource
from consumer_assets.automation.schedules import training_schedule
from consumer_assets.automation.sensors import (
    alert_cursor_after_history,
    alert_sensor,
    catalogue_sensor,
    landing_sensor,
)
from consumer_assets.definitions import defs
from consumer_assets.metrics import summarise
from consumer_assets.model.store import ModelStore
from consumer_assets.partitions import START_DATE
from consumer_assets.simulation import DayEvents, Drift, ShopSimulator, SimulationConfig, land_day, true_probabilities
from consumer_assets.validation.evaluator import labelled_rows

log = logging.getLogger("consumer_assets.demo")

DEMO_DAYS = int(environment.DEMO_DAYS.value())
DEMO_PROFILES = int(environment.DEMO_PROFILES.value())
# Offsets from the first day. Training on day 15 has 9 matured snapshots: 6 train, 3 held out,
# so the first verdict rests on a few hundred test positives; the days it scores mature
# before the end, so realised rates are judged on three of them.
TRAINING_DAY, BAD_CANDIDATE_DAY, SEASON_SHIFT_DAY = 15, 18, 22
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}
BAD_CANDIDATE = {"resources": {"training": {"config": {"learning_rate": 0.0, "max_epochs": 1, "warm_start": False}}}}


class WebhookSink:
    """A local HTTP endpoint standing in for Slack: keeps and logs every alert it receives."""

    def __init__(self, path: str = "/alerts") -> None:
        self.received: list[dict] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                alert = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                sink.received.append(alert)
                log.info("webhook sink received: %s", alert["text"].splitlines()[0])
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def run_job(
    instance: dg.DagsterInstance,
    name: str,
    day: date,
    asset_selection=None,
    run_config=None,
    tags=None,
    asset_check_selection=None,
) -> dg.ExecuteInProcessResult:
    """Run a partitioned job for a day in this process, recorded in the instance, and log its outcome. A run request's
    assets come with its checks (``asset_check_selection``), as the daemon runs them."""
    job = defs.resolve_job_def(name)
    if asset_selection is not None:
        job = job.get_subset(
            asset_selection=set(asset_selection), asset_check_selection=set(asset_check_selection or [])
        )
    result = job.execute_in_process(
        partition_key=day.isoformat(),
        instance=instance,
        raise_on_error=False,
        run_config={**QUIET, **(run_config or {})},
        tags=tags,
    )
    checks = result.get_asset_check_evaluations()
    failed = [c.check_name for c in checks if not c.passed]
    log.info(
        "%s %s: %s, %d checks, failed: %s",
        name,
        day,
        "ok" if result.success else "FAILED",
        len(checks),
        failed or "none",
    )
    return result


def report_models(root) -> None:
    """The model in service beside the baselines and the oracle, on the same test profiles."""
    store = ModelStore(root)
    serving = store.serving()
    if serving is None:
        log.info("no model in service: the candidate was refused (see the checks in the UI)")
        return
    evaluation = store.read_evaluation(serving.version)
    days = tuple(date.fromisoformat(d) for d in evaluation["test_days"])
    table, y = labelled_rows(root, days, ("order_any",), "test")
    groups = np.asarray(table.column("profile_id").to_pylist(), dtype=object)
    oracle = np.zeros(len(y))
    for day in days:
        rows = pc.equal(table.column("snapshot_date"), pa.scalar(day, pa.date32())).to_numpy(zero_copy_only=False)
        oracle[rows] = true_probabilities(root, day, table.column("profile_id").filter(pa.array(rows)))
    models = {
        "LSTM": evaluation["candidate"]["order_any"],
        **evaluation["baselines"],
        "oracle (true p)": summarise(oracle, y[:, 0], groups),
    }
    log.info(
        "serving %s; on %d test rows of %d held-out profiles, %s..%s (%d positives):",
        serving.version,
        len(y),
        len(set(groups)),
        days[0],
        days[-1],
        int(y.sum()),
    )
    for name, m in models.items():
        log.info(
            "  %-20s AUC %.4f (95 %% interval %.4f-%.4f)  mean log-likelihood %.4f  mean prediction %.4f (observed "
            "%.4f)",
            name,
            m["auc"],
            m["auc_ci_low"],
            m["auc_ci_high"],
            m["mean_log_likelihood"],
            m["mean_prediction"],
            m["observed_rate"],
        )


class Replay:
    """The deployment's automation, ticked once per simulated day."""

    def __init__(self, instance: dg.DagsterInstance, root, sink: WebhookSink):
        self.instance, self.root = instance, root
        self.landing_cursor = self.catalogue_cursor = self.alert_cursor = self.automation_cursor = None
        # The replayed days only: the backfill before them is ingested by backfill_day.
        self.landing = {"storage": defs.resources["storage"], "landing": LandingSensorResource(lookback_days=DEMO_DAYS)}
        self.alerts = {"alerts": AlertResource(webhook_url=sink.url, retries=1, backoff_seconds=0.1)}
        # This replay's alerts only: failures an earlier demo left in the instance were alerted then.
        self.alert_cursor = alert_cursor_after_history(instance, defs.resolve_asset_graph().asset_check_keys)

    def backfill_day(self, day_events: DayEvents) -> bool:
        """Land and ingest one day before the replay (raw_events and its checks, as a backfill of that asset runs),
        unless
        stored already: a second demo reuses the first one's backfill. True when the day was ingested now."""
        day = day_events.day
        if self.root.has_partition(RAW_EVENTS, day):
            return False
        land_day(self.root, day_events, bad_rate=0.01)
        raw_events = [dg.AssetKey(RAW_EVENTS)]
        job = defs.resolve_job_def("daily_data_job").get_subset(
            asset_selection=set(raw_events),
            asset_check_selection=set(day_checks(defs.resolve_asset_graph(), raw_events)),
        )
        quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        per_file = logging.getLogger(
            "consumer_assets.ingest"
        )  # a line per landing file; the backfill logs its progress instead
        per_file.setLevel(logging.WARNING)
        try:
            result = job.execute_in_process(
                partition_key=day.isoformat(), instance=self.instance, raise_on_error=False, run_config=quiet
            )
        finally:
            per_file.setLevel(logging.NOTSET)
        if not result.success:
            raise RuntimeError(
                f"the backfill's raw_events run for {day} failed ({result.run_id}): see it in the UI (make dev)"
            )
        return True

    def catalogue_tick(self) -> None:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.catalogue_cursor, resources=self.landing, definitions=defs
        )
        requests = catalogue_sensor(context)
        self.catalogue_cursor = context.cursor
        for request in [] if isinstance(requests, dg.SkipReason) else requests:
            run_job(self.instance, "catalogue_job", date.fromisoformat(request.partition_key), tags=request.tags)

    def landing_tick(self) -> None:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.landing_cursor, resources=self.landing, definitions=defs
        )
        requests = landing_sensor(context)
        self.landing_cursor = context.cursor
        for request in [] if isinstance(requests, dg.SkipReason) else requests:
            day = date.fromisoformat(request.partition_key)
            run_job(
                self.instance,
                "daily_data_job",
                day,
                request.asset_selection,
                tags=request.tags,
                asset_check_selection=request.asset_check_keys,
            )

    def reconcile_tick(self) -> None:
        """Labels and snapshots the instance remembers but the root lost (a demo after ``rm -rf .data``) are rebuilt."""
        context = dg.build_sensor_context(instance=self.instance, resources=self.landing, definitions=defs)
        requests = defs.resolve_sensor_def("reconcile_sensor")(context)
        for request in [] if isinstance(requests, dg.SkipReason) else requests:
            day = date.fromisoformat(request.partition_key)
            run_job(
                self.instance,
                request.job_name,
                day,
                request.asset_selection,
                tags=request.tags,
                asset_check_selection=request.asset_check_keys,
            )

    def automation_tick(self, now: datetime) -> None:
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=self.instance,
            asset_selection=dg.AssetSelection.assets(LABELS),
            evaluation_time=now,
            cursor=self.automation_cursor,
        )
        self.automation_cursor = result.cursor
        for partition in sorted(result.get_requested_partitions(dg.AssetKey(LABELS))):
            run_job(self.instance, "labels_job", date.fromisoformat(partition))

    def training_tick(self, now: datetime, run_config: dict | None = None) -> None:
        context = dg.build_schedule_context(
            instance=self.instance, scheduled_execution_time=now, repository_def=defs.get_repository_def()
        )
        [request] = training_schedule.evaluate_tick(context).run_requests
        day = date.fromisoformat(request.partition_key)
        if run_job(self.instance, "training_job", day, run_config=run_config).success:
            run_job(self.instance, "evaluation_job", day)  # as candidate_evaluation's automation condition starts it

    def alert_tick(self) -> None:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.alert_cursor, resources=self.alerts, definitions=defs
        )
        alert_sensor(context)
        self.alert_cursor = context.cursor


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the instance's schema migrations, not news
    started = time.perf_counter()
    root = defs.resources["storage"].process_config_and_initialize().open()
    today = datetime.now(UTC).date()
    start = today - timedelta(days=DEMO_DAYS)
    backfill_days = defs.resources["features"].window_days
    first_day = start - timedelta(days=backfill_days)
    if first_day < date.fromisoformat(START_DATE):
        raise SystemExit(
            f"the demo's backfill starts on {first_day}, before the partitions' start {START_DATE}: set "
            "CONSUMER_ASSETS_START_DATE earlier"
        )
    shift = start + timedelta(days=SEASON_SHIFT_DAY)
    config = SimulationConfig(profiles=DEMO_PROFILES, drift=Drift(season_shift_from=shift, season_shift_strength=0.8))
    log.info(
        "replaying %d days of a shop with %d profiles, %s to %s, after a backfill of %d days from %s, into %s (season "
        "shift from %s)",
        DEMO_DAYS,
        DEMO_PROFILES,
        start,
        today - timedelta(days=1),
        backfill_days,
        first_day,
        root.uri,
        shift,
    )
    sink = WebhookSink()
    instance = dg.DagsterInstance.get()
    replay = Replay(instance, root, sink)

    ingested = 0
    for offset, day_events in enumerate(
        ShopSimulator(config).simulate(first_day, backfill_days + DEMO_DAYS), start=-backfill_days
    ):
        day = day_events.day
        if offset < 0:
            ingested += replay.backfill_day(day_events)
            if (offset + backfill_days) % 15 == 14 or offset == -1:
                log.info(
                    "backfill: %d of %d days before the replay stored (%d ingested now)",
                    offset + backfill_days + 1,
                    backfill_days,
                    ingested,
                )
            continue
        land_day(root, day_events, bad_rate=0.01)
        replay.catalogue_tick()
        replay.landing_tick()
        replay.reconcile_tick()
        after_midnight = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        replay.automation_tick(after_midnight + timedelta(hours=3))
        if offset == TRAINING_DAY:
            replay.training_tick(after_midnight + timedelta(hours=4))
        elif offset == BAD_CANDIDATE_DAY:
            log.info("training a deliberately bad candidate (learning rate 0): the blocking checks must refuse it")
            before = ModelStore(root).serving()
            replay.training_tick(after_midnight + timedelta(hours=4), BAD_CANDIDATE)
            after = ModelStore(root).serving()
            log.info(
                "model in service after the bad candidate: %s (before: %s)",
                after and after.version,
                before and before.version,
            )
        replay.alert_tick()

    report_models(root)
    log.info("%d alerts reached the webhook sink:", len(sink.received))
    for alert in sink.received:
        log.info("  %s", alert["text"].splitlines()[0])
    root.write_json("demo/alerts_received.json", {"alerts": sink.received})
    log.info("done in %.0f s", time.perf_counter() - started)
    print(
        f"\nData is under {root.uri}: {', '.join(d for d in root.list_dirs('') if not d.startswith('_'))}; the alerts "
        "the sink received are in demo/alerts_received.json.\n"
        f"Runs are in the Dagster instance at {replay.instance.root_directory}.\n"
        "Run `make dev` and open http://127.0.0.1:3000 to see the runs, partitions, metadata and checks (a tour: "
        "docs/operations.md)."
    )


if __name__ == "__main__":
    main()
