"""raw_events: the landing zone's day, validated, typed and de-duplicated, with its checks."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.datasets import QUARANTINE, RAW_EVENTS
from consumer_assets.ingest.contract import EVENT_SCHEMA
from consumer_assets.ingest.day import MissingLandingDataError, ingest_day, write_quarantine
from consumer_assets.ingest.resources import DataQualityResource
from consumer_assets.metadata import count_table, preview_table
from consumer_assets.partitions import daily_partitions, partition_day
from consumer_assets.storage.resources import StorageResource

KEY_COLUMNS = ["event_id", "profile_id", "ts", "event_type", "article_id"]


@dg.asset(
    name=RAW_EVENTS,
    partitions_def=daily_partitions,
    group_name="ingest",
    io_manager_key="parquet_io_manager",
    kinds={"parquet", "pyarrow"},
    owners=["team:data-platform"],
    tags={"stage": "ingest"},
    code_version="1",
)
def raw_events(context: dg.AssetExecutionContext, storage: StorageResource, quality: DataQualityResource) -> dg.Output[pa.Table]:
    """The day's tracking events from ``landing/events/date=D/``, checked against the event contract.

    Rows that break the contract go to ``quarantine/raw_events/date=D/`` with their raw
    line and reason; repeated ``event_id``s (within the day or in the look-back days)
    are dropped and counted. ``rows_read = rows_kept + rows_quarantined + duplicates``.
    """
    day = partition_day(context)
    root = storage.open()
    try:
        ingested = ingest_day(root, day, quality.dedup_lookback_days)
    except MissingLandingDataError as exc:
        raise dg.Failure(str(exc)) from exc
    write_quarantine(root, ingested)
    stats = ingested.stats
    context.log.info(
        "%s: read %d rows from %d files, kept %d, quarantined %d, duplicates %d",
        day,
        stats["rows_read"],
        stats["files"],
        stats["rows_kept"],
        stats["rows_quarantined"],
        stats["duplicates"],
    )
    events = ingested.events
    return dg.Output(
        events,
        metadata={
            "rows_read": stats["rows_read"],
            "rows_kept": stats["rows_kept"],
            "rows_quarantined": stats["rows_quarantined"],
            "duplicates": stats["duplicates"],
            "landing_files": stats["files"],
            "profiles": pc.count_distinct(events.column("profile_id")).as_py(),
            "quarantine_reasons": count_table(stats["quarantine_reasons"], "reason"),
            "event_type_mix": count_table(_value_counts(events.column("event_type")), "event_type"),
            "preview": preview_table(events, rows=10),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(f.name, str(f.type), constraints=dg.TableColumnConstraints(nullable=f.nullable)) for f in EVENT_SCHEMA]
            ),
        },
    )


def _value_counts(column: pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(column)
    return {item["values"].as_py(): item["counts"].as_py() for item in counts}


@dg.asset_check(asset=raw_events, partitions_def=daily_partitions, blocking=True)
def check_quarantine_rate(context: dg.AssetCheckExecutionContext, storage: StorageResource, quality: DataQualityResource) -> dg.AssetCheckResult:
    """Share of rows read that broke the contract: WARN above the warn rate, ERROR (blocking) above the error rate."""
    day = partition_day(context)
    stats = storage.open().manifest(QUARANTINE, day).properties
    rate = stats["rows_quarantined"] / max(stats["rows_read"], 1)
    severity = dg.AssetCheckSeverity.ERROR if rate > quality.quarantine_error_rate else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=rate <= quality.quarantine_warn_rate,
        severity=severity,
        metadata={
            "quarantine_rate": rate,
            "warn_above": quality.quarantine_warn_rate,
            "error_above": quality.quarantine_error_rate,
            "rows_read": stats["rows_read"],
            "rows_quarantined": stats["rows_quarantined"],
            "reasons": count_table(stats["quarantine_reasons"], "reason"),
        },
    )


@dg.asset_check(asset=raw_events, partitions_def=daily_partitions, blocking=True)
def check_no_null_keys(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    """Every stored row has its key fields: a null here means ingestion let a bad row through."""
    events = storage.open().read_partition(RAW_EVENTS, context.partition_key, columns=KEY_COLUMNS)
    nulls = {name: events.column(name).null_count for name in KEY_COLUMNS}
    return dg.AssetCheckResult(passed=sum(nulls.values()) == 0, metadata={"rows": events.num_rows, **{f"nulls_{k}": v for k, v in nulls.items()}})


@dg.asset_check(asset=raw_events, partitions_def=daily_partitions, blocking=True)
def check_timestamps_inside_day(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    """Every event's ``ts`` lies in the partition's UTC day, so no event leaks across days."""
    day = partition_day(context)
    ts = storage.open().read_partition(RAW_EVENTS, day, columns=["ts"]).column("ts")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    outside = pc.sum(pc.or_(pc.less(ts, pa.scalar(start, ts.type)), pc.greater_equal(ts, pa.scalar(end, ts.type)))).as_py() or 0
    min_max = pc.min_max(ts)
    return dg.AssetCheckResult(
        passed=outside == 0,
        metadata={
            "rows_outside_day": outside,
            "earliest": str(min_max["min"].as_py()),
            "latest": str(min_max["max"].as_py()),
        },
    )


ingest_assets = [raw_events]
ingest_checks = [check_quarantine_rate, check_no_null_keys, check_timestamps_inside_day]
