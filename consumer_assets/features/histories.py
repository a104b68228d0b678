"""Per-profile event histories at a day's cut-off, built with Spark.

A snapshot at day D holds, for every profile with an event in the trailing window
(D-W, D], its last L events up to the cut-off (the end of D, UTC), oldest first,
as Parquet list columns an LSTM reads directly. Ids stay raw: each model builds
its own vocabularies.

The snapshot also keeps one small struct per active day (counts per event type and
spend), so that window totals stay exact even when a profile has more than L events,
and so that day D can be built from snapshot D-1 plus the events of D alone. Only
the profiles that changed on D are finished again; how they are stored on top of
the day before is in :mod:`consumer_assets.features.snapshots`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from consumer_assets.features.snapshots import cutoff
from consumer_assets.ingest.contract import EVENT_TYPES

EVENT_FIELDS = ("ts", "event_type", "article_id", "category_id", "brand_id", "price", "platform")
DAY_COUNT_FIELDS = ("events", *EVENT_TYPES)


@dataclass(frozen=True)
class HistoryConfig:
    """Window W (days) and sequence length L of a snapshot."""

    window_days: int = 90
    max_events: int = 100


def window_days(day: date, config: HistoryConfig) -> list[date]:
    return [day - timedelta(days=k) for k in range(config.window_days - 1, -1, -1)]


def _day_struct(day: Column) -> Column:
    counts = [F.sum(F.when(F.col("event_type") == t, 1).otherwise(0)).cast("int").alias(t) for t in EVENT_TYPES]
    spend = F.coalesce(F.sum(F.when(F.col("event_type") == "order", F.col("price"))), F.lit(0.0)).alias("spend")
    return F.struct(day.alias("date"), F.count(F.lit(1)).cast("int").alias("events"), *counts, spend)


ARTICLE_ATTRIBUTES = ("brand_id", "category_id", "price")  # what the catalogue fills in where an event lacks it
CATALOGUE_ONLY = ("launch_date",)  # what only the catalogue knows


def with_articles(events: DataFrame, articles: DataFrame | None) -> DataFrame:
    """Each event with its article's attributes as of its day, and its ``launch_date``.

    ``articles`` holds ``day``, ``article_id`` and the attributes of the catalogue that stands for each day (see
    ``consumer_assets.ingest.catalogue.catalogue_as_of``); None when there is none. An event's own attributes win
    where it carries them (what the tracker saw); the catalogue fills in the rest, so events that carry the article
    id alone still bring its brand, category and price.
    """
    if articles is None:
        return events.select("*", F.lit(None).cast("date").alias("launch_date"))
    known = articles.select(
        "day",
        "article_id",
        *[F.col(name).alias(f"catalogue_{name}") for name in ARTICLE_ATTRIBUTES],
        *CATALOGUE_ONLY,
    )
    joined = events.withColumn("day", F.to_date("ts")).join(known, ["day", "article_id"], "left")
    return joined.select(
        *[
            F.coalesce(name, f"catalogue_{name}").alias(name) if name in ARTICLE_ATTRIBUTES else F.col(name)
            for name in events.columns
        ],
        *CATALOGUE_ONLY,
    )


def aggregate_events(events: DataFrame) -> DataFrame:
    """Raw events to the history state: per profile, its events and one struct per active day."""
    per_day = (
        events.withColumn("day", F.to_date("ts"))
        .groupBy("profile_id", "day")
        .agg(F.collect_list(F.struct(*EVENT_FIELDS)).alias("events"), _day_struct(F.col("day")).alias("day_stats"))
    )
    return per_day.groupBy("profile_id").agg(
        F.flatten(F.collect_list("events")).alias("events"), F.collect_list("day_stats").alias("days")
    )


def snapshot_state(snapshot: DataFrame) -> DataFrame:
    """A stored snapshot back to the history state, to extend it by a day."""
    zipped = F.arrays_zip(*[F.col(name) for name in EVENT_FIELDS])
    return snapshot.select("profile_id", zipped.alias("events"), "days")


def _adder(name: str):
    return lambda acc, x: acc + x[name]


def finalise(state: DataFrame, day: date, config: HistoryConfig) -> DataFrame:
    """The history state to the snapshot at ``day``: window applied, last L events, derived features."""
    end = cutoff(day)
    start = end - timedelta(days=config.window_days)
    first_day = day - timedelta(days=config.window_days - 1)
    length = config.max_events
    windowed = state.select(
        "profile_id",
        F.array_sort(F.filter("events", lambda e: (e["ts"] >= F.lit(start)) & (e["ts"] < F.lit(end)))).alias("events"),
        F.array_sort(F.filter("days", lambda d: (d["date"] >= F.lit(first_day)) & (d["date"] <= F.lit(day)))).alias(
            "days"
        ),
    ).where(F.size("days") > 0)
    last = windowed.withColumn("events", F.expr(f"slice(events, greatest(size(events) - {length} + 1, 1), {length})"))

    cutoff_s = F.lit(end.timestamp())
    seconds = lambda e: F.unix_micros(e["ts"]) / F.lit(1e6)  # noqa: E731
    columns = [
        F.col("events")[name].alias(name) for name in EVENT_FIELDS
    ]  # a field of each struct, compiled; no lambda
    derived = [
        F.transform(
            "events",
            lambda e, i: F.when(i == 0, F.lit(0.0)).otherwise(seconds(e) - seconds(F.col("events")[i - 1])),
        ).alias("dt_prev_s"),
        F.transform("events", lambda e: cutoff_s - seconds(e)).alias("dt_cutoff_s"),
        F.transform("events", lambda e: F.hour(e["ts"])).alias("hour"),
        F.transform("events", lambda e: F.weekday(e["ts"])).alias("weekday"),
    ]
    totals = [F.aggregate("days", F.lit(0), _adder(name)).alias(f"window_{name}") for name in DAY_COUNT_FIELDS]
    summaries = [
        *totals,
        F.aggregate("days", F.lit(0.0), lambda acc, d: acc + d["spend"]).alias("window_spend"),
        F.size("days").alias("active_days"),
        (cutoff_s - seconds(F.element_at("events", -1))).alias("recency_s"),
    ]
    return last.select(
        "profile_id",
        F.lit(day).alias("snapshot_date"),
        F.size("events").alias("length"),
        *columns,
        *derived,
        *summaries,
        "days",
    )


def histories_from_scratch(events: DataFrame, day: date, config: HistoryConfig) -> DataFrame:
    """The snapshot from the window's raw events (first partition, or a missing predecessor)."""
    return finalise(aggregate_events(events), day, config)


STATE_COLUMNS = ("profile_id", *EVENT_FIELDS, "days")


def with_clock_moved(rows: DataFrame, seconds: Column, day: date) -> DataFrame:
    """Rows finished ``seconds`` before the cut-off of ``day``, their clock moved to it; nothing else changes."""
    moved = {
        "snapshot_date": F.lit(day),
        "dt_cutoff_s": F.transform("dt_cutoff_s", lambda s: s + seconds),
        "recency_s": F.col("recency_s") + seconds,
    }
    return rows.select(*[moved[name].alias(name) if name in moved else F.col(name) for name in rows.columns])


def _flag_changed(previous: DataFrame, events_of_day: DataFrame, day: date, config: HistoryConfig) -> DataFrame:
    """Snapshot D-1 with ``changed``: the profile has an event today, or an event or a day leaving the window."""
    first_day = day - timedelta(days=config.window_days - 1)
    window_start = cutoff(day) - timedelta(days=config.window_days)
    active_today = events_of_day.select("profile_id").distinct().withColumn("active_today", F.lit(True))
    return previous.join(F.broadcast(active_today), "profile_id", "left").select(
        *previous.columns,
        (
            F.col("active_today").isNotNull()
            | (F.element_at("days", 1)["date"] < F.lit(first_day))
            | (F.element_at("ts", 1) < F.lit(window_start))
        ).alias("changed"),
    )


def changed_histories(previous: DataFrame, events_of_day: DataFrame, day: date, config: HistoryConfig) -> DataFrame:
    """Rows of snapshot D for the profiles that changed on D, from snapshot D-1 and D's events.

    ``previous`` needs only :data:`STATE_COLUMNS`. A profile whose last event left the
    window gets no row: readers drop it from the snapshot by its recency.
    """
    flagged = _flag_changed(previous.select(*STATE_COLUMNS), events_of_day, day, config)
    combined = snapshot_state(flagged.where(F.col("changed"))).unionByName(aggregate_events(events_of_day))
    state = combined.groupBy("profile_id").agg(
        F.flatten(F.collect_list("events")).alias("events"), F.flatten(F.collect_list("days")).alias("days")
    )
    return finalise(state, day, config)


def histories_incremental(previous: DataFrame, events_of_day: DataFrame, day: date, config: HistoryConfig) -> DataFrame:
    """The whole snapshot of D from snapshot D-1 and D's events only, without rereading the window.

    Profiles that did not change are carried over by a projection that moves their
    clock a day on, without a shuffle; the changed ones are regrouped with today's
    events (see :func:`changed_histories`).
    """
    flagged = _flag_changed(previous, events_of_day, day, config)
    unchanged = with_clock_moved(flagged.where(~F.col("changed")).drop("changed"), F.lit(float(86_400)), day)
    return changed_histories(previous, events_of_day, day, config).unionByName(unchanged)


EVENTS_PER_PROFILE_EDGES = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)


def _bucket_label(lower: int, upper: int | None) -> str:
    return f">={lower}" if upper is None else (str(lower) if upper == lower + 1 else f"{lower}-{upper - 1}")


def describe(snapshot: DataFrame) -> dict:
    """Figures about a snapshot for the UI: sizes, length quantiles, a histogram, vocabulary sizes.

    The few columns they need are read once and kept for the three passes.
    """
    snapshot = snapshot.select("length", "window_events", "article_id", "category_id", "brand_id").persist()
    try:
        return _figures(snapshot)
    finally:
        snapshot.unpersist()


def _figures(snapshot: DataFrame) -> dict:
    quantiles = [0.1, 0.5, 0.9, 0.99]
    summary = snapshot.agg(
        F.count(F.lit(1)).alias("profiles"),
        F.sum("length").alias("events_kept"),
        F.sum("window_events").alias("window_events"),
        F.percentile_approx("length", quantiles).alias("length_quantiles"),
        F.max("length").alias("length_max"),
    ).first()
    edges = EVENTS_PER_PROFILE_EDGES
    bucket = F.lit(len(edges) - 1)
    for i in range(len(edges) - 2, -1, -1):
        bucket = F.when(F.col("window_events") < edges[i + 1], F.lit(i)).otherwise(bucket)
    counts = {row["bucket"]: row["count"] for row in snapshot.groupBy(bucket.alias("bucket")).count().collect()}
    histogram = {
        _bucket_label(edges[i], edges[i + 1] if i + 1 < len(edges) else None): counts.get(i, 0)
        for i in range(len(edges))
    }
    vocabulary = (
        snapshot.select(F.explode(F.arrays_zip("article_id", "category_id", "brand_id")).alias("e"))
        .agg(*[F.countDistinct(F.col("e")[name]).alias(name) for name in ("article_id", "category_id", "brand_id")])
        .first()
    )
    return {
        "profiles": summary["profiles"] or 0,
        "events_kept": summary["events_kept"] or 0,
        "window_events": summary["window_events"] or 0,
        "length_quantiles": dict(zip([f"p{int(q * 100)}" for q in quantiles], summary["length_quantiles"] or []))
        | {"max": summary["length_max"]},
        "events_per_profile": histogram,
        "vocabulary": {name: vocabulary[name] for name in ("article_id", "category_id", "brand_id")},
    }
