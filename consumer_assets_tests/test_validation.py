"""The gate with real training on small simulated data: good candidates serve, sabotaged ones never do."""

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
import torch

from consumer_assets.asset_keys import CANDIDATE_EVALUATION, LABELS, RAW_EVENTS
from consumer_assets.features.build_snapshot import build_snapshot
from consumer_assets.features.histories import HistoryConfig
from consumer_assets.features.resources import FeatureResource
from consumer_assets.features.spark import SparkStorage
from consumer_assets.io_manager import CandidateIOManager, EvaluationIOManager
from consumer_assets.labels.build_labels import build_labels
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import Candidate, ModelStore
from consumer_assets.serving.explain import explain
from consumer_assets.serving.smoke import synthetic_histories
from consumer_assets.simulation import ShopSimulator, SimulationConfig
from consumer_assets.storage import StorageRoot
from consumer_assets.storage.resources import StorageResource
from consumer_assets.timeline import Timeline
from consumer_assets.training.assets import training_asset
from consumer_assets.training.resources import TrainingResource
from consumer_assets.validation.assets import (
    evaluation_asset,
    validated_model,
    validation_assets,
    validation_checks,
)
from consumer_assets.validation.evaluator import labelled_rows
from consumer_assets.validation.resources import GateResource

pytestmark = (
    pytest.mark.slow
)  # tens of seconds of Spark, training or servers: `make test` runs it, `make test-fast` does not

START = date(2026, 10, 1)
DAYS = 13
HORIZON = 4
TIMELINE = Timeline(label_horizon_days=HORIZON)
TRAINED = [training_asset(TIMELINE), evaluation_asset(TIMELINE)]
TRAIN_AT = START + timedelta(days=DAYS - 1)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, spark) -> Path:
    """Thirteen simulated days of snapshots, labels matured for all but the last four."""
    folder = tmp_path_factory.mktemp("gate") / "root"
    root = StorageRoot(str(folder))
    for day in ShopSimulator(SimulationConfig(profiles=10_000, seed=21)).simulate(START, DAYS):
        root.write_partition(RAW_EVENTS, day.day, day.events)
    spark_storage = SparkStorage(root)
    for k in range(DAYS):
        build_snapshot(
            spark, spark_storage, START + timedelta(days=k), HistoryConfig(window_days=14, max_events=50), files=1
        )
    for k in range(DAYS - HORIZON):
        build_labels(spark, spark_storage, START + timedelta(days=k), HORIZON, {})
    return folder


@pytest.fixture(scope="module")
def served(prepared, tmp_path_factory) -> tuple[Path, str, dg.ExecuteInProcessResult]:
    """The prepared data with a good model trained, gated and promoted into service: trained once per module."""
    folder = tmp_path_factory.mktemp("served") / "root"
    shutil.copytree(prepared, folder)
    result = _train_and_gate(folder)
    assert result.success, {k: c.description for k, c in _checks(result).items() if not c.passed}
    [promotion] = [
        m for m in result.get_asset_materialization_events() if m.asset_key == dg.AssetKey("model_in_service")
    ]
    version = ModelStore(StorageRoot(str(folder))).serving_version()
    assert (
        promotion.materialization.metadata["version"].value == version
    )  # the hand-off the UI draws names the model that serves
    return folder, version, result


@pytest.fixture
def root_folder(request, prepared, private_copy) -> Path:
    """A private copy of the prepared data (with the served model when the test asks for ``serving``), so tests share no
    state."""
    return private_copy(request.getfixturevalue("served")[0] if "serving" in request.fixturenames else prepared)


def _resources(folder: Path, warm_start: bool = True, **gate) -> dict:
    return {
        "storage": StorageResource(root=str(folder)),
        "training": TrainingResource(
            max_epochs=20,
            patience=3,
            one_snapshot_per_profile=True,  # short epochs: more, smaller steps on this small shop, in the same time
            hidden_size=16,
            batch_size=64,
            threads=2,
            learning_rate=3e-3,
            warm_start=warm_start,
        ),
        "features": FeatureResource(),
        "gate": GateResource(**gate),
        "candidate_io_manager": CandidateIOManager(storage=StorageResource(root=str(folder))),
        "evaluation_io_manager": EvaluationIOManager(storage=StorageResource(root=str(folder))),
    }


def _train_and_gate(folder: Path, day: date = TRAIN_AT, warm_start: bool = True, **gate) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*TRAINED, *validation_assets, *validation_checks],
        resources=_resources(folder, warm_start, **gate),
        partition_key=day.isoformat(),
        raise_on_error=False,
    )


def _gate_only(folder: Path, day: date, **gate) -> dg.ExecuteInProcessResult:
    """The evaluation, its checks and the promotion of an already stored candidate, without training."""
    return dg.materialize(
        [*TRAINED, *validation_assets, *validation_checks],
        resources=_resources(folder, **gate),
        partition_key=day.isoformat(),
        selection=dg.AssetSelection.assets(CANDIDATE_EVALUATION, validated_model)
        | dg.AssetSelection.checks_for_assets(CANDIDATE_EVALUATION),
        raise_on_error=False,
    )


def _promotion_only(folder: Path, day: date) -> dg.ExecuteInProcessResult:
    """A hand-started materialisation of validated_model alone, with no checks in the run."""
    return dg.materialize(
        [*TRAINED, *validation_assets],
        resources=_resources(folder),
        partition_key=day.isoformat(),
        selection=[validated_model],
        raise_on_error=False,
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


def _store_variant(folder: Path, source: str, version: str, day: date, change) -> None:
    """Store a modified copy of candidate ``source`` as ``version``, as trained_lstm(``day``) would have."""
    root = StorageRoot(str(folder))
    store = ModelStore(root)
    model = store.load(source)
    change(model.network)
    training = store.read_training(source)
    store.save_candidate(version, model.network, model.vocabulary, training)
    store.record_partition(day.isoformat(), Candidate(version, "test"))


@pytest.fixture
def serving(root_folder, served) -> str:
    """The version in service in ``root_folder`` (a copy of ``served``)."""
    return served[1]


def _assert_refused_and_still_serving(
    folder: Path, day: date, version: str, serving_version: str, gated: dg.ExecuteInProcessResult
) -> None:
    """``gated``, the run that judged ``version``, promoted nothing; nor does a hand-started promotion."""
    store = ModelStore(StorageRoot(str(folder)))
    before = (folder / "models/serving.json").read_bytes()
    assert not gated.success
    assert not [e for e in gated.get_asset_materialization_events() if e.asset_key == validated_model.key]
    hand_started = _promotion_only(folder, day)
    assert not hand_started.success
    assert f"Refusing to serve {version}" in hand_started.failure_data_for_node("validated_model").error.message
    assert (folder / "models/serving.json").read_bytes() == before
    assert store.serving_version() == serving_version
    scores = score_table(store.load(serving_version), synthetic_histories(50, 20))
    assert np.isfinite(scores).all()


def test_a_good_candidate_passes_every_check_and_serves(served):
    root_folder, _, result = served
    checks = _checks(result)
    assert result.success, {k: c.description for k, c in checks.items() if not c.passed}
    assert set(checks) == {
        "check_value_thresholds",
        "check_not_worse_than_serving",
        "check_beats_baselines",
        "check_slices",
        "check_sanity",
        "check_serving_smoke_test",
    }
    assert all(c.passed for c in checks.values())
    assert "no model in service yet" in checks["check_not_worse_than_serving"].description
    store = ModelStore(StorageRoot(str(root_folder)))
    version = store.serving_version()
    assert result.asset_materializations_for_node("trained_lstm")[0].metadata["version"].value == version
    metadata = result.asset_materializations_for_node("candidate_evaluation")[0].metadata
    assert metadata["version"].value == version
    # The baselines are real fits with real figures, reported beside the candidate.
    evaluation = store.read_evaluation(version)
    for name in ("logistic_regression", "random_forest", "gradient_boosting"):
        assert 0.5 < evaluation["baselines"][name]["auc"] < 1.0
    assert evaluation["baseline_training_rows"] > 1000
    assert metadata["test_auc"].value == pytest.approx(evaluation["candidate"]["order_any"]["auc"])
    assert metadata["test_auc"].value > 0.6
    assert metadata["roc"].value.startswith("![ROC curves](data:image/png;base64,")
    assert store.serving().run_id == result.run_id


def test_a_candidate_trained_on_shuffled_labels_never_serves(root_folder, serving):
    root = StorageRoot(str(root_folder))
    rng = np.random.default_rng(0)
    for day in root.list_partitions(LABELS)[:-1]:  # the training and validation snapshots; test labels stay true
        labels = root.read_partition(LABELS, day)
        shuffled = labels.take(pa.array(rng.permutation(labels.num_rows)))
        labels = pa.table(
            {
                name: labels.column(name) if name == "profile_id" else shuffled.column(name)
                for name in labels.column_names
            }
        )
        root.write_partition(LABELS, day, labels, properties=root.manifest(LABELS, day).properties)
    later = TRAIN_AT + timedelta(days=1)
    result = _train_and_gate(root_folder, later, warm_start=False)  # from scratch: nothing to learn but noise
    checks = _checks(result)
    assert not result.success
    assert not checks["check_value_thresholds"].passed
    assert "below the floor" in checks["check_value_thresholds"].description
    version = ModelStore(root).candidate_for_partition(later.isoformat()).version
    _assert_refused_and_still_serving(root_folder, later, version, serving, result)


def test_a_candidate_with_nan_weights_never_serves(root_folder, serving):
    day = TRAIN_AT + timedelta(days=2)
    _store_variant(
        root_folder,
        serving,
        "nan-weights",
        day,
        lambda net: net.lstm.weight_hh_l0.data.__setitem__((0, 0), float("nan")),
    )
    gated = _gate_only(root_folder, day)
    checks = _checks(gated)
    assert not checks["check_sanity"].passed
    assert "not finite" in checks["check_sanity"].description
    _assert_refused_and_still_serving(root_folder, day, "nan-weights", serving, gated)


def test_a_candidate_worse_than_the_model_in_service_never_serves(root_folder, serving):
    day = TRAIN_AT + timedelta(days=3)

    def degrade(network):
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            network.head[0].weight.add_(torch.randn(network.head[0].weight.shape, generator=generator) * 2.0)

    _store_variant(root_folder, serving, "degraded", day, degrade)
    gated = _gate_only(root_folder, day, min_auc=0.0, max_calibration_error=1.0)
    checks = _checks(gated)
    assert not checks["check_not_worse_than_serving"].passed
    assert f"worse than the model in service {serving}" in checks["check_not_worse_than_serving"].description
    _assert_refused_and_still_serving(root_folder, day, "degraded", serving, gated)


def test_a_candidate_with_a_tampered_config_never_serves(root_folder, serving):
    day = TRAIN_AT + timedelta(days=4)
    _store_variant(root_folder, serving, "tampered", day, lambda net: None)
    config_path = root_folder / "models/candidates/tampered/config.json"
    config = json.loads(config_path.read_text())
    config["dropout"] = 0.0
    config_path.write_text(json.dumps(config))
    gated = _gate_only(root_folder, day)
    checks = _checks(gated)
    assert "config.json was changed after training" in checks["check_value_thresholds"].description
    assert not checks["check_serving_smoke_test"].passed
    _assert_refused_and_still_serving(root_folder, day, "tampered", serving, gated)


def test_rollback_is_a_run_that_accepts_only_validated_versions(root_folder, serving, tmp_path):
    """`models promote` runs promote_model_job in the instance: the UI's model_in_service names the version, and a
    refused version is a failed run that leaves the pointer alone."""
    home = tmp_path / "dagster_home"
    home.mkdir()

    def cli(*args, **env):
        environment = {**os.environ, "DAGSTER_HOME": str(home), **env}
        return subprocess.run(
            [sys.executable, "-m", "consumer_assets.cli", "models", *args, "--root", str(root_folder)],
            capture_output=True,
            text=True,
            env=environment,
        )

    day = TRAIN_AT + timedelta(days=2)
    _store_variant(root_folder, serving, "never-validated", day, lambda net: None)
    refused = cli("promote", "never-validated")
    assert (
        refused.returncode == 1
        and "promote_model_job failed" in refused.stderr
        and "the gate never judged it" in refused.stderr
    )
    assert ModelStore(StorageRoot(str(root_folder))).serving_version() == serving
    accepted = cli("promote", serving, "--reason", "test rollback")
    assert accepted.returncode == 0, accepted.stderr
    history = ModelStore(StorageRoot(str(root_folder))).serving_history()
    assert [h.version for h in history] == [serving, serving]
    assert history[-1].reason == "test rollback" and history[-1].promoted_by == "promote_model job"
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="promote_model_job"))
        assert sorted(r.status.value for r in runs) == ["FAILURE", "SUCCESS"]
        latest = instance.get_latest_materialization_event(dg.AssetKey("model_in_service")).asset_materialization
        assert latest.metadata["version"].value == serving and latest.metadata["reason"].value == "test rollback"
    without_home = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    unrecorded = subprocess.run(
        [sys.executable, "-m", "consumer_assets.cli", "models", "promote", serving, "--root", str(root_folder)],
        capture_output=True,
        text=True,
        env=without_home,
    )
    assert unrecorded.returncode == 2 and "set DAGSTER_HOME" in unrecorded.stderr
    listing = cli("list").stdout
    assert f"{serving}" in listing and "<- in service" in listing


def test_too_little_data_is_its_own_outcome_and_nothing_serves(root_folder):
    result = _train_and_gate(root_folder, min_positives=1_000_000)
    checks = _checks(result)
    assert not result.success
    assert not [e for e in result.get_asset_materialization_events() if e.asset_key == validated_model.key]
    assert not (root_folder / "models/serving.json").exists()
    for name in (
        "check_value_thresholds",
        "check_not_worse_than_serving",
        "check_beats_baselines",
        "check_slices",
        "check_sanity",
    ):
        check = checks[name]
        assert not check.passed and check.metadata["outcome"].value == "too_little_data", name
        assert "too little data to judge" in check.description
    value = checks["check_value_thresholds"]
    rows, positives = value.metadata["test_rows"].value, value.metadata["test_positives"].value
    assert f"{rows} test rows with {positives} positives" in value.description
    # The rows it would take at the observed rate, so the user knows how far off a verdict is.
    assert value.metadata["rows_needed"].value == pytest.approx(1_000_000 * rows / positives, rel=0.01)


def test_every_gate_figure_carries_its_sample_size_and_interval(root_folder, serving):
    evaluation = ModelStore(StorageRoot(str(root_folder))).read_evaluation(serving)
    data = evaluation["test_data"]
    assert len(evaluation["test_days"]) == 3 and max(evaluation["train_days"]) < min(evaluation["test_days"])
    assert data["rows"] > data["profiles"] > 0 and data["positives"] >= 100
    assert sum(day["rows"] for day in data["per_day"].values()) == data["rows"]
    for m in [evaluation["candidate"]["order_any"], *evaluation["baselines"].values()]:
        assert (m["rows"], m["positives"], m["profiles"]) == (data["rows"], data["positives"], data["profiles"])
        for name in ("auc", "mean_log_likelihood", "ece", "observed_over_predicted"):
            assert m[f"{name}_ci_low"] <= m[name] <= m[f"{name}_ci_high"] or name == "ece", name
            assert m[f"{name}_ci_high"] > m[f"{name}_ci_low"], name
    # Calibrated on validation profiles of the same later days: the test rate is met within its interval.
    m = evaluation["candidate"]["order_any"]
    assert m["observed_over_predicted_ci_low"] < 1 < m["observed_over_predicted_ci_high"]
    for comparison in evaluation["comparisons"].values():
        assert (
            comparison["auc_difference_ci_low"] < comparison["auc_difference_ci_high"]
            and comparison["resamples"] == 300
        )


def test_a_candidate_that_loses_to_the_baselines_never_serves(root_folder, serving):
    day = TRAIN_AT + timedelta(days=5)

    def blur(network):  # noise on the head: the scores keep some signal, less than the hand-made features give
        generator = torch.Generator().manual_seed(1)
        with torch.no_grad():
            network.head[0].weight.add_(torch.randn(network.head[0].weight.shape, generator=generator) * 1.0)

    _store_variant(root_folder, serving, "blurred", day, blur)
    gated = _gate_only(root_folder, day, min_auc=0.0, max_calibration_error=1.0, max_rate_ratio=100.0)
    evaluation = ModelStore(StorageRoot(str(root_folder))).read_evaluation("blurred")
    strongest = evaluation["strongest_baseline"]
    assert evaluation["comparisons"][strongest]["auc_difference_ci_high"] < 0
    checks = _checks(gated)
    check = checks["check_beats_baselines"]
    assert not check.passed and check.metadata["outcome"].value == "refuse"
    assert f"worse than the strongest baseline ({strongest})" in check.description
    assert check.metadata["strongest_baseline"].value == strongest
    _assert_refused_and_still_serving(root_folder, day, "blurred", serving, gated)


def _with_event(rows: list[dict], event_type: str, seconds_before_cutoff: float = 3600.0) -> pa.Table:
    """Each snapshot row with one more event of ``event_type`` just before the cut-off, totals updated."""
    changed = []
    for row in rows:
        row = dict(row)
        gap = row["dt_cutoff_s"][-1] - seconds_before_cutoff
        for name, value in (
            ("event_type", event_type),
            ("article_id", row["article_id"][-1]),
            ("category_id", row["category_id"][-1]),
            ("brand_id", row["brand_id"][-1]),
            ("price", row["price"][-1]),
            ("platform", row["platform"][-1]),
            ("dt_prev_s", gap),
            ("dt_cutoff_s", seconds_before_cutoff),
            ("hour", 23),
            ("weekday", row["weekday"][-1]),
        ):
            row[name] = [*row[name], value]
        row["length"] += 1
        row["window_events"] += 1
        row[f"window_{event_type}"] += 1
        row["window_spend"] += row["price"][-1] if event_type == "order" else 0.0
        row["active_days"] += 1 if gap > 86_400 else 0
        row["recency_s"] = seconds_before_cutoff
        changed.append(row)
    return pa.Table.from_pylist(changed)


def test_explanations_follow_the_simulators_chain(root_folder, serving):
    """On real trained weights: a cart add just before the cut-off raises the score more than a view, an order resets
    it."""
    root = StorageRoot(str(root_folder))
    model = ModelStore(root).load(serving)
    day = max(root.list_partitions(LABELS))
    table, _ = labelled_rows(root, (day,), ("order_any",), "test")
    rows = [r for r in table.drop_columns(["snapshot_date"]).to_pylist() if r["length"] < model.config.max_length][:300]
    last = {}
    for event_type in ("view", "add_to_cart", "order"):
        events = explain(model, _with_event(rows, event_type)).events
        ends = np.flatnonzero(
            np.r_[
                events.column("profile_id").to_numpy(zero_copy_only=False)[1:]
                != events.column("profile_id").to_numpy(zero_copy_only=False)[:-1],
                True,
            ]
        )
        last[event_type] = events.column("contribution").to_numpy()[
            ends
        ]  # the planted event's contribution, one per profile
        assert len(last[event_type]) == len(rows)
    # Any event an hour before the cut-off says the profile is around; a cart add says more (interested or ready).
    assert last["add_to_cart"].mean() > last["view"].mean() > 0 and (last["add_to_cart"] > last["view"]).mean() > 0.5
    # An order sends the chain back to dormant or browsing: it moves the score less than a view or a cart add would.
    assert (last["order"] < last["view"]).mean() > 0.8 and (last["order"] < last["add_to_cart"]).mean() > 0.9
