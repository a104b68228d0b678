"""daily_histories and order_labels: Spark jobs over the stored raw events, with their checks."""

import time
from datetime import timedelta

import dagster as dg
import pyarrow.compute as pc

from consumer_assets.asset_keys import ARTICLE_CATALOGUE, HISTORIES, RAW_EVENTS
from consumer_assets.cores import CoreShare
from consumer_assets.features.build_snapshot import (
    CatalogueJoin,
    Compaction,
    MissingInputError,
    build_snapshot,
    snapshot_frame,
)
from consumer_assets.features.histories import describe
from consumer_assets.features.resources import FeatureResource, SparkResource
from consumer_assets.features.snapshots import cutoff, layers_of, read_snapshot
from consumer_assets.ingest.assets import article_catalogue, raw_events
from consumer_assets.metadata import count_table, plot_markdown
from consumer_assets.metrics import share_interval
from consumer_assets.partitions import daily_partitions, partition_day
from consumer_assets.plots import bar_chart
from consumer_assets.storage.resources import STORAGE_RETRY, StorageResource

MIN_EVENTS_TO_JUDGE = 100  # fewer events than this: the coverage check says too little data to judge


def rebuilt_when_its_base_changes() -> dg.AutomationCondition:
    """Rebuild an existing snapshot D once the snapshot D-1 it was built on, or D's events, changed in a run that left D
    alone.

    That is how late events flow on: a late file re-runs its day, then each later
    snapshot is rebuilt in turn, one day per evaluation, each on its rebuilt
    predecessor (never while that one is in progress). Snapshots not built yet are
    left to the landing sensor.
    """
    condition = dg.AutomationCondition
    base_changed = condition.any_deps_match(
        condition.newly_updated() & ~condition.executed_with_root_target()
    ).since_last_handled()
    return (
        ~condition.missing() & base_changed & ~condition.any_deps_in_progress() & ~condition.in_progress()
    ).with_label("rebuilt when its base changes")


@dg.asset(
    name=HISTORIES,
    io_manager_key="partition_io_manager",
    partitions_def=daily_partitions,
    retry_policy=STORAGE_RETRY,
    group_name="features",
    deps=[
        raw_events,
        article_catalogue,
        dg.AssetDep(
            HISTORIES,
            partition_mapping=dg.TimeWindowPartitionMapping(
                start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True
            ),
        ),
    ],
    kinds={"spark", "parquet"},
    owners=["team:data-platform"],
    tags={"stage": "features"},
    code_version="2",
    automation_condition=rebuilt_when_its_base_changes(),
)
def daily_histories(
    context: dg.AssetExecutionContext, storage: StorageResource, spark: SparkResource, features: FeatureResource
) -> dg.MaterializeResult:
    """Every profile active in the trailing window, with its last L events up to the end of the day.

    Built from yesterday's snapshot and today's raw events (incremental: only the
    profiles that changed today are written, as a layer on yesterday's), or from the
    window's raw events when yesterday's snapshot is missing. List columns per event:
    type, article, category, brand, price, ts, seconds since the previous event and
    before the cut-off, hour, weekday; plus window totals for the baselines. Each event's brand, category and
    price come from the article catalogue as of its day where the event does not carry them.
    """
    day = partition_day(context)
    config = features.history_config()
    compaction = Compaction(max_change_share=features.max_change_share, max_layers=features.max_layers)
    session = spark.session()
    spark_storage = spark.spark_storage(storage.open())
    started = time.perf_counter()
    try:
        with CoreShare(
            max_threads=1
        ):  # Spark's JVM counts as one run on the cores: a training beside it shrinks its threads
            built = build_snapshot(
                session,
                spark_storage,
                day,
                config,
                files=features.output_files,
                compaction=compaction,
                catalogue_max_age_days=features.catalogue_max_age_days,
            )
    except MissingInputError as exc:
        raise dg.Failure(str(exc), allow_retries=False) from exc
    manifest, mode = built.manifest, built.mode
    spark_seconds = time.perf_counter() - started
    context.log.info(
        "%s: %d profiles (%s, %d written) in %.1f s", day, manifest.rows, mode, built.changed_profiles, spark_seconds
    )
    figures = describe(snapshot_frame(session, spark_storage, day))
    histogram = figures["events_per_profile"]
    return dg.MaterializeResult(
        metadata={
            "profiles": manifest.rows,
            "mode": mode,
            "profiles_written": built.changed_profiles,
            "layers": len(layers_of(manifest, day)),
            "spark_seconds": spark_seconds,
            "events_in_window": figures["window_events"],
            "events_kept": figures["events_kept"],
            "sequence_length": count_table(figures["length_quantiles"], "quantile", "events"),
            "events_per_profile": count_table(histogram, "events in window", "profiles"),
            "events_per_profile_plot": plot_markdown(
                bar_chart(
                    list(histogram), list(histogram.values()), "Events per profile in the window", "events", "profiles"
                ),
                "events per profile",
            ),
            "vocabulary_sizes": count_table(figures["vocabulary"], "field", "distinct ids"),
            "catalogue_day": built.catalogue.catalogue_day or "none",
            "events_today": built.catalogue.events,
            "events_in_catalogue": built.catalogue.in_catalogue,
        }
    )


@dg.asset_check(asset=daily_histories, partitions_def=daily_partitions)
def check_profile_count_stable(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, features: FeatureResource
) -> dg.AssetCheckResult:
    """Profile count within a band of the previous day's: a jump says tracking or ingestion changed."""
    day = partition_day(context)
    root = storage.open()
    profiles = root.manifest(HISTORIES, day).rows
    previous = day - timedelta(days=1)
    if not root.has_partition(HISTORIES, previous):
        return dg.AssetCheckResult(
            passed=True, description=f"No snapshot for {previous} to compare with.", metadata={"profiles": profiles}
        )
    before = root.manifest(HISTORIES, previous).rows
    stored = root.list_partitions(RAW_EVENTS)
    if stored and (day - stored[0]).days < features.window_days:
        return dg.AssetCheckResult(
            passed=True,
            description=f"The window is still filling ({(day - stored[0]).days + 1} of {features.window_days} days of "
            "events): growth is expected.",
            metadata={"profiles": profiles, "previous_profiles": before},
        )
    change = profiles / max(before, 1) - 1
    return dg.AssetCheckResult(
        passed=abs(change) <= features.profile_count_band,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "profiles": profiles,
            "previous_profiles": before,
            "relative_change": change,
            "band": features.profile_count_band,
        },
    )


@dg.asset_check(asset=daily_histories, partitions_def=daily_partitions, blocking=True)
def check_no_event_after_cutoff(
    context: dg.AssetCheckExecutionContext, storage: StorageResource
) -> dg.AssetCheckResult:
    """No feature comes from an event at or after the end of the snapshot's day: no leakage."""
    day = partition_day(context)
    ts = pc.list_flatten(read_snapshot(storage.open(), day, columns=["ts"]).column("ts"))
    latest = pc.max(ts).as_py()
    late = pc.sum(pc.greater_equal(ts, cutoff(day))).as_py() or 0
    return dg.AssetCheckResult(
        passed=late == 0,
        metadata={"events_after_cutoff": late, "latest_event": str(latest), "cutoff": str(cutoff(day))},
    )


@dg.asset_check(asset=daily_histories, partitions_def=daily_partitions)
def check_catalogue_coverage(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, features: FeatureResource
) -> dg.AssetCheckResult:
    """The share of the day's events whose article the catalogue knows: a drop is a broken or partial export, and
    those events lose the attributes only the catalogue has. WARN when the share is shown below the threshold."""
    root = storage.open()
    day = partition_day(context)
    stored = root.manifest(HISTORIES, day).properties.get("catalogue")
    if stored is None:
        return dg.AssetCheckResult(passed=True, description="Built before the catalogue join: no figure.")
    joined = CatalogueJoin.from_json(stored)
    if joined.catalogue_day is None:
        exports = root.list_partitions(ARTICLE_CATALOGUE)
        return dg.AssetCheckResult(
            passed=not exports,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"No catalogue export within {features.catalogue_max_age_days} days before {day} (the latest: "
                f"{exports[-1]}): the events kept their own attributes only."
                if exports
                else "No catalogue has ever been exported: the events keep their own attributes."
            ),
            metadata={"events": joined.events},
        )
    low, high = share_interval(joined.in_catalogue, joined.events)
    metadata = {
        "events": joined.events,
        "events_in_catalogue": joined.in_catalogue,
        "coverage": joined.in_catalogue / max(joined.events, 1),
        "coverage_interval_95": f"{low:.4f}-{high:.4f}",
        "threshold": features.catalogue_min_coverage,
        "catalogue_day": joined.catalogue_day,
    }
    if joined.events < MIN_EVENTS_TO_JUDGE:
        return dg.AssetCheckResult(
            passed=True, description=f"too little data to judge: {joined.events} events", metadata=metadata
        )
    return dg.AssetCheckResult(
        passed=high >= features.catalogue_min_coverage,
        severity=dg.AssetCheckSeverity.WARN,
        description=None
        if high >= features.catalogue_min_coverage
        else f"only {low:.1%}-{high:.1%} of {joined.events:,} events found their article in the catalogue of "
        f"{joined.catalogue_day}",
        metadata=metadata,
    )


feature_assets = [daily_histories]
feature_checks = [check_profile_count_stable, check_no_event_after_cutoff, check_catalogue_coverage]
