"""``make demo``: simulate a shop, then run the pipeline day by day on the embedded default.

Runs go to the persistent Dagster instance in ``$DAGSTER_HOME`` so that
``make dev`` (``dagster dev``) shows them afterwards.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import date, timedelta

import dagster as dg

from consumer_assets.definitions import defs
from consumer_assets.partitions import START_DATE
from consumer_assets.model.store import ModelStore
from consumer_assets.simulation import SimulationConfig, simulate_to_landing, true_probabilities
from consumer_assets.validation.evaluate import labelled_rows
from consumer_assets.validation.metrics import summarise

log = logging.getLogger("consumer_assets.demo")

DEMO_DAYS = int(os.environ.get("DEMO_DAYS", "21"))
DEMO_PROFILES = int(os.environ.get("DEMO_PROFILES", "20000"))
QUIET = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


def run_job(instance: dg.DagsterInstance, name: str, day: date) -> dg.ExecuteInProcessResult:
    """Run a partitioned job for a day in this process, recorded in the instance, and log its outcome."""
    result = defs.resolve_job_def(name).execute_in_process(
        partition_key=day.isoformat(), instance=instance, raise_on_error=False, run_config=QUIET
    )
    checks = result.get_asset_check_evaluations()
    failed = [c.check_name for c in checks if not c.passed]
    log.info("%s %s: %s, %d checks, failed: %s", name, day, "ok" if result.success else "FAILED", len(checks), failed or "none")
    return result


def report_models(root) -> None:
    """The model in service beside the baselines and the oracle, on the same test profiles."""
    store = ModelStore(root)
    serving = store.serving()
    if serving is None:
        log.info("no model in service: the candidate was refused (see the checks in the UI)")
        return
    evaluation = store.read_evaluation(serving["version"])
    test_day = date.fromisoformat(evaluation["test_day"])
    table, y = labelled_rows(root, (test_day,), ("order_any",), "test")
    oracle = summarise(true_probabilities(root, test_day, table.column("profile_id")), y[:, 0], with_interval=False)
    models = {"LSTM": evaluation["candidate"]["order_any"], **evaluation["baselines"], "oracle (true p)": oracle}
    log.info("serving %s; on %d held-out profiles of %s (%d ordered):", serving["version"], len(y), test_day, int(y.sum()))
    for name, m in models.items():
        log.info("  %-20s AUC %.4f  mean log-likelihood %.4f", name, m["auc"], m["mean_log_likelihood"])


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # the instance's schema migrations, not news
    started = time.perf_counter()
    root = defs.resources["storage"].process_config_and_initialize().open()
    start = date.fromisoformat(START_DATE)
    log.info("simulating %d days of %d profiles from %s into %s", DEMO_DAYS, DEMO_PROFILES, start, root.uri)
    simulate_to_landing(root, start, DEMO_DAYS, SimulationConfig(profiles=DEMO_PROFILES), bad_rate=0.01)

    instance = dg.DagsterInstance.get()
    horizon = defs.resources["features"].label_horizon_days
    for offset in range(DEMO_DAYS):
        day = start + timedelta(days=offset)
        run_job(instance, "daily_data_job", day)
        if offset >= horizon:
            run_job(instance, "labels_job", day - timedelta(days=horizon))
    last_day = start + timedelta(days=DEMO_DAYS - 1)
    run_job(instance, "training_job", last_day)
    report_models(root)
    if ModelStore(root).serving() is not None:
        run_job(instance, "scoring_job", last_day)
    log.info("done in %.0f s", time.perf_counter() - started)
    print(
        f"\nData is under {root.uri}: {', '.join(root.list_dirs(''))}.\n"
        f"Runs are in the Dagster instance at {instance.root_directory}.\n"
        "Run `make dev` and open http://127.0.0.1:3000 to see the runs, partitions, metadata and checks."
    )


if __name__ == "__main__":
    main()
