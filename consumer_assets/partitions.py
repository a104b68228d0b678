"""The one daily (UTC) partitioning every asset shares."""

from datetime import date

import dagster as dg

from consumer_assets import environment

# Read at import: Dagster needs the partition set when it loads the code location.
START_DATE = environment.START_DATE.value()

daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE, timezone="UTC")


def partition_day(context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext) -> date:
    """The UTC day a run or check of a daily partition is about."""
    return date.fromisoformat(context.partition_key)
