"""Schedules, the landing sensor, the automation condition of order_labels, and alerts to real local servers."""

import base64
import json
import os
import shutil
import socketserver
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import boto3
import dagster as dg
import psutil
import pytest

from consumer_assets.asset_keys import HISTORIES, RAW_EVENTS
from consumer_assets.automation.alerts import Alert, DeliveryError, WebhookNotifier, deliver
from consumer_assets.automation.landing_scan import scan_landing
from consumer_assets.automation.liveness import worker_alive
from consumer_assets.automation.reconcile import lost_partitions
from consumer_assets.automation.resources import AlertResource, LandingSensorResource
from consumer_assets.automation.schedules import training_cron, training_schedule
from consumer_assets.automation.sensors import (
    FEATURE_ASSETS,
    alert_cursor_after_history,
    alert_sensor,
    landing_sensor,
)
from consumer_assets.definitions import build_definitions, defs
from consumer_assets.ingest.contract import EVENT_SCHEMA
from consumer_assets.ingest.landing_zone import COMPLETE_MARKER, landing_prefix
from consumer_assets.simulation import SimulationConfig, simulate_to_landing
from consumer_assets.storage import StorageRoot
from consumer_assets.storage.resources import StorageResource
from consumer_assets.timeline import Timeline

DAY = date(2026, 10, 5)


# --- schedules -------------------------------------------------------------------------


def test_schedules_run_the_day_that_just_ended():
    tick = datetime(2026, 10, 6, 2, 0, tzinfo=UTC)
    with dg.instance_for_test() as instance:
        context = dg.build_schedule_context(
            instance=instance, scheduled_execution_time=tick, repository_def=defs.get_repository_def()
        )
        [request] = defs.get_schedule_def("daily_data_schedule").evaluate_tick(context).run_requests
        assert request.partition_key == "2026-10-05"
        [training] = training_schedule.evaluate_tick(context).run_requests
        assert training.partition_key == "2026-10-05"
    assert defs.get_schedule_def("daily_data_schedule").cron_schedule == "0 2 * * *"
    assert training_cron("weekly") == "0 4 * * 1" and training_cron("daily") == "0 4 * * *"
    with pytest.raises(ValueError, match="must be one of"):
        training_cron("hourly")


# --- landing --------------------------------------------------------------------------


def _land(root: StorageRoot, days: int = 2) -> None:
    simulate_to_landing(root, DAY, days, SimulationConfig(profiles=100))


def _scan(root: StorageRoot, cursor: str | None, **options):
    return scan_landing(root, cursor, today=DAY + timedelta(days=2), now=time.time(), **options)


def test_complete_days_are_due_once_and_late_files_make_them_due_again(root: StorageRoot):
    _land(root)
    due, cursor = _scan(root, None)
    assert [(d.day, d.files, d.late) for d in due] == [(DAY, 1, False), (DAY + timedelta(days=1), 1, False)]
    assert _scan(root, cursor)[0] == []  # nothing new: no key processed twice

    root.write_bytes(f"{landing_prefix(DAY)}/events-late-20261007T0315.jsonl.gz", b"")
    due, cursor = _scan(root, cursor)
    assert [(d.day, d.files, d.late) for d in due] == [(DAY, 2, True)]
    assert due[0].run_key.startswith(f"{root.identity()}:{DAY}@2:")
    assert _scan(root, cursor)[0] == []


def test_a_late_key_that_sorts_before_the_cursor_is_seen_at_the_next_full_listing(root: StorageRoot):
    _land(root, days=1)
    due, cursor = _scan(root, None)
    [first] = due
    root.write_bytes(f"{landing_prefix(DAY)}/events-0000-resent.jsonl.gz", b"")  # sorts before events-0000.jsonl.gz
    assert _scan(root, cursor)[0] == []  # the short listing after the last key cannot see it...
    due, cursor = scan_landing(root, cursor, today=DAY + timedelta(days=2), now=time.time() + 901, rescan_seconds=900)
    assert [(d.day, d.files, d.late) for d in due] == [(DAY, 2, True)]  # ...the full one, every rescan period, does
    assert due[0].run_key != first.run_key
    assert (
        scan_landing(root, cursor, today=DAY + timedelta(days=2), now=time.time() + 1802, rescan_seconds=900)[0] == []
    )


def test_a_wiped_root_is_a_new_root_and_its_days_are_due_again(tmp_path):
    root = StorageRoot(str(tmp_path / "root"))
    _land(root)
    due, cursor = _scan(root, None)
    shutil.rmtree(tmp_path / "root")  # rm -rf .data, then the exports land again
    _land(root)
    again, _ = _scan(root, cursor)
    assert [d.day for d in again] == [d.day for d in due]
    assert not {d.run_key for d in again} & {d.run_key for d in due}  # new run keys: not skipped as done
    assert not any(d.late for d in again)


def test_a_day_without_its_marker_waits_unless_quiet_long_enough(root: StorageRoot):
    _land(root, days=1)
    root.delete(f"{landing_prefix(DAY)}/{COMPLETE_MARKER}")
    assert _scan(root, None)[0] == []
    assert _scan(root, None, completion="quiet", quiet_seconds=3600)[0] == []
    assert [
        d.day for d in scan_landing(root, None, DAY, now=time.time() + 7200, completion="quiet", quiet_seconds=3600)[0]
    ] == [DAY]
    with pytest.raises(ValueError, match="completion must be one of"):
        _scan(root, None, completion="sometimes")


def test_days_beyond_the_lookback_are_ignored_and_forgotten(root: StorageRoot):
    _land(root)
    _, cursor = _scan(root, None)
    due, later_cursor = scan_landing(root, cursor, today=DAY + timedelta(days=8), now=time.time(), lookback_days=7)
    kept = (DAY + timedelta(days=1)).isoformat()
    assert due == [] and json.loads(later_cursor)["days"] == {kept: json.loads(cursor)["days"][kept]}


def test_listing_from_the_cursor_returns_only_new_keys_among_thousands(s3_endpoint, s3_bucket):
    root = StorageRoot(f"s3://{s3_bucket}/many", endpoint_url=s3_endpoint)
    prefix = landing_prefix(DAY)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    with ThreadPoolExecutor(8) as pool:  # more than two ListObjectsV2 pages of 1,000 keys
        list(
            pool.map(
                lambda i: client.put_object(Bucket=s3_bucket, Key=f"many/{prefix}/events-{i:05d}.jsonl.gz", Body=b""),
                range(2500),
            )
        )
    assert len(list(root.list_after(prefix))) == 2500
    root.write_bytes(f"{prefix}/events-99999.jsonl.gz", b"")
    assert [o.key for o in root.list_after(prefix, f"{prefix}/events-02499.jsonl.gz")] == [
        f"{prefix}/events-99999.jsonl.gz"
    ]


def test_the_landing_sensor_requests_the_day_and_skips_scoring_before_a_model_serves(tmp_path):
    root = StorageRoot(str(tmp_path))
    today = datetime.now(UTC).date()
    simulate_to_landing(root, today - timedelta(days=1), 1, SimulationConfig(profiles=100))
    resources = {"storage": StorageResource(root=root.uri), "landing": LandingSensorResource()}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
        [request] = landing_sensor(context)
        assert request.partition_key == (today - timedelta(days=1)).isoformat()
        assert request.asset_selection == FEATURE_ASSETS
        checks = {f"{k.asset_key.to_user_string()}:{k.name}" for k in request.asset_check_keys}
        assert "raw_events:check_quarantine_rate" in checks and not any(
            "freshness" in c for c in checks
        )  # today's freshness is not this day's
        again = dg.build_sensor_context(instance=instance, cursor=context.cursor, resources=resources, definitions=defs)
        assert isinstance(landing_sensor(again), dg.SkipReason)


# --- automation conditions ----------------------------------------------------------


def _report(instance: dg.DagsterInstance, asset: str, day: date) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=day.isoformat()))


@pytest.mark.parametrize("horizon", [Timeline.label_horizon_days, 10])
def test_order_labels_are_requested_once_their_window_has_landed(horizon):
    """With the default H and another: the automation condition follows the code location's horizon."""
    defs = build_definitions(Timeline(label_horizon_days=horizon))
    labelled = date(2026, 10, 10)
    now = datetime.combine(labelled + timedelta(days=horizon + 1), datetime.min.time(), UTC) + timedelta(hours=3)
    with dg.instance_for_test() as instance:
        _report(instance, "daily_histories", labelled)
        for k in range(1, horizon):
            _report(instance, "raw_events", labelled + timedelta(days=k))
        selection = dg.AssetSelection.assets("order_labels")
        waiting = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, evaluation_time=now
        )
        assert labelled.isoformat() not in waiting.get_requested_partitions(dg.AssetKey("order_labels"))

        _report(instance, "raw_events", labelled + timedelta(days=horizon))  # the last day of the window lands
        ready = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=selection, evaluation_time=now, cursor=waiting.cursor
        )
        assert labelled.isoformat() in ready.get_requested_partitions(dg.AssetKey("order_labels"))


# --- alerts ---------------------------------------------------------------------------


class _Recorder:
    """What a local server received, and how many requests it should fail first."""

    def __init__(self, fail_first: int = 0):
        self.received: list = []
        self.logins: list = []
        self.attempts = 0
        self.fail_first = fail_first


@pytest.fixture
def webhook():
    recorder = _Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            recorder.attempts += 1
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if recorder.attempts <= recorder.fail_first:
                self.send_response(503)
                self.end_headers()
                return
            recorder.received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield recorder
    server.shutdown()


@pytest.fixture
def smtp_sink():
    """A minimal SMTP server (the standard library's socketserver) that keeps each message it is sent."""
    recorder = _Recorder()

    class Handler(socketserver.StreamRequestHandler):
        def reply(self, line: str) -> None:
            self.wfile.write(f"{line}\r\n".encode())

        def handle(self):
            self.reply("220 sink ready")
            while line := self.rfile.readline().decode():
                command = line.strip().upper()
                if command.startswith(("EHLO", "HELO")):
                    self.reply("250-sink")
                    self.reply("250 AUTH PLAIN")
                elif command.startswith("AUTH PLAIN"):
                    recorder.logins.append(base64.b64decode(line.split()[2]).split(b"\0")[1:])
                    self.reply("235 accepted")
                elif command == "DATA":
                    self.reply("354 go ahead")
                    lines = []
                    while (data := self.rfile.readline().decode()) not in (".\r\n", ""):
                        lines.append(data)
                    recorder.received.append("".join(lines))
                    self.reply("250 queued")
                elif command == "QUIT":
                    self.reply("221 bye")
                    return
                else:
                    self.reply("250 ok")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    recorder.port = server.server_address[1]
    yield recorder
    server.shutdown()


@dg.asset(partitions_def=dg.DailyPartitionsDefinition(start_date="2026-10-01"))
def watched():
    return None


@dg.asset_check(asset=watched)
def volume_collapsed():
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR, metadata={"ratio": 0.12})


@dg.asset_check(asset=watched)
def small_drift():
    return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, metadata={"psi": 0.15})


@dg.asset
def broken():
    raise RuntimeError("upstream export missing")


ALERTED = dg.Definitions(assets=[watched, broken], asset_checks=[volume_collapsed, small_drift])


def _alert_context(instance, cursor, webhook, smtp_sink, retries=2):
    alerts = AlertResource(
        webhook_url=webhook.url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_recipients="ops@example.com",
        ui_url="http://dagster.example",
        retries=retries,
        backoff_seconds=0.01,
    )
    return dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alerts": alerts}, definitions=ALERTED)


def test_failed_error_checks_and_failed_runs_alert_once_by_webhook_and_email(webhook, smtp_sink):
    with dg.instance_for_test() as instance:
        checked = dg.materialize(
            [watched, volume_collapsed, small_drift], instance=instance, partition_key="2026-10-05"
        )
        assert checked.success  # a failed non-blocking check does not fail its run: only the event log shows it
        failed = dg.materialize([broken], instance=instance, raise_on_error=False)
        assert not failed.success

        context = _alert_context(instance, None, webhook, smtp_sink)
        assert "sent 2 alerts" in alert_sensor(context).skip_message
        check_alert, run_alert = webhook.received
        assert (check_alert["asset"], check_alert["partition"], check_alert["check"]) == (
            "watched",
            "2026-10-05",
            "volume_collapsed",
        )
        assert check_alert["figures"] == {"ratio": 0.12}
        assert check_alert["run_url"] == f"http://dagster.example/runs/{checked.run_id}"
        assert run_alert["run_id"] == failed.run_id and "failed" in run_alert["text"]
        assert len(smtp_sink.received) == 2 and "volume_collapsed" in smtp_sink.received[0]
        assert "ops@example.com" in smtp_sink.received[0]

        again = _alert_context(instance, context.cursor, webhook, smtp_sink)
        assert alert_sensor(again).skip_message == "nothing to alert"
        assert len(webhook.received) == 2  # each alert once (the WARN check never)

        # A replay that starts after the history (the demo run again) alerts only its own failures.
        fresh = _alert_context(
            instance,
            alert_cursor_after_history(instance, ALERTED.resolve_asset_graph().asset_check_keys),
            webhook,
            smtp_sink,
        )
        assert alert_sensor(fresh).skip_message == "nothing to alert"
        dg.materialize([watched, volume_collapsed], instance=instance, partition_key="2026-10-06")
        assert "sent 1 alerts" in alert_sensor(fresh).skip_message and webhook.received[-1]["partition"] == "2026-10-06"


def test_a_webhook_shows_as_its_host_and_smtp_logs_in(webhook, smtp_sink, caplog):
    webhook.fail_first = 100
    secret = f"{webhook.url}/T000/B000/s3cr3t-token"
    alert = Alert("check x failed", "a", "2026-10-05", "x", "run1", "http://ui/runs/run1")
    with caplog.at_level("WARNING"), pytest.raises(DeliveryError) as failed:
        deliver(alert, [WebhookNotifier(secret)], retries=1, backoff_seconds=0.01)
    shown = str(failed.value) + caplog.text + repr(WebhookNotifier(secret))
    assert "s3cr3t-token" not in shown and "/hook" not in shown and "webhook http://127.0.0.1" in shown
    email = AlertResource(
        smtp_host="127.0.0.1",
        smtp_port=smtp_sink.port,
        smtp_recipients="ops@example.com",
        smtp_username="ops",
        smtp_password="pw",
    )
    deliver(alert, email.notifiers(), retries=0)
    assert smtp_sink.logins == [[b"ops", b"pw"]] and len(smtp_sink.received) == 1


def test_a_failing_endpoint_is_retried_and_nothing_is_lost(webhook, smtp_sink):
    webhook.fail_first = 2
    alert = Alert("check x failed", "a", "2026-10-05", "x", "run1", "http://ui/runs/run1")
    deliver(alert, [WebhookNotifier(webhook.url)], retries=2, backoff_seconds=0.01)
    assert webhook.attempts == 3 and len(webhook.received) == 1

    webhook.attempts, webhook.fail_first = 0, 100
    with pytest.raises(DeliveryError, match="after 2 attempts"):
        deliver(alert, [WebhookNotifier(webhook.url)], retries=1, backoff_seconds=0.01)

    with dg.instance_for_test() as instance:
        dg.materialize([watched, volume_collapsed], instance=instance, partition_key="2026-10-05")
        context = _alert_context(instance, None, webhook, smtp_sink, retries=1)
        assert "will retry" in alert_sensor(context).skip_message
        webhook.fail_first = 0
        retry = _alert_context(instance, context.cursor, webhook, smtp_sink)
        assert "sent 1 alerts" in alert_sensor(retry).skip_message
        assert webhook.received[-1]["check"] == "volume_collapsed"


def test_a_channel_that_is_down_delays_only_its_own_alerts_and_repeats_none(webhook, smtp_sink):
    """SMTP refused: the webhook gets each alert exactly once, the later ones too; e-mail catches up once SMTP is
    back."""
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as closed:
        refused_port = closed.server_address[1]  # nothing listens here once the block ends
    with dg.instance_for_test() as instance:

        def tick(cursor, port):
            alerts = AlertResource(
                webhook_url=webhook.url,
                smtp_host="127.0.0.1",
                smtp_port=port,
                smtp_recipients="ops@example.com",
                retries=0,
                backoff_seconds=0.01,
            )
            context = dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"alerts": alerts}, definitions=ALERTED
            )
            return alert_sensor(context).skip_message, context.cursor

        dg.materialize([watched, volume_collapsed], instance=instance, partition_key="2026-10-05")
        message, cursor = tick(None, refused_port)
        assert message.startswith("sent 1 alerts; alert delivery failed, will retry: alert to e-mail via 127.0.0.1")
        for day in ("2026-10-06", "2026-10-07"):
            dg.materialize([watched, volume_collapsed], instance=instance, partition_key=day)
            message, cursor = tick(cursor, refused_port)
            assert message.startswith("sent 1 alerts; alert delivery failed")
        message, cursor = tick(cursor, refused_port)
        assert message.startswith("nothing to alert; alert delivery failed")
        assert [a["partition"] for a in webhook.received] == [
            "2026-10-05",
            "2026-10-06",
            "2026-10-07",
        ]  # each once, in order
        assert smtp_sink.received == []
        message, cursor = tick(cursor, smtp_sink.port)  # SMTP is back: its three alerts, the webhook none again
        assert message == "sent 3 alerts" and len(smtp_sink.received) == 3 and len(webhook.received) == 3
        assert tick(cursor, smtp_sink.port)[0] == "nothing to alert"


def test_a_day_that_does_not_land_fails_its_freshness_checks_and_alerts_once(webhook):
    """The project's definitions: the freshness sensor asks for the checks, they fail (no day has landed), the alert
    sensor sends each failure once; the sensor does not ask again while nothing new arrived, and a landed day passes."""
    sensor = defs.get_sensor_def("freshness_sensor")
    checks = defs.get_job_def("freshness_checks_job")
    alerts = AlertResource(webhook_url=webhook.url, ui_url="http://dagster.example", retries=0)
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, definitions=defs)
        request = sensor(context)
        assert isinstance(request, dg.RunRequest)
        assert {key.asset_key.to_user_string() for key in request.asset_check_keys} == {
            "raw_events",
            "daily_histories",
            "batch_predictions",
        }
        evaluations = checks.execute_in_process(instance=instance).get_asset_check_evaluations()
        assert [e.passed for e in evaluations] == [False] * 3 and all(
            e.severity == dg.AssetCheckSeverity.ERROR for e in evaluations
        )
        expected = evaluations[0].description.rsplit(" ", 4)[1]  # "... expect partition YYYY-MM-DD to have arrived."
        alert_context = dg.build_sensor_context(instance=instance, resources={"alerts": alerts}, definitions=defs)
        assert alert_sensor(alert_context).skip_message == "sent 3 alerts"
        assert sorted(a["asset"] for a in webhook.received) == ["batch_predictions", "daily_histories", "raw_events"]
        assert {a["check"] for a in webhook.received} == {"freshness_check"}
        again = dg.build_sensor_context(instance=instance, definitions=defs, cursor=context.cursor)
        assert isinstance(sensor(again), dg.SkipReason)  # failed and nothing new: not evaluated, not alerted again
        assert (
            alert_sensor(
                dg.build_sensor_context(
                    instance=instance, resources={"alerts": alerts}, definitions=defs, cursor=alert_context.cursor
                )
            ).skip_message
            == "nothing to alert"
        )
        # The day lands: its raw_events check passes.
        instance.report_runless_asset_event(dg.AssetMaterialization("raw_events", partition=expected))
        passed = {
            e.asset_key.to_user_string(): e.passed
            for e in checks.execute_in_process(instance=instance).get_asset_check_evaluations()
        }
        assert passed == {"raw_events": True, "daily_histories": False, "batch_predictions": False}


def test_a_rebuilt_day_has_every_later_snapshot_rebuilt_in_turn():
    """The late-data chain: histories D re-run, then D+1 on the next evaluation, then D+2; D+3 was never built."""
    histories, events = dg.AssetKey("daily_histories"), dg.AssetKey("raw_events")
    days = [(DAY + timedelta(days=k)).isoformat() for k in range(3)]
    with dg.instance_for_test() as instance:
        for day in days:  # the days as the landing runs built them
            instance.report_runless_asset_event(dg.AssetMaterialization(events, partition=day))
            instance.report_runless_asset_event(dg.AssetMaterialization(histories, partition=day))
        when = datetime(2026, 10, 9, 3, tzinfo=UTC)
        cursor = None

        def evaluate() -> list[str]:
            nonlocal cursor, when
            when += timedelta(minutes=1)
            result = dg.evaluate_automation_conditions(
                defs=defs,
                instance=instance,
                asset_selection=dg.AssetSelection.assets(histories),
                evaluation_time=when,
                cursor=cursor,
            )
            cursor = result.cursor
            return sorted(result.get_requested_partitions(histories))

        evaluate()
        assert evaluate() == []  # a steady state requests nothing
        instance.report_runless_asset_event(
            dg.AssetMaterialization(events, partition=days[0])
        )  # a late file: raw_events D again...
        assert evaluate() == [days[0]]  # ...so snapshot D is rebuilt
        instance.report_runless_asset_event(dg.AssetMaterialization(histories, partition=days[0]))
        assert evaluate() == [days[1]]  # then D+1 on the new D
        instance.report_runless_asset_event(dg.AssetMaterialization(histories, partition=days[1]))
        assert evaluate() == [days[2]]
        instance.report_runless_asset_event(dg.AssetMaterialization(histories, partition=days[2]))
        assert evaluate() == []  # D+3 was never built: the landing sensor builds it when its day lands


@pytest.mark.parametrize("horizon", [Timeline.label_horizon_days, 10])
def test_the_reconcile_sensor_rebuilds_what_the_instance_records_but_storage_lost(tmp_path, horizon):
    """After the root is wiped, recorded snapshots and labels come back once their inputs are stored again, each
    once; a label waits for the H days of the code location's horizon."""
    defs = build_definitions(Timeline(label_horizon_days=horizon))
    reconcile_sensor = defs.resolve_sensor_def("reconcile_sensor")
    root = StorageRoot(str(tmp_path))
    today = datetime.now(UTC).date()
    day, later = today - timedelta(days=horizon + 3), today - timedelta(days=horizon + 2)
    events = EVENT_SCHEMA.empty_table()
    for d in [day + timedelta(days=k) for k in range(horizon + 1)]:
        root.write_partition(RAW_EVENTS, d, events)  # the re-ingested days, as the landing sensor brings them back
    resources = {"storage": StorageResource(root=root.uri), "landing": LandingSensorResource()}
    with dg.instance_for_test() as instance:
        for dataset, d in [
            ("daily_histories", day),
            ("daily_histories", later),
            ("order_labels", day),
            ("order_labels", later),
        ]:
            instance.report_runless_asset_event(dg.AssetMaterialization(dataset, partition=d.isoformat()))
        root.write_partition(HISTORIES, later, events)  # this one is stored: not lost

        context = dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
        requests = reconcile_sensor(context)
        assert [(r.job_name, r.asset_selection, r.partition_key) for r in requests] == [
            ("daily_data_job", [dg.AssetKey("daily_histories")], day.isoformat())
        ]
        # order_labels waits for the snapshot of its day and the raw events of the horizon
        lost = lost_partitions(root, {"order_labels": [day, later]}, horizon)
        assert [(p.day, p.waiting_for) for p in lost] == [
            (day, (f"daily_histories {day}",)),
            (later, (f"raw_events {later + timedelta(days=horizon)}",)),
        ]
        root.write_partition(HISTORIES, day, events)  # the snapshot is rebuilt...
        [labels] = reconcile_sensor(dg.build_sensor_context(instance=instance, resources=resources, definitions=defs))
        assert (labels.job_name, labels.partition_key) == ("labels_job", day.isoformat())  # ...so its labels follow
        assert labels.run_key != requests[0].run_key


def test_a_killed_worker_is_seen_dead_and_a_reused_pid_is_not_taken_for_it():
    worker = subprocess.Popen(["sleep", "60"])
    started = psutil.Process(worker.pid).create_time()
    assert worker_alive(worker.pid, started)
    worker.kill()  # not reaped: a zombie, as a killed run worker is until its parent waits
    deadline = time.monotonic() + 10
    while worker_alive(worker.pid, started) and time.monotonic() < deadline:
        time.sleep(0.05)  # the signal is delivered asynchronously
    assert not worker_alive(worker.pid, started) and psutil.Process(worker.pid).status() == psutil.STATUS_ZOMBIE
    worker.wait()
    assert not worker_alive(worker.pid, started)  # gone
    assert not worker_alive(os.getpid(), started - 3600)  # a process that started after the worker is another process
