"""One day of monitoring over the storage root: sketch, compare, score the matured predictions, store.

The day's sketch is kept in the manifest of ``monitoring_stats/date=D`` so that later
days build their reference window from stored sketches (a few kilobytes each)
instead of rereading a week of events. A reference day without a stored sketch
(monitoring started late, or a backfill) is sketched from its stored data once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.asset_keys import HISTORIES, LABELS, MONITORING, PREDICTIONS, RAW_EVENTS
from consumer_assets.features.snapshots import read_snapshot
from consumer_assets.metrics import share_interval
from consumer_assets.model.store import ModelStore
from consumer_assets.monitoring.stats import day_sketch, event_volume, input_drift, prediction_drift, realised
from consumer_assets.records import JsonRecord
from consumer_assets.storage import StorageRoot
from consumer_assets.timeline import Timeline

log = logging.getLogger(__name__)

EVENT_COLUMNS = ["profile_id", "ts", "event_type", "category_id", "platform", "price"]
PROFILE_SUMMARY_COLUMNS = ["profile_id", "length", "window_events", "active_days", "recency_s"]
DRIFT_SCHEMA = pa.schema(
    [
        ("feature", pa.string()),
        ("source", pa.string()),
        ("kind", pa.string()),
        ("psi", pa.float64()),
        ("band", pa.string()),
        ("ks", pa.float64()),
        ("mean", pa.float64()),
        ("reference_mean", pa.float64()),
        ("alerting", pa.bool_()),
    ]
)


LABEL_SLACK_DAYS = 2


class MonitoringInputError(RuntimeError):
    """The day's raw events or snapshot are missing."""


@dataclass(frozen=True)
class MonitoringConfig:
    reference_days: int = 7
    top_categories: int = 50
    horizon_days: int = Timeline.label_horizon_days
    history_window_days: int = 90
    series_days: int = 60


@dataclass(frozen=True)
class DayMonitoring(JsonRecord):
    """Everything monitoring found for one day: stored with the partition (``to_json``) and read back by the checks."""

    sketch: dict  # the day's distributions: event and snapshot features, scores
    reference_days: list[str]  # the earlier days it was compared with
    histories_settled: bool  # the reference snapshots saw a full window, so snapshot features may alert
    input_drift: list[dict]  # per feature: PSI, band, KS, means, whether it may alert
    prediction_drift: dict | None  # the scores' PSI against the reference; None without scores
    event_volume: dict | None  # events against the reference days' mean
    realised: dict | None  # figures of the predictions made H days earlier, once labelled
    articles: dict | None = None  # the day's events against the catalogue and the scoring model's vocabulary


def _sketch_from_data(root: StorageRoot, day: date, config: MonitoringConfig) -> dict | None:
    if not (root.has_partition(RAW_EVENTS, day) and root.has_partition(HISTORIES, day)):
        return None
    events = root.read_partition(RAW_EVENTS, day, columns=EVENT_COLUMNS)
    histories = read_snapshot(root, day, columns=PROFILE_SUMMARY_COLUMNS)
    predictions = (
        root.read_partition(PREDICTIONS, day, columns=["p_order_any"]) if root.has_partition(PREDICTIONS, day) else None
    )
    return day_sketch(events, histories, predictions, config.top_categories)


def stored_sketch(root: StorageRoot, day: date, config: MonitoringConfig) -> dict | None:
    """The sketch of ``day``: stored with its monitoring partition, else computed from its data, else None."""
    if root.has_partition(MONITORING, day):
        sketch = root.manifest(MONITORING, day).properties.get("sketch")
        if sketch is not None:
            return sketch
    return _sketch_from_data(root, day, config)


def _histories_settled(root: StorageRoot, first_reference_day: date, config: MonitoringConfig) -> bool:
    """Whether snapshot features are comparable: while the window fills after the first snapshot, they grow by
    design."""
    snapshots = root.list_partitions(HISTORIES)
    return bool(snapshots) and (first_reference_day - snapshots[0]).days >= config.history_window_days - 1


def matured_scored_day(root: StorageRoot, day: date, config: MonitoringConfig) -> date | None:
    """The newest day among D-H, D-H-1, D-H-2 with both predictions and labels.

    In the daily flow order_labels(D-H) is built just after raw_events(D), so the
    day's own monitoring run usually finds D-H-1; a backfill finds D-H.
    """
    for lag in range(config.horizon_days, config.horizon_days + LABEL_SLACK_DAYS + 1):
        scored_day = day - timedelta(days=lag)
        if root.has_partition(PREDICTIONS, scored_day) and root.has_partition(LABELS, scored_day):
            return scored_day
    return None


def _realised(root: StorageRoot, day: date, config: MonitoringConfig) -> dict | None:
    """The predictions made at the newest matured day against its labels."""
    scored_day = matured_scored_day(root, day, config)
    if scored_day is None:
        return None
    predictions = root.read_partition(PREDICTIONS, scored_day, columns=["profile_id", "p_order_any", "model_version"])
    labels = root.read_partition(LABELS, scored_day, columns=["profile_id", "order_any"])
    joined = predictions.join(labels, "profile_id", join_type="inner")
    if joined.num_rows == 0:
        return None
    p = joined.column("p_order_any").to_numpy(zero_copy_only=False).astype(float)
    y = joined.column("order_any").to_numpy(zero_copy_only=False).astype(float)
    versions = sorted(set(joined.column("model_version").to_pylist()))
    return {"scored_day": scored_day.isoformat(), "model_versions": versions, **realised(p, y)}


def realised_series(root: StorageRoot, day: date, today: dict | None, config: MonitoringConfig) -> list[dict]:
    """Realised figures of the earlier monitored days and today, oldest first."""
    series = []
    for earlier in root.list_partitions(MONITORING):
        if day - timedelta(days=config.series_days) <= earlier < day:
            figures = root.manifest(MONITORING, earlier).properties.get("realised")
            if figures:
                series.append({"day": earlier.isoformat(), **{k: v for k, v in figures.items() if k != "calibration"}})
    if today:
        series.append({"day": day.isoformat(), **{k: v for k, v in today.items() if k != "calibration"}})
    return series


def _share(hits: int, n: int) -> dict:
    low, high = share_interval(hits, n)
    return {"hits": hits, "n": n, "share": hits / n if n else None, "interval_95": [low, high] if n else None}


def article_coverage(root: StorageRoot, day: date) -> dict:
    """How many of the day's events the catalogue knew (the histories' join) and how many were on articles the model
    that scored the day has its own embedding for, each a share with its interval. New arrivals the model never saw
    lower the second: the reason re-training must be frequent."""
    coverage: dict = {}
    joined = root.manifest(HISTORIES, day).properties.get("catalogue")
    if joined is not None:
        coverage["catalogue_day"] = joined["catalogue_day"]
        coverage["in_catalogue"] = _share(joined["in_catalogue"], joined["events"])
    if root.has_partition(PREDICTIONS, day):
        versions = root.read_partition(PREDICTIONS, day, columns=["model_version"]).column("model_version")
        version = versions[0].as_py() if len(versions) else None
        vocabulary = ModelStore(root).read_vocabulary(version) if version else None
        if vocabulary is not None:
            articles = root.read_partition(RAW_EVENTS, day, columns=["article_id"]).column("article_id")
            known = pa.array(vocabulary.tokens["article_id"][2:], pa.string())  # after the padding and OOV rows
            hits = pc.sum(pc.is_in(articles, value_set=known)).as_py() or 0
            coverage["model_version"] = version
            coverage["in_vocabulary"] = _share(hits, len(articles))
    return coverage


def monitor_day(root: StorageRoot, day: date, config: MonitoringConfig) -> DayMonitoring:
    """Sketch ``day``, compare it with the reference window and score what has matured."""
    current = _sketch_from_data(root, day, config)
    if current is None:
        raise MonitoringInputError(
            f"monitoring_stats {day} needs raw_events and daily_histories of {day} under {root.uri}: materialise them "
            "first."
        )
    reference_days = [day - timedelta(days=k) for k in range(config.reference_days, 0, -1)]
    reference = [(d, s) for d in reference_days if (s := stored_sketch(root, d, config)) is not None]
    log.info("monitoring %s against %d reference days", day, len(reference))
    sketches = [s for _, s in reference]
    settled = bool(reference) and _histories_settled(root, reference[0][0], config)
    drift = [{**row, "alerting": row["source"] != "histories" or settled} for row in input_drift(current, sketches)]
    scores = prediction_drift(current, sketches)
    matured = _realised(root, day, config)
    return DayMonitoring(
        sketch=current,
        reference_days=[d.isoformat() for d, _ in reference],
        histories_settled=settled,
        input_drift=drift,
        prediction_drift=scores,
        event_volume=event_volume(current, sketches),
        realised=matured,
        articles=article_coverage(root, day),
    )


def drift_table(monitoring: DayMonitoring) -> pa.Table:
    rows = list(monitoring.input_drift)
    if monitoring.prediction_drift:
        rows.append({**monitoring.prediction_drift, "alerting": True})
    return pa.Table.from_pylist(rows, schema=DRIFT_SCHEMA)
