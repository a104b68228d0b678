"""raw_events and article_catalogue: the landing zone's day of events and of the catalogue export, validated and
typed, with their checks."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.asset_keys import ARTICLE_CATALOGUE, RAW_EVENTS
from consumer_assets.ingest.catalogue import (
    ARTICLE_SCHEMA,
    MissingCatalogueError,
    catalogue_report,
    ingest_catalogue,
)
from consumer_assets.ingest.contract import EVENT_SCHEMA
from consumer_assets.ingest.day import MissingLandingDataError, ingest_day, ingest_report
from consumer_assets.ingest.resources import DataQualityResource
from consumer_assets.metadata import count_table, preview_table
from consumer_assets.partitions import daily_partitions, partition_day
from consumer_assets.storage.resources import STORAGE_RETRY, StorageResource

KEY_COLUMNS = ["event_id", "profile_id", "ts", "event_type", "article_id"]
# What raw_events and article_catalogue share: a landing feed's day, validated into a stored partition.
LANDING_FEED = {
    "io_manager_key": "partition_io_manager",
    "partitions_def": daily_partitions,
    "retry_policy": STORAGE_RETRY,
    "group_name": "ingest",
    "kinds": {"parquet", "pyarrow"},
    "owners": ["team:data-platform"],
    "tags": {"stage": "ingest"},
}


@dg.asset(
    name=RAW_EVENTS,
    **LANDING_FEED,
    code_version="2",
)
def raw_events(
    context: dg.AssetExecutionContext, storage: StorageResource, quality: DataQualityResource
) -> dg.MaterializeResult:
    """The day's tracking events from ``landing/events/date=D/``, checked against the event contract.

    Rows that break the contract are kept with the partition as its quarantine (raw
    line, reason, source file and line), committed with the events in one step;
    repeated ``event_id``s (within the day or in the look-back days) are dropped and
    counted. ``rows_read = rows_kept + rows_quarantined + duplicates``. Memory follows
    a chunk of lines, not the day.
    """
    day = partition_day(context)
    root = storage.open()
    try:
        report = ingest_day(root, day, quality.dedup_lookback_days)
    except MissingLandingDataError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    context.log.info(
        "%s: read %d rows from %d files, kept %d, quarantined %d, duplicates %d",
        day,
        report.rows_read,
        report.files,
        report.rows_kept,
        report.rows_quarantined,
        report.duplicates,
    )
    preview = next(root.iter_partition_batches(RAW_EVENTS, day, batch_rows=10), None)
    return dg.MaterializeResult(
        metadata={
            "rows_read": report.rows_read,
            "rows_kept": report.rows_kept,
            "rows_quarantined": report.rows_quarantined,
            "duplicates": report.duplicates,
            "landing_files": report.files,
            "profiles": report.profiles,
            "quarantine_reasons": count_table(report.quarantine_reasons, "reason"),
            "event_type_mix": count_table(report.event_types, "event_type"),
            "preview": preview_table(
                pa.Table.from_batches([preview]) if preview is not None else EVENT_SCHEMA.empty_table(), rows=10
            ),
            "dagster/row_count": report.rows_kept,
            "dagster/column_schema": _column_schema(EVENT_SCHEMA),
        },
    )


def _column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(f.name, str(f.type), constraints=dg.TableColumnConstraints(nullable=f.nullable))
            for f in schema
        ]
    )


@dg.asset_check(asset=raw_events, partitions_def=daily_partitions, blocking=True)
def check_quarantine_rate(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, quality: DataQualityResource
) -> dg.AssetCheckResult:
    """Share of rows read that broke the contract: WARN above the warn rate, ERROR (blocking) above the error rate."""
    stats = ingest_report(storage.open(), partition_day(context))
    return quarantine_rate_result(stats.rows_read, stats.rows_quarantined, stats.quarantine_reasons, quality)


def quarantine_rate_result(
    rows_read: int, rows_quarantined: int, reasons: dict[str, int], quality: DataQualityResource
) -> dg.AssetCheckResult:
    """The quarantine rate judged for any landing feed: WARN above the warn rate, ERROR above the error rate."""
    rate = rows_quarantined / max(rows_read, 1)
    severity = dg.AssetCheckSeverity.ERROR if rate > quality.quarantine_error_rate else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=rate <= quality.quarantine_warn_rate,
        severity=severity,
        metadata={
            "quarantine_rate": rate,
            "warn_above": quality.quarantine_warn_rate,
            "error_above": quality.quarantine_error_rate,
            "rows_read": rows_read,
            "rows_quarantined": rows_quarantined,
            "reasons": count_table(reasons, "reason"),
        },
    )


@dg.asset_check(asset=raw_events, partitions_def=daily_partitions, blocking=True)
def check_no_null_keys(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    """Every stored row has its key fields: a null here means ingestion let a bad row through."""
    events = storage.open().read_partition(RAW_EVENTS, context.partition_key, columns=KEY_COLUMNS)
    nulls = {name: events.column(name).null_count for name in KEY_COLUMNS}
    return dg.AssetCheckResult(
        passed=sum(nulls.values()) == 0,
        metadata={"rows": events.num_rows, **{f"nulls_{k}": v for k, v in nulls.items()}},
    )


@dg.asset_check(asset=raw_events, partitions_def=daily_partitions, blocking=True)
def check_timestamps_inside_day(
    context: dg.AssetCheckExecutionContext, storage: StorageResource
) -> dg.AssetCheckResult:
    """Every event's ``ts`` lies in the partition's UTC day, so no event leaks across days."""
    day = partition_day(context)
    ts = storage.open().read_partition(RAW_EVENTS, day, columns=["ts"]).column("ts")
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    end = start + timedelta(days=1)
    outside = (
        pc.sum(pc.or_(pc.less(ts, pa.scalar(start, ts.type)), pc.greater_equal(ts, pa.scalar(end, ts.type)))).as_py()
        or 0
    )
    min_max = pc.min_max(ts)
    return dg.AssetCheckResult(
        passed=outside == 0,
        metadata={
            "rows_outside_day": outside,
            "earliest": str(min_max["min"].as_py()),
            "latest": str(min_max["max"].as_py()),
        },
    )


@dg.asset(
    name=ARTICLE_CATALOGUE,
    **LANDING_FEED,
    code_version="1",
)
def article_catalogue(context: dg.AssetExecutionContext, storage: StorageResource) -> dg.MaterializeResult:
    """The shop's article database as of the day, from its export in ``landing/catalogue/date=D/``.

    One row per article (id, brand, category, price, launch date, colour, material), validated like the events:
    lines that break the catalogue contract are kept with the partition as its quarantine with their reasons,
    repeated article ids counted (the first line kept), all committed in one step. ``daily_histories`` joins each
    event to its article's attributes as of the event's day; a day whose export is missing uses the latest earlier
    one (``FeatureResource.catalogue_max_age_days``), and a late export rebuilds that day's histories.
    """
    day = partition_day(context)
    try:
        report = ingest_catalogue(storage.open(), day)
    except MissingCatalogueError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    before = _previous_articles(storage, day)
    return dg.MaterializeResult(
        metadata={
            "articles": report.articles,
            "rows_read": report.rows_read,
            "rows_quarantined": report.rows_quarantined,
            "duplicates": report.duplicates,
            "conflicting_duplicates": report.conflicting,
            "launched_today": report.launched_today,
            "previous_day_articles": before if before is not None else "no previous export",
            "quarantine_reasons": count_table(report.quarantine_reasons, "reason"),
            "dagster/row_count": report.articles,
            "dagster/column_schema": _column_schema(ARTICLE_SCHEMA),
        }
    )


def _previous_articles(storage: StorageResource, day) -> int | None:
    root, previous = storage.open(), day - timedelta(days=1)
    return root.manifest(ARTICLE_CATALOGUE, previous).rows if root.has_partition(ARTICLE_CATALOGUE, previous) else None


@dg.asset_check(asset=article_catalogue, partitions_def=daily_partitions, blocking=True)
def check_catalogue_quarantine_rate(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, quality: DataQualityResource
) -> dg.AssetCheckResult:
    """Share of the export's lines that broke the contract, judged with the events' thresholds."""
    report = catalogue_report(storage.open(), partition_day(context))
    return quarantine_rate_result(report.rows_read, report.rows_quarantined, report.quarantine_reasons, quality)


@dg.asset_check(asset=article_catalogue, partitions_def=daily_partitions)
def check_catalogue_size_stable(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, quality: DataQualityResource
) -> dg.AssetCheckResult:
    """The article count within a band of the previous export's: a catalogue that shrinks by half overnight is a
    broken export, not a closing-down sale."""
    day = partition_day(context)
    articles = storage.open().manifest(ARTICLE_CATALOGUE, day).rows
    before = _previous_articles(storage, day)
    if before is None:
        return dg.AssetCheckResult(
            passed=True, description="No export of the day before to compare with.", metadata={"articles": articles}
        )
    change = articles / max(before, 1) - 1
    return dg.AssetCheckResult(
        passed=abs(change) <= quality.catalogue_size_band,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "articles": articles,
            "previous_articles": before,
            "relative_change": change,
            "band": quality.catalogue_size_band,
        },
    )


ingest_assets = [raw_events, article_catalogue]
ingest_checks = [
    check_quarantine_rate,
    check_no_null_keys,
    check_timestamps_inside_day,
    check_catalogue_quarantine_rate,
    check_catalogue_size_stable,
]
