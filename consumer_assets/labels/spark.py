"""Order labels of a snapshot: did the profile order in (D, D+H], overall and per article group."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from consumer_assets.labels.targets import target_name, targets

DEFAULT_GROUP_COUNT = 5


def largest_categories(events: DataFrame, count: int = DEFAULT_GROUP_COUNT) -> dict[str, list[str]]:
    """The default article groups: the ``count`` categories with the most events, one group each."""
    rows = (
        events.where(F.col("category_id").isNotNull())
        .groupBy("category_id")
        .count()
        .orderBy(F.desc("count"), "category_id")
        .limit(count)
        .collect()
    )
    return {f"category_{row['category_id']}": [row["category_id"]] for row in rows}


def label_profiles(
    profiles: DataFrame, later_events: DataFrame, day: date, horizon_days: int, groups: Mapping[str, list[str]]
) -> DataFrame:
    """One row per profile of the snapshot with 0/1 labels for ``order_any`` and each group."""
    orders = later_events.where(F.col("event_type") == "order")
    per_profile = orders.groupBy("profile_id").agg(
        F.lit(1).alias("order_any"),
        *[
            F.max(F.col("category_id").isin(list(categories)).cast("int")).alias(target_name(g))
            for g, categories in groups.items()
        ],
    )
    names = targets(groups)
    return (
        profiles.select("profile_id")
        .join(per_profile, "profile_id", "left")
        .select(
            "profile_id",
            F.lit(day).alias("snapshot_date"),
            F.lit(day + timedelta(days=horizon_days)).alias("label_window_end"),
            *[F.coalesce(F.col(name), F.lit(0)).cast("byte").alias(name) for name in names],
        )
    )
