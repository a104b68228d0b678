"""Schedules: the time-driven way to run the daily jobs (the landing sensor is the event-driven one).

Times are UTC, the time zone of the daily partitions: at 02:00 the daily data job runs
for the day that just ended; training runs at 04:00 for that same day, every day or,
with ``CONSUMER_ASSETS_TRAINING_CADENCE=weekly``, on Mondays (for Sunday's partition).
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from consumer_assets import environment
from consumer_assets.jobs import daily_data_job, training_job

TRAINING_CADENCES = {"daily": "0 4 * * *", "weekly": "0 4 * * 1"}


def training_cron(cadence: str | None = None) -> str:
    cadence = cadence or environment.TRAINING_CADENCE.value()
    if cadence not in TRAINING_CADENCES:
        raise ValueError(
            f"CONSUMER_ASSETS_TRAINING_CADENCE must be one of {sorted(TRAINING_CADENCES)}, not {cadence!r}"
        )
    return TRAINING_CADENCES[cadence]


daily_data_schedule = dg.build_schedule_from_partitioned_job(
    daily_data_job,
    name="daily_data_schedule",
    hour_of_day=2,
    minute_of_hour=0,
    description="02:00 UTC: ingest, snapshot, score and monitor the day that just ended (an alternative to "
    "landing_sensor).",
)


@dg.schedule(
    job=training_job,
    cron_schedule=training_cron(),
    execution_timezone="UTC",
    description="04:00 UTC, daily or weekly (CONSUMER_ASSETS_TRAINING_CADENCE): train a candidate for the day that "
    "just ended.",
)
def training_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    day = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=f"training-{day}", partition_key=day)


schedules = [daily_data_schedule, training_schedule]
