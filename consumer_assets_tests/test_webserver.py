"""`dagster dev` on 127.0.0.1: the UI's GraphQL API shows every definition and runs a partition."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date
import urllib.request
from pathlib import Path

import pytest

from consumer_assets.datasets import RAW_EVENTS
from consumer_assets.definitions import defs
from consumer_assets.simulation import SimulationConfig, simulate_to_landing
from consumer_assets.storage import StorageRoot

REPO = Path(__file__).resolve().parents[1]
DAY = "2026-10-02"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps({"query": query, "variables": variables or {}}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    """dagster dev (webserver and daemon) over a fresh instance and a root with one landed day."""
    folder = tmp_path_factory.mktemp("dev")
    home, data = folder / "home", folder / "data"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    simulate_to_landing(StorageRoot(str(data)), date.fromisoformat(DAY), 1, SimulationConfig(profiles=200))
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "CONSUMER_ASSETS_ROOT": str(data)}
    dagster = str(Path(sys.executable).parent / "dagster")
    process = subprocess.Popen(
        ["env", "--default-signal=INT,TERM", dagster, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    deadline = time.time() + 180
    while True:
        try:
            _graphql(url, "{ version }")
            break
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail("dagster dev did not answer on 127.0.0.1 within 180 s")
            time.sleep(1)
    yield url, data
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


REPOSITORY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    name location { name }
    jobs { name } schedules { name cronSchedule executionTimezone } sensors { name }
    assetNodes { assetKey { path } groupName owners { ... on TeamAssetOwner { team } } description
                 assetChecksOrError { ... on AssetChecks { checks { name } } } }
} } } }
"""


def test_every_definition_is_in_the_ui(webserver):
    url, _ = webserver
    [repository] = _graphql(url, REPOSITORY)["repositoriesOrError"]["nodes"]
    graph = defs.resolve_asset_graph()
    assets = {"/".join(node["assetKey"]["path"]): node for node in repository["assetNodes"]}
    assert set(assets) == {key.to_user_string() for key in graph.get_all_asset_keys()}
    checks = {check["name"] for node in assets.values() for check in node["assetChecksOrError"]["checks"]}
    assert checks == {key.name for key in graph.asset_check_keys}
    assert {job["name"] for job in repository["jobs"]} >= {"daily_data_job", "labels_job", "training_job", "scoring_job"}
    assert {s["name"] for s in repository["schedules"]} == {"daily_data_schedule", "training_schedule"}
    assert {s["name"] for s in repository["sensors"]} == {"landing_sensor", "alert_sensor", "automation_sensor"}
    assert {node["groupName"] for node in assets.values()} == {"ingest", "features", "training", "serving", "monitoring"}
    assert all(node["description"] and node["owners"] for node in assets.values())


LAUNCH = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } ... on RunConfigValidationInvalid { errors { message } }
} }
"""


def test_a_partition_run_launched_through_graphql_succeeds(webserver):
    url, data = webserver
    [repository] = _graphql(url, REPOSITORY)["repositoriesOrError"]["nodes"]
    params = {
        "selector": {
            "repositoryLocationName": repository["location"]["name"],
            "repositoryName": repository["name"],
            "jobName": "daily_data_job",
            "assetSelection": [{"path": ["raw_events"]}],
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": DAY}]},
    }
    launched = _graphql(url, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline, status = time.time() + 240, None
    while time.time() < deadline:
        status = _graphql(url, '{ runOrError(runId: "%s") { ... on Run { status } } }' % run_id)["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    assert StorageRoot(str(data)).manifest(RAW_EVENTS, DAY).rows > 100
