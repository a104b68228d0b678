"""order_labels: the labels of each day's snapshot, materialised once the H following days have landed."""

from datetime import timedelta

import dagster as dg
import pyarrow.compute as pc

from consumer_assets.asset_keys import LABELS
from consumer_assets.cores import CoreShare
from consumer_assets.features.assets import daily_histories
from consumer_assets.features.build_snapshot import MissingInputError
from consumer_assets.features.resources import FeatureResource, SparkResource
from consumer_assets.ingest.assets import raw_events
from consumer_assets.labels.build_labels import build_labels
from consumer_assets.labels.targets import targets
from consumer_assets.metadata import count_table
from consumer_assets.partitions import daily_partitions, partition_day
from consumer_assets.storage.resources import STORAGE_RETRY, StorageResource
from consumer_assets.timeline import Timeline


def labels_matured_condition(horizon_days: int, catch_up_days: int = 3) -> dg.AutomationCondition:
    """Request order_labels(D) once D is H days old and D+1..D+H have landed, for the last few such days.

    The partition mapping declares the dependency; this condition waits until the
    window is there (the newest H partitions can never be labelled yet) and asks once
    per update of the inputs, so a failed run is not retried in a loop.
    """
    condition = dg.AutomationCondition
    matured = condition.in_latest_time_window(
        timedelta(days=horizon_days + catch_up_days)
    ) & ~condition.in_latest_time_window(timedelta(days=horizon_days))
    inputs_ready = ~condition.any_deps_missing() & ~condition.any_deps_in_progress() & ~condition.in_progress()
    return (
        matured
        & condition.missing()
        & inputs_ready
        & (condition.newly_missing() | condition.any_deps_updated()).since_last_handled()
    ).with_label("labels matured")


def labels_asset(timeline: Timeline) -> dg.AssetsDefinition:
    """order_labels with its lineage and automation drawn for the code location's label horizon H."""

    @dg.asset(
        name=LABELS,
        io_manager_key="partition_io_manager",
        partitions_def=daily_partitions,
        retry_policy=STORAGE_RETRY,
        group_name="labels",
        deps=[
            daily_histories,
            dg.AssetDep(
                raw_events,
                partition_mapping=dg.TimeWindowPartitionMapping(
                    start_offset=1,
                    end_offset=timeline.label_horizon_days,
                    allow_nonexistent_upstream_partitions=True,
                ),
            ),
        ],
        kinds={"spark", "parquet"},
        owners=["team:data-platform"],
        tags={"stage": "labels"},
        code_version="1",
        automation_condition=labels_matured_condition(timeline.label_horizon_days),
    )
    def order_labels(
        context: dg.AssetExecutionContext, storage: StorageResource, spark: SparkResource, features: FeatureResource
    ) -> dg.MaterializeResult:
        """For each profile of the snapshot at D: did it order in (D, D+H], overall and per article group.

        Exists only once the H following days have landed: refuses to run, naming the
        missing days, until raw_events has every one of them.
        """
        day = partition_day(context)
        root = storage.open()
        horizon = timeline.label_horizon_days
        try:
            with CoreShare(max_threads=1):  # see daily_histories
                manifest = build_labels(
                    spark.session(),
                    spark.spark_storage(root),
                    day,
                    horizon,
                    features.article_groups,
                    features.catalogue_max_age_days,
                )
        except MissingInputError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from exc
        groups = manifest.properties["groups"]
        stored = root.read_partition(LABELS, day)
        rates = {name: pc.mean(stored.column(name)).as_py() or 0.0 for name in targets(groups)}
        context.log.info("%s: %d profiles labelled, order_any rate %.4f", day, manifest.rows, rates["order_any"])
        return dg.MaterializeResult(
            metadata={
                "profiles": manifest.rows,
                "label_rates": count_table(rates, "target", "rate"),
                "article_groups": dg.MetadataValue.json(groups),
                "horizon_days": horizon,
            }
        )

    return order_labels


@dg.asset_check(asset=LABELS, partitions_def=daily_partitions, blocking=True)
def check_label_rate_nonzero(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    """A matured snapshot in which nobody ordered means orders stopped arriving, not that nobody bought."""
    labels = storage.open().read_partition(LABELS, partition_day(context), columns=["order_any"])
    rate = pc.mean(labels.column("order_any")).as_py() or 0.0
    return dg.AssetCheckResult(passed=rate > 0, metadata={"order_any_rate": rate, "profiles": labels.num_rows})


label_checks = [check_label_rate_nonzero]
