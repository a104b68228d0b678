"""monitoring_stats: sketches and PSI, the drift scenarios of the simulator, realised figures, the alerting checks."""

import shutil
from dataclasses import replace
from datetime import date, timedelta

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest
import torch

from consumer_assets.asset_keys import HISTORIES, MONITORING, PREDICTIONS, RAW_EVENTS
from consumer_assets.features.build_snapshot import build_snapshot
from consumer_assets.features.histories import HistoryConfig
from consumer_assets.features.resources import FeatureResource
from consumer_assets.features.snapshots import read_snapshot
from consumer_assets.features.spark import SparkStorage
from consumer_assets.io_manager import PartitionIOManager
from consumer_assets.labels.build_labels import build_labels
from consumer_assets.model.encoding import Vocabulary, VocabularyLimits, encode
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.store import GateVerdict, ModelStore
from consumer_assets.monitoring.assets import monitoring_asset, monitoring_checks
from consumer_assets.monitoring.daily import MonitoringConfig, matured_scored_day, monitor_day
from consumer_assets.monitoring.drift import band, categorical_sketch, continuous_sketch, ks, merge, psi
from consumer_assets.monitoring.resources import MonitoringResource
from consumer_assets.monitoring.stats import realised
from consumer_assets.serving.batch_scoring import predictions_table
from consumer_assets.simulation import Drift, ShopSimulator, SimulationConfig
from consumer_assets.storage import StorageRoot
from consumer_assets.storage.resources import StorageResource
from consumer_assets.timeline import Timeline

pytestmark = (
    pytest.mark.slow
)  # tens of seconds of Spark, training or servers: `make test` runs it, `make test-fast` does not

START = date(2026, 10, 1)
STABLE_DAYS = 10
DRIFT_DAY = START + timedelta(days=STABLE_DAYS)
WINDOW, HORIZON, REFERENCE = 3, 2, 3
SHOP = SimulationConfig(profiles=4000, seed=21)
CONFIG = MonitoringConfig(reference_days=REFERENCE, horizon_days=HORIZON, history_window_days=WINDOW)
EDGES = np.linspace(-5, 5, 101)


def test_psi_and_ks_on_known_distributions():
    rng = np.random.default_rng(0)
    reference = continuous_sketch(rng.normal(0, 1, 20_000), EDGES)
    same = continuous_sketch(rng.normal(0, 1, 20_000), EDGES)
    nudged = continuous_sketch(rng.normal(0.1, 1, 20_000), EDGES)
    shifted = continuous_sketch(rng.normal(1.0, 1, 20_000), EDGES)
    assert psi(reference, same) < 0.01 and band(psi(reference, same)) == "stable"
    assert 0.005 < psi(reference, nudged) < 0.1
    assert psi(reference, shifted) > 0.25 and band(psi(reference, shifted)) == "significant"
    assert ks(reference, same) < 0.02 and ks(reference, shifted) == pytest.approx(
        0.38, abs=0.03
    )  # exact KS of N(0,1) vs N(1,1)

    mix = categorical_sketch(pa.array(["view"] * 950 + ["cart"] * 50))
    broken = categorical_sketch(pa.array(["view"] * 100 + ["cart"] * 50 + ["unknown"] * 5))  # views lost, a new value
    assert psi(mix, mix) == 0 and psi(mix, broken) > 0.25 and ks(mix, broken) is None


def test_a_merged_sketch_is_the_sketch_of_the_union():
    rng = np.random.default_rng(1)
    parts = [rng.exponential(1, 1000) for _ in range(3)]
    merged = merge(continuous_sketch(p, EDGES) for p in parts)
    assert merged == continuous_sketch(np.concatenate(parts), EDGES)
    words = [pa.array(["a", "b", "b"]), pa.array(["b", "c"])]
    assert merge(categorical_sketch(w) for w in words)["counts"] == {"a": 1, "b": 3, "c": 1}
    with pytest.raises(ValueError, match="different bin edges"):
        merge([continuous_sketch(parts[0], EDGES), continuous_sketch(parts[0], EDGES[:50])])


def test_realised_figures_of_matured_predictions():
    p = np.array(
        [0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05]
    )
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], float)
    figures = realised(p, y)
    assert figures["expected_orders"] == pytest.approx(p.sum())
    assert figures["realised_orders"] == 3
    assert figures["realised_over_predicted"] == pytest.approx(3 / p.sum())
    assert figures["top_decile_share_of_orders"] == pytest.approx(2 / 3)  # the top 2 of 20 rows hold 2 of 3 orders
    assert figures["top_decile_lift"] == pytest.approx((2 / 2) / (3 / 20))
    assert figures["auc"] > 0.9 and len(figures["calibration"]) == 10


def _serve_untrained_model(root: StorageRoot) -> None:
    """A complete model whose scores depend on the inputs: enough to watch the score distribution."""
    histories = read_snapshot(root, START + timedelta(days=WINDOW))
    vocabulary = Vocabulary.build([histories], VocabularyLimits(min_count=1))
    torch.manual_seed(0)
    network = ConsumerLSTM.for_vocabulary(ModelConfig(targets=("order_any",), hidden_size=8), vocabulary)
    network.fit_standardisation(encode(histories, vocabulary, 20).profile)
    ModelStore(root).save_candidate("v-monitoring", network.eval(), vocabulary, {})
    ModelStore(root).write_verdict(GateVerdict("v-monitoring", True))  # as validated_model leaves it
    ModelStore(root).promote("v-monitoring", run_id="test")


def _land_and_process(spark, root: StorageRoot, day_events) -> None:
    """Raw events, snapshot, predictions and (where the horizon has passed) labels of one day."""
    root.write_partition(RAW_EVENTS, day_events.day, day_events.events)
    spark_storage = SparkStorage(root)
    build_snapshot(spark, spark_storage, day_events.day, HistoryConfig(window_days=WINDOW, max_events=20), files=1)
    store = ModelStore(root)
    if store.serving() is None and day_events.day >= START + timedelta(days=WINDOW):
        _serve_untrained_model(root)
    if store.serving() is not None:
        model = store.load(store.serving_version())
        root.write_partition(
            PREDICTIONS, day_events.day, predictions_table(model, read_snapshot(root, day_events.day), day_events.day)
        )
    labelled = day_events.day - timedelta(days=HORIZON)
    if root.has_partition(HISTORIES, labelled):
        build_labels(spark, spark_storage, labelled, HORIZON, {"c1": ["c1"]})


@pytest.fixture(scope="module")
def scenarios(spark, tmp_path_factory):
    """A stable shop for ten days, then three copies of it for day eleven: stable, season shift, tracking fault."""
    folder = tmp_path_factory.mktemp("monitoring")
    base = StorageRoot(str(folder / "base"))
    for day_events in ShopSimulator(SHOP).simulate(START, STABLE_DAYS):
        _land_and_process(spark, base, day_events)
    roots = {}
    for name, drift in {
        "stable": Drift(),
        "season": Drift(season_shift_from=DRIFT_DAY),
        "fault": Drift(tracking_fault_from=DRIFT_DAY),
    }.items():
        shutil.copytree(folder / "base", folder / name)
        roots[name] = StorageRoot(str(folder / name))
        _land_and_process(spark, roots[name], _day_after(SHOP, drift))
    return roots


def _day_after(shop: SimulationConfig, drift: Drift):
    """Day eleven of the same shop with ``drift``: the first ten days are replayed (drift only acts from day eleven)."""
    days = list(ShopSimulator(replace(shop, drift=drift)).simulate(START, STABLE_DAYS + 1))
    return days[-1]


# The served model is untrained, so the realised-performance alerts are opened wide
# here; test_realised_checks_alert_on_a_model_that_predicts_badly shows them firing.
LENIENT = MonitoringResource(
    reference_days=REFERENCE, min_realised_auc=0.0, min_realised_over_predicted=0.0, max_realised_over_predicted=1e6
)


def _materialize(root: StorageRoot, day: date, monitoring: MonitoringResource = LENIENT) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [monitoring_asset(Timeline(label_horizon_days=HORIZON)), *monitoring_checks],
        resources={
            "storage": StorageResource(root=root.uri),
            "partition_io_manager": PartitionIOManager(storage=StorageResource(root=root.uri)),
            "features": FeatureResource(window_days=WINDOW),
            "monitoring": monitoring,
        },
        partition_key=day.isoformat(),
        raise_on_error=False,
        selection=[MONITORING],
    )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {c.check_name: c for c in result.get_asset_check_evaluations()}


@pytest.fixture
def scenario(scenarios, private_copy):
    """``scenario(name)``: this test's own copy of a scenario's root, since tests materialise into it."""
    return lambda name: StorageRoot(str(private_copy(scenarios[name].base, name)))


def test_a_stable_week_raises_nothing(scenario):
    root = scenario("stable")
    for k in range(STABLE_DAYS - 7, STABLE_DAYS + 1):
        day = START + timedelta(days=k)
        result = _materialize(root, day)
        assert result.success
        failed = {name: c.metadata for name, c in _checks(result).items() if not c.passed}
        assert not failed, f"{day}: {failed}"
    properties = root.manifest(MONITORING, DRIFT_DAY).properties
    assert properties["histories_settled"] and len(properties["reference_days"]) == REFERENCE
    assert max(row["psi"] for row in properties["input_drift"]) < 0.1
    assert properties["prediction_drift"]["psi"] < 0.1
    assert properties["realised"]["scored_day"] == (DRIFT_DAY - timedelta(days=HORIZON)).isoformat()
    # the next day's run comes before labels(D-H) can be built: it scores the newest matured day instead
    assert matured_scored_day(root, DRIFT_DAY + timedelta(days=1), CONFIG) == DRIFT_DAY - timedelta(days=HORIZON)
    assert root.read_bytes(f"{MONITORING}/date={DRIFT_DAY}/report.html").startswith(b"<!doctype html>")
    # Article coverage: no catalogue in this shop, so none of the events found one; the model's vocabulary, built on
    # day WINDOW's histories, misses the new arrivals since.
    articles = properties["articles"]
    events = root.read_partition(RAW_EVENTS, DRIFT_DAY, columns=["article_id"]).column("article_id").to_pylist()
    assert articles["catalogue_day"] is None and articles["in_catalogue"] == {
        "hits": 0,
        "n": len(events),
        "share": 0.0,
        "interval_95": [pytest.approx(0.0, abs=1e-12), pytest.approx(3.84 / len(events), rel=0.01)],
    }
    known = set(ModelStore(root).read_vocabulary("v-monitoring").tokens["article_id"][2:])
    in_vocabulary = articles["in_vocabulary"]
    assert in_vocabulary["hits"] == sum(a in known for a in events) and in_vocabulary["n"] == len(events)
    assert 0.3 < in_vocabulary["share"] < 0.99 and articles["model_version"] == "v-monitoring"
    metadata = result.asset_materializations_for_node(MONITORING)[0].metadata
    assert metadata["events_in_vocabulary"].value.endswith(f"of {len(events):,} events")
    assert metadata["drift_plot"].value.startswith("![drift](data:image/png;base64,")
    assert metadata["realised_auc_plot"].value.startswith("![realised_auc](data:image/png;base64,")


def test_a_season_shift_is_caught_on_its_first_day(scenario):
    root = scenario("season")
    result = _materialize(root, DRIFT_DAY)
    checks = _checks(result)
    assert not checks["check_input_drift"].passed
    assert checks["check_input_drift"].metadata["feature"].value == "category_id"
    assert checks["check_event_volume"].passed
    drift = {row["feature"]: row["psi"] for row in root.manifest(MONITORING, DRIFT_DAY).properties["input_drift"]}
    assert drift["category_id"] > 0.1 and drift["event_type"] < 0.1


def test_a_tracking_fault_is_caught_on_its_first_day(scenario):
    root = scenario("fault")
    result = _materialize(root, DRIFT_DAY)
    assert result.success  # alerts, not a failed run: the checks are not blocking
    checks = _checks(result)
    assert (
        not checks["check_input_drift"].passed and checks["check_input_drift"].severity == dg.AssetCheckSeverity.ERROR
    )
    assert not checks["check_event_volume"].passed and checks["check_event_volume"].metadata["ratio"].value < 0.5
    drift = {row["feature"]: row["psi"] for row in root.manifest(MONITORING, DRIFT_DAY).properties["input_drift"]}
    assert drift["event_type"] > 0.25


def test_realised_checks_alert_on_a_model_that_predicts_badly(scenario):
    # An untrained network ranks by chance, a little above or below 0.5: below a floor of 0.7 whatever its draw.
    result = _materialize(
        scenario("stable"), DRIFT_DAY, MonitoringResource(reference_days=REFERENCE, min_realised_auc=0.7)
    )
    checks = _checks(result)
    auc, rate = checks["check_realised_auc"], checks["check_realised_rate"]
    assert not auc.passed and auc.metadata["realised_auc_ci_high"].value < 0.7
    assert (
        not rate.passed and rate.metadata["realised_over_predicted"].value < 0.67
    )  # an untrained model predicts about 0.5
    assert checks["check_input_drift"].passed


def test_monitoring_needs_the_days_snapshot(tmp_path):
    root = StorageRoot(str(tmp_path))
    with pytest.raises(RuntimeError, match="needs raw_events and daily_histories of 2026-10-01"):
        monitor_day(root, START, CONFIG)
    result = _materialize(root, START)
    assert not result.success
    assert "materialise them first" in result.failure_data_for_node(MONITORING).error.message
