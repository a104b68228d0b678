"""One day's Spark work over the storage root, callable from an asset, a script or a test."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from functools import reduce

import pyarrow.compute as pc
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from consumer_assets.asset_keys import ARTICLE_CATALOGUE, HISTORIES, RAW_EVENTS
from consumer_assets.features.histories import (
    ARTICLE_ATTRIBUTES,
    CATALOGUE_ONLY,
    STATE_COLUMNS,
    HistoryConfig,
    changed_histories,
    histories_from_scratch,
    histories_incremental,
    window_days,
    with_articles,
    with_clock_moved,
)
from consumer_assets.features.snapshots import READER, Layer, clock_shift_seconds, in_window_seconds, layers_of
from consumer_assets.features.spark import SparkStorage
from consumer_assets.ingest.catalogue import catalogue_as_of
from consumer_assets.records import JsonRecord
from consumer_assets.storage import LAYERS, Manifest, StorageRoot

log = logging.getLogger(__name__)


BROADCAST_ARTICLE_ROWS = 2_000_000  # article rows (articles x days) joined without a shuffle


class MissingInputError(RuntimeError):
    """An input partition the day needs has not been materialised."""


@dataclass(frozen=True)
class Compaction:
    """When a day is written in full (a new base) instead of as a layer of changes.

    Readers merge the base and every layer, so the changes are bounded by a share of
    the base's rows and by a number of layers. ``max_change_share=0`` writes every
    snapshot in full: self-contained plain Parquet, at a cost that grows with the window.
    """

    max_change_share: float = 1.0
    max_layers: int = 8

    def why_full(self, layers: list[Layer]) -> str | None:
        """Why snapshot D, on top of ``layers`` (those of D-1), is written in full; None for a layer of changes."""
        changes = sum(layer.rows for layer in layers[1:])
        if len(layers) >= self.max_layers:
            return f"snapshot D-1 already has {len(layers)} layers (at most {self.max_layers})"
        if changes >= self.max_change_share * layers[0].rows:
            return (
                f"the changes since the base ({changes:,} rows) reached {self.max_change_share:g} x "
                f"its {layers[0].rows:,} rows"
            )
        return None


@dataclass(frozen=True)
class CatalogueJoin(JsonRecord):
    """How the day's events met the article catalogue: the export that stood for the day (None: no catalogue within
    the allowed age) and how many of the day's events it knew. Stored in the snapshot's manifest."""

    catalogue_day: str | None
    events: int
    in_catalogue: int


@dataclass
class BuiltSnapshot:
    manifest: Manifest
    mode: str  # "incremental" (a layer of changes), "compacted" (in full from D-1) or "from_scratch"
    changed_profiles: int
    catalogue: CatalogueJoin


def articles_as_of(
    spark: SparkSession, spark_storage: SparkStorage, days: list[date], max_age_days: int
) -> tuple[DataFrame | None, dict[date, date]]:
    """The catalogue standing for each of ``days`` (its own export, else the latest within ``max_age_days``) as one
    frame of ``day``, ``article_id`` and attributes; and which export stood for which day.

    Up to ``BROADCAST_ARTICLE_ROWS`` rows (a day's catalogue of a large shop) the frame is broadcast to the join, so
    the events are joined where they are, without a shuffle; beyond (a from-scratch build over many days of a large
    catalogue) Spark shuffles both sides.
    """
    root = spark_storage.root
    stored = root.list_partitions(ARTICLE_CATALOGUE)
    standing = {day: found for day in days if (found := catalogue_as_of(stored, day, max_age_days)) is not None}
    if not standing:
        return None, standing
    exports = [
        spark.read.parquet(*spark_storage.input_paths(ARTICLE_CATALOGUE, [export]))
        .select("article_id", *ARTICLE_ATTRIBUTES, *CATALOGUE_ONLY)
        .withColumn("export_day", F.lit(export))
        for export in sorted(set(standing.values()))
    ]
    mapping = spark.createDataFrame(list(standing.items()), "day date, export_day date")
    articles = reduce(DataFrame.unionByName, exports).join(F.broadcast(mapping), "export_day").drop("export_day")
    exports_rows = {export: root.manifest(ARTICLE_CATALOGUE, export).rows for export in set(standing.values())}
    rows = sum(exports_rows[export] for export in standing.values())  # one manifest read per export
    return (F.broadcast(articles) if rows <= BROADCAST_ARTICLE_ROWS else articles), standing


def snapshot_frame(
    spark: SparkSession, spark_storage: SparkStorage, day: date, columns: list[str] | None = None
) -> DataFrame:
    """The snapshot of ``day`` as a DataFrame, its layers merged (see :mod:`consumer_assets.features.snapshots`)."""
    manifest = spark_storage.root.manifest(HISTORIES, day)
    layers = layers_of(manifest, day)
    window_s = (
        in_window_seconds(manifest.properties["window_days"]) if len(layers) > 1 else float("inf")
    )  # a snapshot in full needs no merging
    return _merged(spark, spark_storage, day, layers, window_s, columns)


def _merged(
    spark: SparkSession,
    spark_storage: SparkStorage,
    day: date,
    layers: list[Layer],
    window_s: float,
    columns: list[str] | None,
) -> DataFrame:
    """``layers`` (files below the partition folder of ``day``) merged into the snapshot of ``day``."""
    prefix = spark_storage.root.partition_key(HISTORIES, day)
    layers = [layer for layer in layers if layer.files]  # a day on which nothing changed may have written no file
    frames = [
        spark.read.parquet(*spark_storage.spark_paths([spark_storage.root.path(prefix, name) for name in layer.files]))
        for layer in layers
    ]
    wanted = columns or frames[0].columns
    if len(layers) == 1 and layers[0].day == day:
        return frames[0].select(*wanted)
    needed = list(dict.fromkeys([*wanted, "profile_id", "recency_s"]))
    rows = reduce(
        DataFrame.unionByName, [frame.select(*needed, F.lit(i).alias("layer")) for i, frame in enumerate(frames)]
    )
    if len(frames) > 1:
        newest = (
            reduce(
                DataFrame.unionByName,
                [frame.select("profile_id", F.lit(i).alias("layer")) for i, frame in enumerate(frames) if i > 0],
            )
            .groupBy("profile_id")
            .agg(F.max("layer").alias("newest_layer"))
        )
        rows = rows.join(F.broadcast(newest), "profile_id", "left").where(
            F.col("newest_layer").isNull() | (F.col("layer") == F.col("newest_layer"))
        )
    shift = F.element_at(F.array(*[F.lit(clock_shift_seconds(layer.day, day)) for layer in layers]), F.col("layer") + 1)
    current = rows.where(F.col("recency_s") + shift <= F.lit(window_s))
    return with_clock_moved(current, shift, day).select(*wanted)


def events_with_articles(
    spark: SparkSession, spark_storage: SparkStorage, days: list[date], catalogue_max_age_days: int
) -> DataFrame:
    """The raw events of ``days``, each with its article's attributes as of its day (:func:`with_articles`)."""
    articles, _ = articles_as_of(spark, spark_storage, days, catalogue_max_age_days)
    return with_articles(spark.read.parquet(*spark_storage.input_paths(RAW_EVENTS, days)), articles)


def build_snapshot(
    spark: SparkSession,
    spark_storage: SparkStorage,
    day: date,
    config: HistoryConfig,
    files: int = 2,
    compaction: Compaction = Compaction(),
    catalogue_max_age_days: int = 7,
) -> BuiltSnapshot:
    """Snapshot D from snapshot D-1 and the raw events of D, or from the window's raw events when D-1 is missing.

    Usually only the profiles that changed on D are written, as a layer on top of
    D-1's; see :class:`Compaction` for when D is written in full. Each event is joined
    to its article's attributes in the catalogue as of its day (:func:`with_articles`).
    """
    root = spark_storage.root
    if not root.has_partition(RAW_EVENTS, day):
        raise MissingInputError(
            f"raw_events has no partition for {day} under {root.uri}: materialise raw_events {day} first."
        )
    with root.writing(HISTORIES, day):  # one writer from the first file to the commit
        return _build_snapshot(spark, spark_storage, day, config, files, compaction, catalogue_max_age_days)


def _build_snapshot(
    spark: SparkSession,
    spark_storage: SparkStorage,
    day: date,
    config: HistoryConfig,
    files: int,
    compaction: Compaction,
    catalogue_max_age_days: int,
) -> BuiltSnapshot:
    root = spark_storage.root
    events_of = lambda days: events_with_articles(spark, spark_storage, days, catalogue_max_age_days)  # noqa: E731

    joined = catalogue_join(root, day, catalogue_max_age_days)
    previous = day - timedelta(days=1)
    shape = {"window_days": config.window_days, "max_events": config.max_events}
    reason = _why_not_incremental(spark_storage, previous, shape)
    if reason is not None:
        days = [d for d in window_days(day, config) if root.has_partition(RAW_EVENTS, d)]
        log.info("%s: building %s from %d days of raw events", reason, day, len(days))
        manifest = spark_storage.write_partition(
            histories_from_scratch(events_of(days), day, config),
            HISTORIES,
            day,
            files,
            {"mode": "from_scratch", **shape, "catalogue": joined.to_json()},
        )
        return BuiltSnapshot(manifest, "from_scratch", manifest.rows, joined)
    layers = layers_of(root.manifest(HISTORIES, previous), previous)
    events = events_of([day])
    full = compaction.why_full(layers)
    if full is not None:
        log.info("%s: writing %s in full", full, day)
        frame = histories_incremental(snapshot_frame(spark, spark_storage, previous), events, day, config)
        properties = {"mode": "compacted", **shape, "catalogue": joined.to_json()}
        manifest = spark_storage.write_partition(frame, HISTORIES, day, files, properties)
        return BuiltSnapshot(manifest, "compacted", manifest.rows, joined)
    changes = changed_histories(
        snapshot_frame(spark, spark_storage, previous, list(STATE_COLUMNS)), events, day, config
    )
    names, rows = spark_storage.write_files(changes, HISTORIES, day, files)
    carried = [name for layer in layers for name in layer.files]
    root.copy_partition_files(HISTORIES, previous, carried, day)
    stacked = [*layers, Layer(day, tuple(names), rows)]
    profiles = _merged(
        spark, spark_storage, day, stacked, in_window_seconds(config.window_days), ["profile_id"]
    ).count()
    log.info(
        "%s: %d changed profiles written as layer %d on the base of %s", day, rows, len(stacked) - 1, stacked[0].day
    )
    properties = {
        "mode": "incremental",
        **shape,
        LAYERS: [layer.to_json() for layer in stacked],
        "reader": READER,
        "catalogue": joined.to_json(),
    }
    manifest = root.commit_partition(HISTORIES, day, [*carried, *names], profiles, properties)
    return BuiltSnapshot(manifest, "incremental", rows, joined)


def catalogue_join(root: StorageRoot, day: date, max_age_days: int) -> CatalogueJoin:
    """How many of the day's raw events find their article in the catalogue that stands for the day (with Arrow: one
    column of the day and the export's ids, cheaper than a Spark job)."""
    export = catalogue_as_of(root.list_partitions(ARTICLE_CATALOGUE), day, max_age_days)
    articles = root.read_partition(RAW_EVENTS, day, columns=["article_id"]).column("article_id")
    if export is None:
        return CatalogueJoin(None, len(articles), 0)
    known = root.read_partition(ARTICLE_CATALOGUE, export, columns=["article_id"]).column("article_id")
    found = pc.sum(pc.is_in(articles, value_set=known.combine_chunks())).as_py() or 0
    return CatalogueJoin(export.isoformat(), len(articles), found)


def _why_not_incremental(spark_storage: SparkStorage, previous: date, shape: dict) -> str | None:
    """Why snapshot D-1 cannot be extended (missing, or built with another window or length), else None."""
    if not spark_storage.root.has_partition(HISTORIES, previous):
        return f"no snapshot for {previous}"
    built_with = {key: spark_storage.root.manifest(HISTORIES, previous).properties.get(key) for key in shape}
    if built_with != shape:
        return f"snapshot {previous} was built with {built_with}, not {shape}"
    return None
