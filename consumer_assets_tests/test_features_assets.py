"""daily_histories and order_labels as Dagster assets, on a folder and on S3 (staged through local Spark)."""

import shutil
from datetime import date, timedelta

import boto3
import dagster as dg
import pytest

from consumer_assets.asset_keys import ARTICLE_GROUPS_KEY, HISTORIES, LABELS
from consumer_assets.features.assets import feature_assets, feature_checks
from consumer_assets.features.resources import FeatureResource, SparkResource
from consumer_assets.ingest.assets import ingest_assets, ingest_checks
from consumer_assets.ingest.resources import DataQualityResource
from consumer_assets.io_manager import PartitionIOManager
from consumer_assets.labels.assets import label_checks, labels_asset
from consumer_assets.simulation import SimulationConfig, simulate_to_landing
from consumer_assets.storage import StorageRoot
from consumer_assets.storage.resources import StorageResource
from consumer_assets.timeline import Timeline
from consumer_assets.validation.evaluator import labelled_rows

pytestmark = (
    pytest.mark.slow
)  # tens of seconds of Spark, training or servers: `make test` runs it, `make test-fast` does not

START = date(2026, 10, 1)
DAYS = 5
HORIZON = 3
LABELLED = labels_asset(Timeline(label_horizon_days=HORIZON))


FOLDER_ONLY = pytest.mark.parametrize("root_uri", ["folder"], indirect=True)  # storage-independent: one root is enough


def _resources(uri: str, endpoint: str | None, scratch: str) -> dict:
    storage = StorageResource(root=uri, endpoint_url=endpoint)
    return {
        "storage": storage,
        "partition_io_manager": PartitionIOManager(storage=storage),
        "quality": DataQualityResource(),
        "spark": SparkResource(master="local[2]", shuffle_partitions=4, scratch_dir=scratch),
        "features": FeatureResource(window_days=3, max_events=20, output_files=1, max_change_share=10.0),
    }


def _run(assets, resources, day: date) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources=resources, partition_key=day.isoformat(), raise_on_error=False)


@pytest.fixture(scope="module")
def built_folder_pipeline(tmp_path_factory) -> dict:
    """The folder pipeline, once per module: (a pristine copy of its root, its run results), filled by the first
    test."""
    return {"copy": str(tmp_path_factory.mktemp("pipeline") / "root")}


@pytest.fixture
def pipeline(root, root_uri, spark, tmp_path, built_folder_pipeline):
    """Five simulated days ingested and turned into snapshots, on the parametrised root.

    Tests add to the root, so each gets its own: on a folder a copy of the one built
    for the module, on S3 a fresh build in its own bucket.
    """
    resources = _resources(*root_uri, str(tmp_path))
    if not root.is_s3 and "results" in built_folder_pipeline:
        shutil.copytree(built_folder_pipeline["copy"], root.base)
        return resources, built_folder_pipeline["results"]
    simulate_to_landing(root, START, DAYS, SimulationConfig(profiles=400, seed=3))
    results = []
    for k in range(DAYS):
        results.append(
            _run(
                [*ingest_assets, *ingest_checks, *feature_assets, *feature_checks], resources, START + timedelta(days=k)
            )
        )
    if not root.is_s3:
        shutil.copytree(root.base, built_folder_pipeline["copy"])
        built_folder_pipeline["results"] = results
    return resources, results


def test_histories_and_labels_materialise(pipeline, root: StorageRoot):
    resources, results = pipeline
    assert all(r.success for r in results)
    modes = [r.asset_materializations_for_node(HISTORIES)[0].metadata["mode"].value for r in results]
    assert modes == ["from_scratch"] + ["incremental"] * (DAYS - 1)
    layers = [r.asset_materializations_for_node(HISTORIES)[0].metadata["layers"].value for r in results]
    assert layers == list(range(1, DAYS + 1))
    first = results[0].asset_materializations_for_node(HISTORIES)[0].metadata
    assert first["profiles"].value == root.manifest(HISTORIES, START).rows > 20
    assert first["events_per_profile_plot"].value.startswith("![events per profile](data:image/png;base64,")
    assert {r["field"] for r in (rec.data for rec in first["vocabulary_sizes"].value.records)} == {
        "article_id",
        "category_id",
        "brand_id",
    }
    checks = {c.check_name: c.passed for r in results for c in r.get_asset_check_evaluations()}
    assert checks["check_no_event_after_cutoff"] and checks["check_profile_count_stable"]

    labelled = _run([LABELLED, *label_checks], resources, START)
    assert labelled.success
    labels = root.read_partition(LABELS, START)
    assert labels.num_rows == root.manifest(HISTORIES, START).rows
    groups = root.read_json(ARTICLE_GROUPS_KEY)["groups"]
    assert len(groups) == 5
    assert set(labels.column_names) >= {"order_any", *(f"order_{g.lower()}" for g in groups)}
    assert [c.passed for c in labelled.get_asset_check_evaluations()] == [True]


@FOLDER_ONLY
def test_a_changed_window_rebuilds_from_scratch_instead_of_extending(pipeline, root: StorageRoot):
    resources, _ = pipeline
    last = START + timedelta(days=DAYS - 1)
    wider = {
        **resources,
        "features": FeatureResource(window_days=5, max_events=20, output_files=1),
    }
    result = _run([*feature_assets], wider, last)
    assert result.success
    assert result.asset_materializations_for_node(HISTORIES)[0].metadata["mode"].value == "from_scratch"
    assert root.manifest(HISTORIES, last).properties["window_days"] == 5
    assert root.read_partition(HISTORIES, last).num_rows > root.manifest(HISTORIES, last - timedelta(days=1)).rows


@FOLDER_ONLY
def test_rows_for_training_read_across_scratch_and_incremental_snapshots(pipeline, root: StorageRoot):
    resources, _ = pipeline
    days = (START, START + timedelta(days=1))  # built from scratch, then incrementally
    for day in days:
        assert _run([LABELLED], resources, day).success
    table, y = labelled_rows(root, days, ("order_any",), "train")
    expected = sum(root.manifest(HISTORIES, d).rows for d in days)
    assert 0.6 * expected < table.num_rows == len(y) < expected  # the train share of both days


@FOLDER_ONLY
def test_labels_refuse_to_materialise_before_the_window_has_landed(pipeline, root: StorageRoot):
    resources, _ = pipeline
    day = START + timedelta(days=DAYS - 2)  # D+1 exists, D+2 and D+3 do not
    result = _run([LABELLED, *label_checks], resources, day)
    assert not result.success
    message = result.failure_data_for_node(LABELS).error.message
    assert f"missing: {day + timedelta(days=2)}, {day + timedelta(days=3)}" in message
    assert not root.has_partition(LABELS, day)


def test_histories_refuse_without_raw_events(spark, tmp_path):
    resources = _resources(str(tmp_path / "root"), None, str(tmp_path))
    result = _run([*feature_assets], resources, START)
    assert not result.success
    assert "raw_events has no partition for 2026-10-01" in result.failure_data_for_node(HISTORIES).error.message


def test_on_s3_spark_output_lands_as_objects_on_the_server(spark, s3_endpoint, s3_bucket, tmp_path):
    uri = f"s3://{s3_bucket}/ca"
    root = StorageRoot(uri, endpoint_url=s3_endpoint)
    simulate_to_landing(root, START, 1, SimulationConfig(profiles=200))
    result = _run([*ingest_assets, *feature_assets], _resources(uri, s3_endpoint, str(tmp_path)), START)
    assert result.success
    keys = [
        o["Key"]
        for o in boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(
            Bucket=s3_bucket, Prefix=f"ca/{HISTORIES}/"
        )["Contents"]
    ]
    parquet = [k for k in keys if k.endswith(".parquet")]
    assert f"ca/{HISTORIES}/date=2026-10-01/_manifest.json" in keys
    assert parquet and all("/run-" in k for k in parquet)
    assert not [k for k in keys if k.endswith("_SUCCESS") or k.endswith(".crc")]
    assert root.read_partition(HISTORIES, START).num_rows == root.manifest(HISTORIES, START).rows > 0
