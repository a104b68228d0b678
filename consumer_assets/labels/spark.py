"""Order labels of a snapshot: did the profile order in (D, D+H], overall and per article group."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from consumer_assets.labels.targets import ID_LISTS, group_rule, target_name, targets

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


def in_group(rule: dict) -> Column:
    """Whether an ordered article meets a group's rule (see :func:`group_rule`); unknown attributes never do."""
    conditions = [F.col(key).isin(list(rule[key])) for key in ID_LISTS if key in rule]
    if "price" in rule:
        low, high = rule["price"]
        conditions += [F.col("price") >= F.lit(low)] if low is not None else []
        conditions += [F.col("price") < F.lit(high)] if high is not None else []
    if "launched_within_days" in rule:
        age = F.datediff(F.to_date("ts"), F.col("launch_date"))
        conditions.append((age >= 0) & (age < F.lit(rule["launched_within_days"])))
    return F.coalesce(reduce(lambda a, b: a & b, conditions), F.lit(False))


def label_profiles(
    profiles: DataFrame, later_events: DataFrame, day: date, horizon_days: int, groups: Mapping[str, object]
) -> DataFrame:
    """One row per profile of the snapshot with 0/1 labels for ``order_any`` and each group.

    ``later_events`` carry their articles' attributes (``with_articles``), so a group defined by brand, price or
    launch date labels orders whose events carried the article id alone.
    """
    orders = later_events.where(F.col("event_type") == "order")
    per_profile = orders.groupBy("profile_id").agg(
        F.lit(1).alias("order_any"),
        *[F.max(in_group(group_rule(g, spec)).cast("int")).alias(target_name(g)) for g, spec in groups.items()],
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
