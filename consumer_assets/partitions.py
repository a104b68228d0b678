"""The one daily (UTC) partitioning every asset shares."""

import os
from datetime import date

import dagster as dg

DEFAULT_START_DATE = "2026-01-01"

# Read at import: Dagster needs the partition set when it loads the code location.
START_DATE = os.environ.get("CONSUMER_ASSETS_START_DATE", DEFAULT_START_DATE)

daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC")


def partition_day(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    """The UTC day a run or check of a daily partition is about."""
    return date.fromisoformat(context.partition_key)
