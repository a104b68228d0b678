"""The code location as Dagster loads it: every asset, check, job and the GPU run tags."""

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import pytest

from consumer_assets.definitions import build_definitions, defs, timeline_from_env
from consumer_assets.labels.assets import labels_matured_condition
from consumer_assets.partitions import daily_partitions
from consumer_assets.timeline import Timeline
from consumer_assets.training.gpu import GPU_POOL, GPU_RUN_TAG

REPO = Path(__file__).resolve().parents[1]


def test_every_asset_and_check_is_defined():
    graph = defs.resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    assert keys == {
        "raw_events",
        "article_catalogue",
        "daily_histories",
        "order_labels",
        "trained_lstm",
        "candidate_evaluation",
        "validated_model",
        "model_in_service",
        "batch_predictions",
        "score_explanations",
        "profile_states",
        "monitoring_stats",
    }
    checks = {key.name for key in graph.asset_check_keys}
    assert {
        "check_quarantine_rate",
        "check_no_event_after_cutoff",
        "check_label_rate_nonzero",
        "check_not_worse_than_serving",
        "check_beats_baselines",
        "check_serving_smoke_test",
        "check_input_drift",
        "check_event_volume",
        "check_attribution_drift",
        "check_catalogue_quarantine_rate",
        "check_catalogue_size_stable",
        "check_catalogue_coverage",
    } <= checks


def test_the_lineage_draws_every_hand_off_from_events_to_predictions():
    graph = defs.resolve_asset_graph()

    def parents(name: str) -> set[str]:
        return {key.to_user_string() for key in graph.get(dg.AssetKey(name)).parent_keys}

    assert parents("daily_histories") >= {"raw_events", "article_catalogue"}
    assert parents("trained_lstm") == {"daily_histories", "order_labels"}
    # its input, the candidate trained_lstm hands on, and the window its baselines and test rows come from
    assert parents("candidate_evaluation") == {"trained_lstm", "daily_histories", "order_labels"}
    assert parents("validated_model") == {"candidate_evaluation"}
    assert parents("model_in_service") == {
        "validated_model"
    }  # the model hand-off, not a file the next step knows to look for
    assert parents("batch_predictions") == {"daily_histories", "model_in_service"}
    assert {"batch_predictions"} <= parents("monitoring_stats")


def test_importing_the_code_location_prints_no_warnings():
    completed = subprocess.run(
        [sys.executable, "-W", "default", "-c", "import consumer_assets.definitions"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Warning" not in completed.stderr, completed.stderr[-2000:]


def test_training_runs_carry_the_gpu_tags():
    job = defs.resolve_job_def("training_job")
    k8s = json.loads(job.tags["dagster-k8s/config"])  # Dagster stores structured tags as JSON
    assert k8s["container_config"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert k8s["pod_spec_config"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert job.tags[GPU_RUN_TAG] == "true"
    trained = defs.resolve_assets_def("trained_lstm")
    op_tag = trained.op.tags["dagster-k8s/config"]
    assert (json.loads(op_tag) if isinstance(op_tag, str) else op_tag) == k8s  # the per-step k8s executor reads it
    assert trained.op.pool == GPU_POOL
    assert "dagster-k8s/config" not in defs.resolve_job_def("daily_data_job").tags
    # The GPU is held for training only: evaluation (baselines, bootstrap) is a CPU run of its own.
    assert [node.name for node in job.nodes] == ["trained_lstm"]
    evaluation = defs.resolve_job_def("evaluation_job")
    assert "dagster-k8s/config" not in evaluation.tags and {n.name for n in evaluation.nodes} >= {
        "candidate_evaluation",
        "validated_model",
    }
    # A lost worker (a preempted node) is retried, a step's own failure is not.
    assert job.tags["dagster/max_retries"] == "2" and job.tags["dagster/retry_on_asset_or_op_failure"] == "false"
    assert defs.resolve_assets_def("raw_events").op.retry_policy.max_retries == 2


def test_freshness_checks_run_only_on_their_own():
    """Inside a day's run a replayed day would judge today's freshness: the daily jobs leave the checks out."""
    for name in ("daily_data_job", "scoring_job"):
        nodes = {node.name for node in defs.resolve_job_def(name).nodes}
        assert not any("freshness" in node for node in nodes) and any("_check_" in node for node in nodes), nodes
    assert any("freshness" in node.name for node in defs.resolve_job_def("freshness_checks_job").nodes)


def test_definitions_validate_from_the_cli():
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO,
        # a code location that fails to load makes dagster signal its process group: keep that away from the test
        # session's servers
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert "Validation successful" in completed.stdout + completed.stderr


def test_values_without_an_io_manager_of_their_own_land_on_the_storage_root_as_json(tmp_path):
    from consumer_assets.io_manager import JsonIOManager
    from consumer_assets.storage import StorageRoot
    from consumer_assets.storage.resources import StorageResource

    @dg.asset
    def summary() -> dict:
        return {"profiles": 3, "days": ["2026-10-01"]}

    @dg.asset
    def doubled(summary: dict) -> dict:
        return {"profiles": 2 * summary["profiles"]}

    @dg.asset
    def opaque():
        return object()

    io_manager = JsonIOManager(storage=StorageResource(root=str(tmp_path)))
    assert isinstance(defs.resources["io_manager"], JsonIOManager)  # the project's default, bound once
    assert dg.materialize([summary, doubled], resources={"io_manager": io_manager}).success
    assert StorageRoot(str(tmp_path)).read_json("_values/doubled/value.json") == {"profiles": 6}
    refused = dg.materialize([opaque], resources={"io_manager": io_manager}, raise_on_error=False)
    assert not refused.success
    [failure] = [e for e in refused.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "returned a object, which is stored only as JSON (no pickle)" in str(failure.event_specific_data.error)


def _upstream_days(definitions: dg.Definitions, asset: str, parent: str, day: str) -> list[str]:
    """The partitions of ``parent`` the UI's lineage shows ``asset``'s partition ``day`` reading."""
    mapping = definitions.get_assets_def(asset).get_partition_mapping(dg.AssetKey(parent))
    result = mapping.get_upstream_mapped_partitions_result_for_partitions(
        daily_partitions.subset_with_partition_keys([day]), daily_partitions, daily_partitions
    )
    return sorted(result.partitions_subset.get_partition_keys())


def _days(first: str, last: str) -> list[str]:
    start, end = date.fromisoformat(first), date.fromisoformat(last)
    return [(start + timedelta(days=k)).isoformat() for k in range((end - start).days + 1)]


@pytest.mark.parametrize(
    "timeline", [Timeline(), Timeline(label_horizon_days=10, training_days=5, held_out_days=2)], ids=str
)
def test_the_lineage_follows_the_timeline(timeline):
    """Labels read D+1..D+H, training at T the snapshots T-H-span..T-H, monitoring the labels of D-H: the graph is
    drawn from the same timeline the code reads."""
    definitions = defs if timeline == Timeline() else build_definitions(timeline)
    h, span = timeline.label_horizon_days, timeline.training_span_days
    day = date(2026, 10, 20)
    after = [(day + timedelta(days=k)).isoformat() for k in (1, h)]
    assert _upstream_days(definitions, "order_labels", "raw_events", day.isoformat()) == _days(*after)
    matured = [(day - timedelta(days=k)).isoformat() for k in (h + span, h)]
    for asset in ("trained_lstm", "candidate_evaluation"):  # the evaluation's baselines train on the same window
        for parent in ("daily_histories", "order_labels"):
            assert _upstream_days(definitions, asset, parent, day.isoformat()) == _days(*matured)
    label_day = (day - timedelta(days=h)).isoformat()
    assert _upstream_days(definitions, "monitoring_stats", "order_labels", day.isoformat()) == [label_day]
    conditions = definitions.get_assets_def("order_labels").automation_conditions_by_key
    assert conditions[dg.AssetKey("order_labels")] == labels_matured_condition(h)


def test_the_timeline_is_read_from_the_environment_once_and_checked(monkeypatch):
    monkeypatch.setenv("CONSUMER_ASSETS_LABEL_HORIZON_DAYS", "10")
    monkeypatch.setenv("CONSUMER_ASSETS_HELD_OUT_DAYS", "2")
    assert timeline_from_env() == Timeline(label_horizon_days=10, held_out_days=2)
    monkeypatch.setenv("CONSUMER_ASSETS_TRAINING_DAYS", "two weeks")
    with pytest.raises(ValueError, match="CONSUMER_ASSETS_TRAINING_DAYS must be a whole number of days"):
        timeline_from_env()
    with pytest.raises(ValueError, match="label_horizon_days must be a whole number of days >= 1"):
        Timeline(label_horizon_days=0)
