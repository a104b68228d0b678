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
from consumer_assets.simulation import SimulationConfig, simulate_to_landing

log = logging.getLogger("consumer_assets.demo")

DEMO_DAYS = int(os.environ.get("DEMO_DAYS", "14"))
DEMO_PROFILES = int(os.environ.get("DEMO_PROFILES", "5000"))


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    root = defs.resources["storage"].process_config_and_initialize().open()
    start = date.fromisoformat(START_DATE)
    log.info("simulating %d days of %d profiles from %s into %s", DEMO_DAYS, DEMO_PROFILES, start, root.uri)
    simulate_to_landing(root, start, DEMO_DAYS, SimulationConfig(profiles=DEMO_PROFILES), bad_rate=0.01)

    instance = dg.DagsterInstance.get()
    job = defs.get_job_def("daily_data_job")
    for offset in range(DEMO_DAYS):
        day = (start + timedelta(days=offset)).isoformat()
        result = job.execute_in_process(partition_key=day, instance=instance, raise_on_error=False)
        checks = result.get_asset_check_evaluations()
        failed = [c.check_name for c in checks if not c.passed]
        log.info("daily_data_job %s: %s, %d checks, failed: %s", day, "ok" if result.success else "FAILED", len(checks), failed or "none")
    log.info("done in %.0f s", time.perf_counter() - started)
    print(
        f"\nData is under {root.uri} (landing/, raw_events/, quarantine/).\n"
        f"Runs are in the Dagster instance at {instance.root_directory}.\n"
        "Run `make dev` and open http://127.0.0.1:3000 to see the runs, partitions, metadata and checks."
    )


if __name__ == "__main__":
    main()
