"""Does the gate's verdict survive a change of dates? The demo's first training and its sabotage, for 7 end dates.

    .venv/bin/python benchmarks/gate_stability.py [--dates 7] [--profiles 20000]

``make demo`` replays the 26 days before today after a backfill of one window, so its data (weekday rhythms against
the simulator's seeded behaviour) change from one day to the next. For each of the
last ``--dates`` end dates this script simulates the demo's shop up to its training
day, builds the snapshots and labels with Spark as the demo does, then runs the real
Dagster gate twice: the demo's training (``trained_lstm`` with the deployment's
defaults, ``candidate_evaluation`` with its blocking checks and ``validated_model``) and, with that model in
service, the demo's deliberately bad candidate (learning rate 0, one epoch, cold
start). It prints each verdict with the figures it rests on. Every good candidate
should serve and every bad one be refused.

Differences from ``make demo``: the backfill and the replayed days' events are written to ``raw_events`` directly (no
landing zone, no bad rows), so only the data the model sees is replayed.
"""

import argparse
import tempfile
import time
from datetime import UTC, date, datetime, timedelta

import dagster as dg

from consumer_assets.asset_keys import RAW_EVENTS
from consumer_assets.demo import BAD_CANDIDATE, BAD_CANDIDATE_DAY, DEMO_DAYS, DEMO_PROFILES, TRAINING_DAY
from consumer_assets.features.build_snapshot import build_snapshot
from consumer_assets.features.histories import HistoryConfig
from consumer_assets.features.resources import FeatureResource
from consumer_assets.features.spark import SparkStorage, spark_session
from consumer_assets.io_manager import CandidateIOManager, EvaluationIOManager
from consumer_assets.labels.build_labels import build_labels
from consumer_assets.model.store import ModelStore
from consumer_assets.simulation import ShopSimulator, SimulationConfig
from consumer_assets.storage import StorageRoot
from consumer_assets.storage.resources import StorageResource
from consumer_assets.timeline import Timeline
from consumer_assets.training.assets import training_asset
from consumer_assets.training.resources import TrainingResource
from consumer_assets.validation.assets import evaluation_asset, validation_assets, validation_checks
from consumer_assets.validation.resources import GateResource

TIMELINE = Timeline()  # the deployment's
HORIZON = TIMELINE.label_horizon_days


def build(root: StorageRoot, start: date, profiles: int, spark) -> None:
    """The demo's shop up to its bad candidate's training day, after the demo's backfill of one window: events,
    snapshots (the first one from the window's events) and the labels that matured."""
    features = FeatureResource()
    config = HistoryConfig(window_days=features.window_days, max_events=features.max_events)
    first_day = start - timedelta(days=config.window_days)
    for day in ShopSimulator(SimulationConfig(profiles=profiles)).simulate(
        first_day, config.window_days + BAD_CANDIDATE_DAY + 1
    ):
        root.write_partition(RAW_EVENTS, day.day, day.events)
    spark_storage = SparkStorage(root)
    for k in range(BAD_CANDIDATE_DAY - HORIZON + 1):
        build_snapshot(spark, spark_storage, start + timedelta(days=k), config, files=1)
        build_labels(spark, spark_storage, start + timedelta(days=k), HORIZON, {})


def gate(folder: str, day: date, run_config: dict | None = None) -> tuple[dg.ExecuteInProcessResult, str]:
    storage = StorageResource(root=folder)
    resources = {
        "storage": storage,
        "training": TrainingResource(),
        "features": FeatureResource(),
        "gate": GateResource(),
        "candidate_io_manager": CandidateIOManager(storage=storage),
        "evaluation_io_manager": EvaluationIOManager(storage=storage),
    }
    result = dg.materialize(
        [training_asset(TIMELINE), evaluation_asset(TIMELINE), *validation_assets, *validation_checks],
        resources=resources,
        partition_key=day.isoformat(),
        run_config=run_config,
        raise_on_error=False,
    )
    return result, ModelStore(StorageRoot(folder)).candidate_for_partition(day.isoformat()).version


def describe(result: dg.ExecuteInProcessResult, folder: str, version: str) -> str:
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    failed = [
        f"{name} ({c.metadata['outcome'].value if 'outcome' in c.metadata else 'fail'})"
        for name, c in checks.items()
        if not c.passed
    ]
    evaluation = ModelStore(StorageRoot(folder)).read_evaluation(version)
    m = evaluation["candidate"]["order_any"]
    strongest = evaluation["strongest_baseline"]
    return (
        f"AUC {m['auc']:.3f} ({m['auc_ci_low']:.3f}-{m['auc_ci_high']:.3f}), {strongest} "
        f"{evaluation['baselines'][strongest]['auc']:.3f}, "
        f"obs/pred {m['observed_over_predicted']:.2f}, {m['rows']} rows, {m['positives']} positives; failed: "
        f"{', '.join(failed) or 'none'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dates", type=int, default=7)
    parser.add_argument("--profiles", type=int, default=DEMO_PROFILES)
    args = parser.parse_args()
    spark = spark_session("local[*]", {"spark.driver.memory": "4g", "spark.ui.enabled": "false"})
    today = datetime.now(UTC).date()
    served = refused = 0
    for back in range(args.dates):
        end = today - timedelta(days=back)
        start = end - timedelta(days=DEMO_DAYS)
        training_day = start + timedelta(days=TRAINING_DAY)
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:
            build(StorageRoot(folder), start, args.profiles, spark)
            good, version = gate(folder, training_day)
            serving = ModelStore(StorageRoot(folder)).serving()
            good_serves = good.success and serving is not None and serving.version == version
            bad, bad_version = gate(
                folder, training_day + timedelta(days=BAD_CANDIDATE_DAY - TRAINING_DAY), BAD_CANDIDATE
            )
            still_serving = getattr(ModelStore(StorageRoot(folder)).serving(), "version", None)
            bad_refused = not bad.success and still_serving == (version if good_serves else None)
            served += good_serves
            refused += bad_refused
            print(f"end date {end} (training on {training_day}), {time.perf_counter() - started:.0f} s")
            print(f"  good candidate: {'SERVED' if good_serves else 'NOT SERVED'}; {describe(good, folder, version)}")
            print(
                f"  bad candidate:  {'REFUSED' if bad_refused else 'NOT REFUSED'}; "
                f"{describe(bad, folder, bad_version)}",
                flush=True,
            )
    print(f"\n{served}/{args.dates} good candidates served, {refused}/{args.dates} bad candidates refused")


if __name__ == "__main__":
    main()
