"""Builds the labels of snapshot D with Spark, once raw_events D+1..D+H have landed."""

from __future__ import annotations

from datetime import date

from pyspark.sql import SparkSession

from consumer_assets.asset_keys import ARTICLE_GROUPS_KEY, HISTORIES, LABELS, RAW_EVENTS
from consumer_assets.features.build_snapshot import MissingInputError, events_with_articles, snapshot_frame
from consumer_assets.features.spark import SparkStorage
from consumer_assets.labels.spark import label_profiles, largest_categories
from consumer_assets.labels.targets import group_rule, label_days
from consumer_assets.storage import Manifest


def article_groups(
    spark: SparkSession, spark_storage: SparkStorage, day: date, configured: dict[str, list[str]], max_age_days: int
) -> dict[str, list[str] | dict]:
    """Configured groups, else those of ``config/article_groups.json`` (written by hand, or fixed at the first
    labelling), so targets stay the same across days; each checked by :func:`group_rule`."""
    root = spark_storage.root
    if configured:
        return dict(configured)
    if root.exists(ARTICLE_GROUPS_KEY):
        groups = root.read_json(ARTICLE_GROUPS_KEY)["groups"]
        for name, spec in groups.items():
            group_rule(name, spec)
        return groups
    groups = largest_categories(events_with_articles(spark, spark_storage, [day], max_age_days))
    root.write_json(
        ARTICLE_GROUPS_KEY, {"groups": groups, "chosen_as": f"the five categories with the most events on {day}"}
    )
    return groups


def build_labels(
    spark: SparkSession,
    spark_storage: SparkStorage,
    day: date,
    horizon_days: int,
    configured_groups: dict[str, list[str]],
    catalogue_max_age_days: int = 7,
) -> Manifest:
    """Labels of snapshot D; refuses while any of raw_events D+1..D+H is missing."""
    root = spark_storage.root
    later = label_days(day, horizon_days)
    missing = [d for d in later if not root.has_partition(RAW_EVENTS, d)]
    if missing:
        raise MissingInputError(
            f"order_labels {day} needs raw_events for {later[0]}..{later[-1]} (H={horizon_days}); "
            f"missing: {', '.join(map(str, missing))}. The labels mature once those days have landed and been ingested."
        )
    if not root.has_partition(HISTORIES, day):
        raise MissingInputError(f"daily_histories has no partition for {day} under {root.uri}: materialise it first.")
    groups = article_groups(spark, spark_storage, day, configured_groups, catalogue_max_age_days)
    profiles = snapshot_frame(spark, spark_storage, day, ["profile_id"])
    later_events = events_with_articles(spark, spark_storage, later, catalogue_max_age_days)
    labels = label_profiles(profiles, later_events, day, horizon_days, groups)
    return spark_storage.write_partition(
        labels, LABELS, day, files=1, properties={"groups": groups, "horizon_days": horizon_days}
    )
