"""Jobs: the daily data job runs ingestion through features; training is its own job."""

import dagster as dg

from consumer_assets.partitions import daily_partitions

daily_data_job = dg.define_asset_job(
    name="daily_data_job",
    selection=dg.AssetSelection.groups("ingest"),
    partitions_def=daily_partitions,
    description="Ingest one day of landing files and build that day's data assets.",
)
