"""One day's Spark work over the storage root, callable from an asset, a script or a test."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import SparkSession

from consumer_assets.features.histories import HistoryConfig, histories_from_scratch, histories_incremental, window_days
from consumer_assets.features.labels import label_days, largest_categories, order_labels
from consumer_assets.features.spark import SparkStorage
from consumer_assets.datasets import ARTICLE_GROUPS_KEY, HISTORIES, LABELS, RAW_EVENTS
from consumer_assets.storage import Manifest

log = logging.getLogger(__name__)


class MissingInputError(RuntimeError):
    """An input partition the day needs has not been materialised."""


@dataclass
class BuiltSnapshot:
    manifest: Manifest
    mode: str  # "incremental" or "from_scratch"


def build_snapshot(spark: SparkSession, bridge: SparkStorage, day: date, config: HistoryConfig, files: int = 2) -> BuiltSnapshot:
    """Snapshot D from snapshot D-1 and raw events of D, or from the window's raw events when D-1 is missing."""
    root = bridge.root
    if not root.has_partition(RAW_EVENTS, day):
        raise MissingInputError(f"raw_events has no partition for {day} under {root.uri}: materialise raw_events {day} first.")
    read = lambda dataset, days: spark.read.parquet(*bridge.input_paths(dataset, days))  # noqa: E731
    previous = day - timedelta(days=1)
    shape = {"window_days": config.window_days, "max_events": config.max_events}
    reason = _why_not_incremental(bridge, previous, shape)
    if reason is None:
        frame, mode = histories_incremental(read(HISTORIES, [previous]), read(RAW_EVENTS, [day]), day, config), "incremental"
    else:
        days = [d for d in window_days(day, config) if root.has_partition(RAW_EVENTS, d)]
        log.info("%s: building %s from %d days of raw events", reason, day, len(days))
        frame, mode = histories_from_scratch(read(RAW_EVENTS, days), day, config), "from_scratch"
    manifest = bridge.write_partition(frame, HISTORIES, day, files=files, properties={"mode": mode, **shape})
    return BuiltSnapshot(manifest, mode)


def _why_not_incremental(bridge: SparkStorage, previous: date, shape: dict) -> str | None:
    """Why snapshot D-1 cannot be extended (missing, or built with another window or length), else None."""
    if not bridge.root.has_partition(HISTORIES, previous):
        return f"no snapshot for {previous}"
    built_with = {key: bridge.root.manifest(HISTORIES, previous).properties.get(key) for key in shape}
    if built_with != shape:
        return f"snapshot {previous} was built with {built_with}, not {shape}"
    return None


def article_groups(spark: SparkSession, bridge: SparkStorage, day: date, configured: dict[str, list[str]]) -> dict[str, list[str]]:
    """Configured groups, else those fixed at the first labelling, so targets stay the same across days."""
    root = bridge.root
    if configured:
        return dict(configured)
    if root.exists(ARTICLE_GROUPS_KEY):
        return root.read_json(ARTICLE_GROUPS_KEY)["groups"]
    groups = largest_categories(spark.read.parquet(*bridge.input_paths(RAW_EVENTS, [day])))
    root.write_json(ARTICLE_GROUPS_KEY, {"groups": groups, "chosen_as": f"the five categories with the most events on {day}"})
    return groups


def build_labels(spark: SparkSession, bridge: SparkStorage, day: date, horizon_days: int, configured_groups: dict[str, list[str]]) -> Manifest:
    """Labels of snapshot D; refuses while any of raw_events D+1..D+H is missing."""
    root = bridge.root
    later = label_days(day, horizon_days)
    missing = [d for d in later if not root.has_partition(RAW_EVENTS, d)]
    if missing:
        raise MissingInputError(
            f"order_labels {day} needs raw_events for {later[0]}..{later[-1]} (H={horizon_days}); "
            f"missing: {', '.join(map(str, missing))}. The labels mature once those days have landed and been ingested."
        )
    if not root.has_partition(HISTORIES, day):
        raise MissingInputError(f"daily_histories has no partition for {day} under {root.uri}: materialise it first.")
    groups = article_groups(spark, bridge, day, configured_groups)
    profiles = spark.read.parquet(*bridge.input_paths(HISTORIES, [day]))
    later_events = spark.read.parquet(*bridge.input_paths(RAW_EVENTS, later))
    labels = order_labels(profiles, later_events, day, horizon_days, groups)
    return bridge.write_partition(labels, LABELS, day, files=1, properties={"groups": groups, "horizon_days": horizon_days})
