"""Sensors: run a day when its landing files are complete, alert on failed checks and runs, and automation.

The alert sensor reads the instance's event log rather than listening to run
failures: a failed non-blocking check (monitoring's drift alerts) does not fail its
run, so only the check evaluations themselves show it.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from consumer_assets.asset_keys import HISTORIES, LABELS, RAW_EVENTS
from consumer_assets.automation.alerts import Alert, DeliveryError, deliver
from consumer_assets.automation.freshness import day_checks
from consumer_assets.automation.landing_scan import scan_landing
from consumer_assets.automation.liveness import worker_alive
from consumer_assets.automation.reconcile import RECONCILED, lost_partitions
from consumer_assets.automation.resources import AlertResource, LandingSensorResource
from consumer_assets.ingest.landing_zone import CATALOGUE_PREFIX, LANDING_PREFIX
from consumer_assets.jobs import catalogue_job, daily_data_job, labels_job
from consumer_assets.model.store import ModelStore
from consumer_assets.storage.resources import StorageResource
from consumer_assets.timeline import Timeline

FEATURE_ASSETS = [dg.AssetKey(RAW_EVENTS), dg.AssetKey(HISTORIES)]
PAGE = 100
# Runs that may still write: queued, starting, started or being cancelled (Dagster's public run statuses).
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def _scan(context: dg.SensorEvaluationContext, root, landing: LandingSensorResource, feed: str):
    """A landing feed's days due now, and the cursor to store: the landing and catalogue sensors' one scan."""
    return scan_landing(
        root,
        context.cursor,
        today=datetime.now(UTC).date(),
        now=time.time(),
        lookback_days=landing.lookback_days,
        completion=landing.completion,
        quiet_seconds=landing.quiet_seconds,
        rescan_seconds=landing.rescan_seconds,
        feed=feed,
    )


def _landing_tags(day) -> dict[str, str]:
    return {"consumer-assets/landing-files": str(day.files), "consumer-assets/late-files": str(day.late).lower()}


@dg.sensor(
    job=daily_data_job,
    minimum_interval_seconds=60,
    description="Requests daily_data_job for a day once its landing files are complete; late files re-run the day.",
)
def landing_sensor(context: dg.SensorEvaluationContext, storage: StorageResource, landing: LandingSensorResource):
    root = storage.open()
    due, cursor = _scan(context, root, landing, LANDING_PREFIX)
    serving = ModelStore(root).serving() is not None
    requests = [
        dg.RunRequest(
            run_key=day.run_key,
            partition_key=day.day.isoformat(),
            asset_selection=None if serving else FEATURE_ASSETS,  # nothing to score before a model serves
            asset_check_keys=None if serving else day_checks(context.repository_def.asset_graph, FEATURE_ASSETS),
            tags=_landing_tags(day),
        )
        for day in due
    ]
    context.update_cursor(cursor)
    if not requests:
        return dg.SkipReason("no landing day newly complete")
    return requests


@dg.sensor(
    job=catalogue_job,
    minimum_interval_seconds=60,
    description="Requests catalogue_job for a day once its catalogue export is complete; a late or corrected export "
    "re-runs the day, and the day's histories follow.",
)
def catalogue_sensor(context: dg.SensorEvaluationContext, storage: StorageResource, landing: LandingSensorResource):
    due, cursor = _scan(context, storage.open(), landing, CATALOGUE_PREFIX)
    context.update_cursor(cursor)
    if not due:
        return dg.SkipReason("no catalogue export newly complete")
    return [
        dg.RunRequest(
            run_key=day.run_key,
            partition_key=day.day.isoformat(),
            tags=_landing_tags(day),
        )
        for day in due
    ]


def reconcile_sensor(timeline: Timeline) -> dg.SensorDefinition:
    """The reconcile sensor for the code location's label horizon: a lost label partition waits for D+1..D+H."""

    @dg.sensor(
        jobs=[daily_data_job, labels_job],
        minimum_interval_seconds=300,
        description="Rebuilds snapshots and labels that the instance records but the storage root lacks (a wiped or "
        "new root), once their inputs are stored.",
    )
    def reconcile_sensor(context: dg.SensorEvaluationContext, storage: StorageResource, landing: LandingSensorResource):
        root = storage.open()
        oldest = (datetime.now(UTC) - timedelta(days=landing.reconcile_days)).date().isoformat()
        latest = {
            dataset: {
                day: sid
                for day, sid in context.instance.get_latest_storage_id_by_partition(
                    dg.AssetKey(dataset), dg.DagsterEventType.ASSET_MATERIALIZATION
                ).items()
                if day >= oldest
            }
            for dataset in RECONCILED
        }
        lost = lost_partitions(
            root,
            {dataset: [date.fromisoformat(d) for d in days] for dataset, days in latest.items()},
            timeline.label_horizon_days,
        )
        busy = _partitions_in_flight(context.instance)
        identity = root.identity()
        ready = [p for p in lost if not p.waiting_for and p.day.isoformat() not in busy]
        waiting = [p for p in lost if p.waiting_for]
        requests = []
        for partition in ready:
            day = partition.day.isoformat()
            requests.append(
                dg.RunRequest(
                    job_name=labels_job.name if partition.dataset == LABELS else daily_data_job.name,
                    asset_selection=[dg.AssetKey(partition.dataset)],
                    asset_check_keys=day_checks(context.repository_def.asset_graph, [dg.AssetKey(partition.dataset)]),
                    partition_key=day,
                    # once per lost materialisation
                    run_key=f"reconcile:{identity}:{partition.dataset}:{day}:{latest[partition.dataset][day]}",
                    tags={"consumer-assets/reconciled": "lost from storage"},
                )
            )
        if waiting:
            context.log.info(
                "%d lost partitions wait for their inputs, e.g. %s needs %s",
                len(waiting),
                waiting[0].name,
                ", ".join(waiting[0].waiting_for),
            )
        if not requests:
            return dg.SkipReason(
                f"{len(waiting)} lost partitions wait for their inputs"
                if waiting
                else "storage holds every recorded snapshot and label"
            )
        context.log.info(
            "rebuilding %s, recorded in the instance but missing under %s", ", ".join(p.name for p in ready), root.uri
        )
        return requests

    return reconcile_sensor


def _partitions_in_flight(instance: dg.DagsterInstance) -> set[str]:
    """Days with a queued or running run: their partitions are being written, not lost."""
    runs = instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT))
    return {run.tags["dagster/partition"] for run in runs if "dagster/partition" in run.tags}


WORKER_STARTED = (
    "Started process for run"  # the engine event with which the default launcher's worker announces its pid
)


def run_worker(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """(pid, start time) of a run's worker process, from its engine event; None before it announced itself."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = entry.dagster_event
        if event and (event.message or "").startswith(WORKER_STARTED) and "pid" in event.engine_event_data.metadata:
            return int(event.engine_event_data.metadata["pid"].value), entry.timestamp
    return None


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks a starting or started run failed when its worker process died (SIGKILL, out of memory) with no "
    "code server left to report it, so that it is alerted and frees its queue slot within a minute.",
)
def dead_run_sensor(context: dg.SensorEvaluationContext):
    if not isinstance(context.instance.run_launcher, dg.DefaultRunLauncher):
        return dg.SkipReason("this run launcher's workers are watched by Dagster's run monitoring (dagster.yaml)")
    failed = []
    for run in context.instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])
    ):
        worker = run_worker(context.instance, run.run_id)
        if worker is not None and not worker_alive(*worker):
            message = (
                f"its worker process (pid {worker[0]}) is gone without finishing the run: killed, or out of memory"
            )
            context.log.warning("run %s failed: %s", run.run_id, message)
            context.instance.report_run_failed(run, message=f"Run failed: {message}.")
            failed.append(run.run_id)
    return dg.SkipReason(
        f"marked {len(failed)} dead runs failed: {', '.join(failed)}" if failed else "every running worker is alive"
    )


def _metadata_values(metadata: dict) -> dict:
    return {
        name: getattr(value, "value", value)
        for name, value in metadata.items()
        if isinstance(getattr(value, "value", value), (int, float, str, bool))
    }


def _run_partition(instance: dg.DagsterInstance, run_id: str) -> str | None:
    run = instance.get_run_by_id(run_id)
    return run.tags.get("dagster/partition") if run else None


def check_alert(record, instance: dg.DagsterInstance, ui_url: str) -> Alert | None:
    """An alert for a failed ERROR check evaluation, else None (passed, or only a warning)."""
    evaluation = record.event.dagster_event.event_specific_data if record.event else None
    if evaluation is None or evaluation.passed or evaluation.severity != dg.AssetCheckSeverity.ERROR:
        return None
    return Alert(
        title=f"check {evaluation.check_name} failed" + (" (blocking)" if evaluation.blocking else ""),
        asset=evaluation.asset_key.to_user_string(),
        partition=evaluation.partition or record.partition or _run_partition(instance, record.run_id),
        check=evaluation.check_name,
        run_id=record.run_id,
        run_url=f"{ui_url.rstrip('/')}/runs/{record.run_id}",
        figures=_metadata_values(evaluation.metadata),
    )


def run_failure_alert(record, instance: dg.DagsterInstance, ui_url: str) -> Alert:
    run_id = record.event_log_entry.run_id
    run = instance.get_run_by_id(run_id)
    return Alert(
        title=(
            f"run of {run.job_name if run else 'a job'} failed: {record.event_log_entry.dagster_event.message or ''}"
        ).strip(),
        asset=None,
        partition=run.tags.get("dagster/partition") if run else None,
        check=None,
        run_id=run_id,
        run_url=f"{ui_url.rstrip('/')}/runs/{run_id}",
    )


def failed_check_records(instance: dg.DagsterInstance, key: dg.AssetCheckKey, after_id: int) -> list:
    """Failed evaluations of one check newer than ``after_id``, oldest first, paging back as far as needed."""
    records, page_cursor = [], None
    while True:
        page = instance.event_log_storage.get_asset_check_execution_history(key, limit=PAGE, cursor=page_cursor)
        fresh = [r for r in page if r.id > after_id]
        records.extend(r for r in fresh if r.status.value == "FAILED")
        if len(fresh) < len(page) or len(page) < PAGE:
            return sorted(records, key=lambda r: r.id)
        page_cursor = page[-1].id


def run_failures_after(instance: dg.DagsterInstance, cursor: str | None) -> Iterator[tuple[object, str]]:
    """(record, the cursor just past it) for each run failure after ``cursor``, oldest first: one record a page, so
    that a caller can stop after any of them and resume there (alerts are few)."""
    while True:
        result = instance.fetch_run_status_changes(
            dg.DagsterEventType.RUN_FAILURE, limit=1, cursor=cursor, ascending=True
        )
        for record in result.records:
            yield record, result.cursor
        if not result.records or not result.has_more:
            return
        cursor = result.cursor


def alert_cursor_after_history(instance: dg.DagsterInstance, check_keys) -> str:
    """An alert_sensor cursor past every failure already in the event log: alerts from here on only.

    For a replay (the demo) or a sensor turned on in an instance with a history, whose
    old failures were seen (or alerted) long ago.
    """
    checks = {}
    for key in check_keys:
        failed = failed_check_records(instance, key, 0)
        if failed:
            checks[key.to_user_string()] = failed[-1].id
    last = deque(run_failures_after(instance, None), maxlen=1)
    return json.dumps({"checks": checks, "runs": last[0][1] if last else None})


def pending_alerts(
    instance: dg.DagsterInstance, check_keys, position: dict, ui_url: str
) -> Iterator[tuple[str, Alert]]:
    """(id, alert) for each failure after ``position``, oldest first per check, then failed runs.

    ``position`` (``{"checks": {name: record id}, "runs": cursor}``) moves past an alert
    only when the caller asks for the next one, that is once it was delivered: an
    alert whose delivery raised stays ahead of the position.
    """
    for key in check_keys:
        name = key.to_user_string()
        for record in failed_check_records(instance, key, position["checks"].get(name, 0)):
            alert = check_alert(record, instance, ui_url)
            if alert is not None:
                yield f"check:{record.id}", alert
            position["checks"][name] = record.id
    for record, after in run_failures_after(instance, position["runs"]):
        yield f"run:{record.storage_id}", run_failure_alert(record, instance, ui_url)
        position["runs"] = after


@dg.sensor(
    minimum_interval_seconds=30,
    description="Sends failed ERROR checks (blocking or not) and failed runs to the webhook and/or e-mail, each once "
    "per channel; "
    "a channel that is down delays only its own alerts.",
)
def alert_sensor(context: dg.SensorEvaluationContext, alerts: AlertResource):
    """Each channel keeps its own position in the cursor (``channels``); one without (new, or a cursor from
    ``alert_cursor_after_history``) starts from the cursor's shared ``checks``/``runs``."""
    cursor = json.loads(context.cursor) if context.cursor else {"checks": {}, "runs": None}
    start = {"checks": cursor.get("checks", {}), "runs": cursor.get("runs")}
    positions = cursor.setdefault("channels", {})
    check_keys = sorted(context.repository_def.asset_graph.asset_check_keys, key=str)
    logged, delivered, down = set(), set(), []
    for notifier in alerts.notifiers() or [None]:  # no channel configured: the sensor's log is the only one
        channel = str(notifier) if notifier else "log"
        position = json.loads(json.dumps(positions.get(channel, start)))
        try:
            for alert_id, alert in pending_alerts(context.instance, check_keys, position, alerts.ui_url):
                if alert_id not in logged:
                    context.log.warning("alert: %s", alert.text)
                    logged.add(alert_id)
                if notifier is not None:
                    deliver(alert, [notifier], alerts.retries, alerts.backoff_seconds)
                delivered.add(alert_id)
        except DeliveryError as exc:
            context.log.error("alert channel %s is down; its alerts wait for the next tick: %s", channel, exc)
            down.append(str(exc))
        positions[channel] = position  # what was delivered stays delivered; a failed alert is retried next tick
    context.update_cursor(json.dumps(cursor))
    sent = f"sent {len(delivered)} alerts" if delivered else "nothing to alert"
    return dg.SkipReason(f"{sent}; alert delivery failed, will retry: {'; '.join(down)}" if down else sent)


automation_sensor = dg.AutomationConditionSensorDefinition(
    "automation_sensor",
    target=dg.AssetSelection.all(),
    minimum_interval_seconds=60,
    description="Evaluates the assets' automation conditions (order_labels once matured, candidate_evaluation after a "
    "new candidate, validated_model after its passed checks).",
)


def sensors(timeline: Timeline) -> list[dg.SensorDefinition]:
    return [
        landing_sensor,
        catalogue_sensor,
        reconcile_sensor(timeline),
        alert_sensor,
        dead_run_sensor,
        automation_sensor,
    ]
