"""`dagster dev` on 127.0.0.1: the UI's GraphQL API shows every definition and runs a partition."""

import os
import shutil
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from consumer_assets.asset_keys import RAW_EVENTS
from consumer_assets.definitions import defs
from consumer_assets.simulation import SimulationConfig, simulate_to_landing
from consumer_assets.storage import StorageRoot
from local_servers import REPO, free_port, graphql, start, stop, wait_for_webserver

pytestmark = (
    pytest.mark.slow
)  # tens of seconds of Spark, training or servers: `make test` runs it, `make test-fast` does not

DAY = "2026-10-02"


@pytest.fixture(scope="module")
def webserver(tmp_path_factory):
    """dagster dev (webserver and daemon) over a fresh instance and a root with one landed day."""
    folder = tmp_path_factory.mktemp("dev")
    home, data = folder / "home", folder / "data"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    simulate_to_landing(StorageRoot(str(data)), date.fromisoformat(DAY), 1, SimulationConfig(profiles=200))
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "CONSUMER_ASSETS_ROOT": str(data)}
    process = start(
        [
            str(Path(sys.executable).parent / "dagster"),
            "dev",
            "-w",
            "workspace.yaml",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        wait_for_webserver(url, process)
        yield url, data
    finally:
        stop(process)


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
    [repository] = graphql(url, REPOSITORY)["repositoriesOrError"]["nodes"]
    graph = defs.resolve_asset_graph()
    assets = {"/".join(node["assetKey"]["path"]): node for node in repository["assetNodes"]}
    assert set(assets) == {key.to_user_string() for key in graph.get_all_asset_keys()}
    checks = {check["name"] for node in assets.values() for check in node["assetChecksOrError"]["checks"]}
    assert checks == {key.name for key in graph.asset_check_keys}
    assert {job["name"] for job in repository["jobs"]} >= {
        "daily_data_job",
        "catalogue_job",
        "labels_job",
        "training_job",
        "evaluation_job",
        "scoring_job",
        "promote_model_job",
        "freshness_checks_job",
    }
    assert {s["name"] for s in repository["schedules"]} == {"daily_data_schedule", "training_schedule"}
    assert {s["name"] for s in repository["sensors"]} == {
        "landing_sensor",
        "catalogue_sensor",
        "reconcile_sensor",
        "alert_sensor",
        "dead_run_sensor",
        "automation_sensor",
        "freshness_sensor",
    }
    assert {node["groupName"] for node in assets.values()} == {
        "ingest",
        "features",
        "labels",
        "training",
        "validation",
        "serving",
        "monitoring",
    }
    assert all(node["description"] and node["owners"] for node in assets.values())


LAUNCH = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
    __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } ... on
    RunConfigValidationInvalid { errors { message } }
} }
"""


def test_a_partition_run_launched_through_graphql_succeeds(webserver):
    url, data = webserver
    [repository] = graphql(url, REPOSITORY)["repositoriesOrError"]["nodes"]
    params = {
        "selector": {
            "repositoryLocationName": repository["location"]["name"],
            "repositoryName": repository["name"],
            "jobName": "daily_data_job",
            "assetSelection": [{"path": ["raw_events"]}],
        },
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": DAY}]},
    }
    launched = graphql(url, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    deadline, status = time.time() + 240, None
    while time.time() < deadline:
        status = graphql(url, f'{{ runOrError(runId: "{run_id}") {{ ... on Run {{ status }} }} }}')["runOrError"][
            "status"
        ]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(2)
    assert status == "SUCCESS"
    assert StorageRoot(str(data)).manifest(RAW_EVENTS, DAY).rows > 100
