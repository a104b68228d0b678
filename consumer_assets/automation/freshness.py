"""Freshness: a day that does not land alerts, once.

A time-partition freshness check per daily asset a user waits for (``raw_events``,
``daily_histories``, ``batch_predictions``) expects the latest complete day's partition
by the deadline (a cron, UTC; default 06:00, four hours after the daily schedule). The
freshness sensor evaluates a check when it is due and not again while it stays failed
and nothing new arrived, so a missing day is one failed ERROR check, which
``alert_sensor`` sends like any other.

Dagster marks these builders superseded by ``FreshnessPolicy``; in open-source Dagster a
policy's state changes reach no alert, while a failed check reaches ``alert_sensor``, so
the checks stay (their warning is silenced here, where that choice is made).
"""

import warnings

import dagster as dg

from consumer_assets.asset_keys import HISTORIES, PREDICTIONS, RAW_EVENTS

FRESH_ASSETS = [dg.AssetKey(RAW_EVENTS), dg.AssetKey(HISTORIES), dg.AssetKey(PREDICTIONS)]
# Only the freshness sensor (or freshness_checks_job) evaluates them: inside a day's run, a replayed or backfilled
# day would judge today's freshness and alert for it, so the jobs of the assets leave them out.
FRESHNESS_CHECK = "freshness_check"  # the name Dagster's builder gives each
FRESHNESS_CHECKS = dg.AssetSelection.checks(*[dg.AssetCheckKey(key, FRESHNESS_CHECK) for key in FRESH_ASSETS])


def day_checks(asset_graph, assets: list[dg.AssetKey]) -> list[dg.AssetCheckKey]:
    """The checks a run of ``assets`` for one day executes: theirs, the freshness checks left out. A run request that
    names its assets gets every check of theirs unless it names the checks too."""
    return sorted(
        (k for k in asset_graph.asset_check_keys if k.asset_key in assets and k.name != FRESHNESS_CHECK), key=str
    )


def freshness_checks(deadline_cron: str) -> list[dg.AssetChecksDefinition]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return list(
            dg.build_time_partition_freshness_checks(
                assets=FRESH_ASSETS, deadline_cron=deadline_cron, severity=dg.AssetCheckSeverity.ERROR
            )
        )


def freshness_job(checks: list[dg.AssetChecksDefinition]):
    return dg.define_asset_job(
        "freshness_checks_job",
        selection=dg.AssetSelection.checks(*checks),
        description="Evaluates the freshness checks now (the freshness sensor does so when they are due).",
    )


def freshness_sensor(checks: list[dg.AssetChecksDefinition]) -> dg.SensorDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.SupersessionWarning)
        return dg.build_sensor_for_freshness_checks(
            freshness_checks=checks, minimum_interval_seconds=300, name="freshness_sensor"
        )
