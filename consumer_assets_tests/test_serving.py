"""batch_predictions: scores from the model in service, the same whichever way they are computed."""

import subprocess
import sys
from datetime import date, timedelta

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
import torch

from consumer_assets.asset_keys import EXPLANATIONS, HISTORIES, MODEL_IN_SERVICE, PREDICTIONS, RAW_EVENTS, STATES
from consumer_assets.cli import plot_path
from consumer_assets.features.build_snapshot import Compaction, build_snapshot, snapshot_frame
from consumer_assets.features.histories import HistoryConfig
from consumer_assets.features.resources import SparkResource
from consumer_assets.features.snapshots import layers_of, read_snapshot
from consumer_assets.features.spark import SparkStorage
from consumer_assets.io_manager import ModelInServiceLoader, PartitionIOManager
from consumer_assets.model.encoding import Vocabulary, VocabularyLimits, encode
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import GateVerdict, ModelStore
from consumer_assets.monitoring.assets import check_attribution_drift
from consumer_assets.partitions import daily_partitions
from consumer_assets.serving.assets import serving_assets, serving_checks
from consumer_assets.serving.batch_scoring import predictions_table
from consumer_assets.serving.resources import ExplanationResource, ScoringResource
from consumer_assets.serving.spark_score import score_with_spark
from consumer_assets.serving.states import OnlineModel, ProfileState, cutoff_seconds, states_from_table
from consumer_assets.simulation import ShopSimulator, SimulationConfig
from consumer_assets.storage import StorageRoot
from consumer_assets.storage.resources import StorageResource

pytestmark = (
    pytest.mark.slow
)  # tens of seconds of Spark, training or servers: `make test` runs it, `make test-fast` does not

DAY = date(2026, 10, 3)


@pytest.fixture(scope="module")
def layered_snapshot(spark, tmp_path_factory) -> str:
    """Snapshot DAY stored as a base and two layers of changes, so scoring reads through the layers."""
    folder = str(tmp_path_factory.mktemp("layered") / "root")
    root = StorageRoot(folder)
    for day in ShopSimulator(SimulationConfig(profiles=1500, seed=4)).simulate(DAY - timedelta(days=2), 3):
        root.write_partition(RAW_EVENTS, day.day, day.events)
        build_snapshot(
            spark,
            SparkStorage(root),
            day.day,
            HistoryConfig(window_days=3, max_events=30),
            files=2,
            compaction=Compaction(max_change_share=10.0),
        )
    assert len(layers_of(root.manifest(HISTORIES, DAY), DAY)) == 3
    return folder


@pytest.fixture
def snapshot_root(layered_snapshot, private_copy) -> StorageRoot:
    """A test's own copy of the layered snapshot: tests serve models and write predictions into it."""
    return StorageRoot(str(private_copy(layered_snapshot)))


def _save_model(root: StorageRoot, version: str, seed: int = 0) -> None:
    """An untrained but complete model with a calibration step: scoring mechanics do not depend on what it learnt."""
    histories = read_snapshot(root, DAY)
    vocabulary = Vocabulary.build([histories], VocabularyLimits(min_count=1))
    torch.manual_seed(seed)
    network = ConsumerLSTM.for_vocabulary(ModelConfig(targets=("order_any", "order_c1"), hidden_size=8), vocabulary)
    network.fit_standardisation(encode(histories, vocabulary, 30).profile)
    with torch.no_grad():  # every scoring path must apply it, the Spark one included
        network.calibration_scale.copy_(torch.tensor([0.7, 1.3]))
        network.calibration_bias.copy_(torch.tensor([-0.8, 0.2]))
    ModelStore(root).save_candidate(version, network.eval(), vocabulary, {})


def _serve_a_model(root: StorageRoot, version: str = "v-serving") -> None:
    _save_model(root, version)
    store = ModelStore(root)
    store.write_verdict(GateVerdict(version, True))  # as validated_model leaves it
    store.promote(version, run_id="test")


# What scoring takes as inputs, stored by the tests' fixtures instead of by their assets.
UPSTREAM = [dg.AssetSpec(HISTORIES, partitions_def=daily_partitions), dg.AssetSpec(MODEL_IN_SERVICE)]


def _materialize(root: StorageRoot, engine: str = "process", selection=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*UPSTREAM, *serving_assets, *serving_checks, check_attribution_drift],
        resources={
            "storage": StorageResource(root=root.uri),
            "partition_io_manager": PartitionIOManager(storage=StorageResource(root=root.uri)),
            "model_in_service_loader": ModelInServiceLoader(storage=StorageResource(root=root.uri)),
            "scoring": ScoringResource(threads=1, chunk_rows=500, batch_size=64, engine=engine),
            "spark": SparkResource(master="local[2]", shuffle_partitions=4),
            "explanations": ExplanationResource(top_profiles=20, sample_profiles=30, plotted_profiles=2),
        },
        partition_key=DAY.isoformat(),
        selection=selection,
        raise_on_error=False,
    )


def test_every_profile_is_scored_once_by_the_model_in_service(snapshot_root):
    _serve_a_model(snapshot_root)
    _save_model(snapshot_root, "v-newer-but-not-served", seed=1)  # scoring must ignore it
    result = _materialize(snapshot_root)
    assert result.success
    predictions = snapshot_root.read_partition(PREDICTIONS, DAY)
    histories = read_snapshot(snapshot_root, DAY)
    assert predictions.num_rows == histories.num_rows
    assert set(predictions.column("model_version").to_pylist()) == {"v-serving"}
    assert predictions.column_names == ["profile_id", "snapshot_date", "model_version", "p_order_any", "p_order_c1"]
    assert all(c.passed for c in result.get_asset_check_evaluations())
    metadata = result.asset_materializations_for_node(PREDICTIONS)[0].metadata
    assert metadata["rows"].value == histories.num_rows and metadata["profiles_per_second"].value > 0
    # The states the online service carries forward: every profile, under the model that scored the day,
    # and the head on a state at the cut-off gives that day's batch score.
    states = snapshot_root.read_partition(STATES, DAY)
    assert (
        states.num_rows == histories.num_rows
        and snapshot_root.manifest(STATES, DAY).properties["model_version"] == "v-serving"
    )
    online = OnlineModel(ModelStore(snapshot_root).load("v-serving"))
    ids, h, c, last, totals = states_from_table(states)
    batch = dict(zip(predictions.column("profile_id").to_pylist(), predictions.column("p_order_any").to_pylist()))
    for i in range(0, len(ids), 7):
        state = ProfileState(h[i], c[i], float(last[i]), totals[i])
        assert online.score(state, cutoff_seconds(DAY))[0] == pytest.approx(batch[ids[i]], abs=1e-5)


def test_batch_and_per_row_scores_are_identical(snapshot_root):
    _serve_a_model(snapshot_root)
    model = ModelStore(snapshot_root).load("v-serving")
    histories = read_snapshot(snapshot_root, DAY).slice(0, 60)
    batched = score_table(model, histories, batch_size=32)
    one_by_one = np.concatenate([score_table(model, histories.slice(i, 1)) for i in range(histories.num_rows)])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)


def test_spark_scores_exactly_as_the_in_process_path(snapshot_root, spark):
    _serve_a_model(snapshot_root)
    model = ModelStore(snapshot_root).load("v-serving")
    expected = predictions_table(model, read_snapshot(snapshot_root, DAY), DAY).sort_by("profile_id")
    histories = snapshot_frame(spark, SparkStorage(snapshot_root), DAY).repartition(3)
    scored = (
        score_with_spark(histories, snapshot_root.uri, "v-serving", DAY, batch_size=64).toArrow().sort_by("profile_id")
    )
    assert scored.num_rows == expected.num_rows > 100
    assert scored.column("profile_id").equals(expected.column("profile_id"))
    assert set(scored.column("model_version").to_pylist()) == {"v-serving"}
    for target in ("p_order_any", "p_order_c1"):
        np.testing.assert_allclose(scored.column(target).to_numpy(), expected.column(target).to_numpy(), atol=1e-6)


def test_scoring_on_spark_is_a_setting_and_scores_as_the_process_does(snapshot_root, spark):
    """ScoringResource(engine="spark") materialises batch_predictions through Spark: the same rows and scores (to
    1e-6) as the in-process path, committed with the model's version, and its checks pass."""
    _serve_a_model(snapshot_root)
    by_spark = _materialize(snapshot_root, engine="spark", selection=[PREDICTIONS])
    assert by_spark.success and all(c.passed for c in by_spark.get_asset_check_evaluations())
    assert snapshot_root.manifest(PREDICTIONS, DAY).properties["model_version"] == "v-serving"
    on_spark = snapshot_root.read_partition(PREDICTIONS, DAY).sort_by("profile_id")
    assert _materialize(snapshot_root, selection=[PREDICTIONS]).success
    in_process = snapshot_root.read_partition(PREDICTIONS, DAY).sort_by("profile_id")
    assert on_spark.num_rows == in_process.num_rows == read_snapshot(snapshot_root, DAY).num_rows
    assert on_spark.column("profile_id").equals(in_process.column("profile_id"))
    for target in ("p_order_any", "p_order_c1"):
        np.testing.assert_allclose(on_spark.column(target).to_numpy(), in_process.column(target).to_numpy(), atol=1e-6)


def test_a_pointer_edited_by_hand_to_a_refused_model_scores_nothing(snapshot_root):
    _serve_a_model(snapshot_root)
    _save_model(snapshot_root, "v-refused", seed=2)
    store = ModelStore(snapshot_root)
    store.write_verdict(GateVerdict("v-refused", False, {"check_value_thresholds": "AUC 0.38"}))
    snapshot_root.write_json(
        "models/serving.json", {"version": "v-refused", "since": "by hand"}
    )  # promote() itself refuses
    result = _materialize(snapshot_root)
    assert not result.success and not snapshot_root.has_partition(PREDICTIONS, DAY)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "refusing to serve v-refused: the gate refused it: check_value_thresholds: AUC 0.38" in str(
        failure.event_specific_data.error
    )


def test_empty_and_unseen_histories_still_get_a_score(snapshot_root):
    _serve_a_model(snapshot_root)
    model = ModelStore(snapshot_root).load("v-serving")
    row = read_snapshot(snapshot_root, DAY).slice(0, 1).to_pylist()[0]
    empty = {**row, **{k: [] for k, v in row.items() if isinstance(v, list) and k != "days"}, "length": 0}
    unseen = {**row, "article_id": ["never-seen"] * len(row["article_id"]), "brand_id": ["nope"] * len(row["brand_id"])}
    table = pa.Table.from_pylist([empty, unseen], schema=read_snapshot(snapshot_root, DAY).schema)
    scores = score_table(model, table)
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()


def test_without_a_model_in_service_scoring_fails_with_a_clear_message(snapshot_root):
    result = _materialize(snapshot_root)
    assert not result.success
    message = result.failure_data_for_node(PREDICTIONS).error.message
    assert "No model in service" in message and "validated_model" in message
    assert not snapshot_root.has_partition(PREDICTIONS, DAY)


def test_explanations_end_at_the_batch_scores_and_add_up(snapshot_root):
    _serve_a_model(snapshot_root)
    result = _materialize(snapshot_root)
    assert result.success
    events = snapshot_root.read_partition(EXPLANATIONS, DAY)
    predictions = snapshot_root.read_partition(PREDICTIONS, DAY)
    batch = dict(zip(predictions.column("profile_id").to_pylist(), predictions.column("p_order_any").to_pylist()))
    empty = snapshot_root.manifest(EXPLANATIONS, DAY).properties["empty_score"]
    chosen = {}
    for row in events.to_pylist():
        chosen.setdefault(row["profile_id"], []).append(row)
    assert (
        sorted(w for w in (rows[0]["chosen_as"] for rows in chosen.values())).count("top") == 20 and len(chosen) == 50
    )
    top = sorted(batch, key=lambda p: -batch[p])[:20]
    assert {p for p, rows in chosen.items() if rows[0]["chosen_as"] == "top"} == set(top)
    for profile, rows in chosen.items():
        assert rows[-1]["probability"] == pytest.approx(batch[profile], abs=1e-5)
        assert sum(r["contribution"] for r in rows) == pytest.approx(batch[profile] - empty, abs=1e-5)
    metadata = result.asset_materializations_for_node(EXPLANATIONS)[0].metadata
    assert metadata["model_version"].value == "v-serving" and metadata["profiles"].value == 50
    assert metadata["trajectory_1"].value.startswith("![trajectory of") and "trajectory_3" not in metadata
    assert sum(r.data["events"] for r in metadata["summary"].value.records) == events.num_rows
    # The first explained day of a model has nothing to compare with: said, not judged.
    [drift] = [c for c in result.get_asset_check_evaluations() if c.check_name == "check_attribution_drift"]
    assert drift.passed and drift.description == "not judged: no earlier days to compare with"


def test_explain_command_prints_contributions_and_refuses_bad_input(snapshot_root, tmp_path):
    _serve_a_model(snapshot_root)
    assert _materialize(snapshot_root).success
    profile = snapshot_root.read_partition(PREDICTIONS, DAY).column("profile_id")[0].as_py()

    def cli(*args):
        command = [sys.executable, "-m", "consumer_assets.cli", "explain", "--root", snapshot_root.uri, *args]
        return subprocess.run(command, capture_output=True, text=True, cwd=tmp_path)

    shown = cli("--day", DAY.isoformat(), "--profile", profile, "--out", "plots")
    assert shown.returncode == 0, shown.stderr
    assert f"profile {profile} on {DAY}, model v-serving" in shown.stdout and "sum of contributions" in shown.stdout
    assert (tmp_path / "plots" / f"explain-{profile}-{DAY}.png").read_bytes()[:4] == b"\x89PNG"
    for hostile in ("../../x", "x" * 10_000, "/etc/passwd"):
        refused = cli("--day", DAY.isoformat(), "--profile", hostile)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr and "was not scored on" in refused.stderr
    unknown = cli("--day", DAY.isoformat(), "--profile", "nobody")
    assert unknown.returncode == 1 and "profile 'nobody' was not scored on" in unknown.stderr
    unscored = cli("--day", "2026-09-01", "--profile", profile)
    assert unscored.returncode == 1 and "no batch_predictions for 2026-09-01" in unscored.stderr


@pytest.mark.parametrize("profile", ["../../x", "x" * 10_000, "/etc/passwd", "a/../../b", "..", "p\u0000q", "\ud800"])
def test_explain_names_its_plot_inside_the_folder_whatever_the_id(tmp_path, profile):
    path = plot_path(tmp_path / "out", profile, DAY)
    assert path.parent == tmp_path / "out" and len(path.name) < 120
    assert path.name.startswith("explain-") and "/" not in path.name and ".." not in path.name
    assert plot_path(tmp_path / "out", profile + "!", DAY) != path  # ids that differ keep apart
    path.parent.mkdir()
    path.write_bytes(b"png")  # a name the file system takes
