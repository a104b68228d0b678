"""batch_predictions: every profile of the day's snapshot scored by the model in service, on CPU;
score_explanations: why, event by event, for the top profiles and a sample;
profile_states: each profile's LSTM state, for the online service to carry forward."""

import time

import dagster as dg
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.asset_keys import EXPLANATIONS, HISTORIES, MODEL_IN_SERVICE, PREDICTIONS, STATES
from consumer_assets.cores import CoreShare
from consumer_assets.features.resources import SparkResource
from consumer_assets.features.snapshots import iter_snapshot_batches
from consumer_assets.io_manager import stored_input
from consumer_assets.metadata import count_table, plot_markdown
from consumer_assets.model.encoding import HISTORY_COLUMNS
from consumer_assets.model.store import LoadedModel, ModelLoadError, ModelStore
from consumer_assets.partitions import daily_partitions
from consumer_assets.plots import bar_chart, contribution_bars, explanation_timeline
from consumer_assets.serving.batch_scoring import score_partition
from consumer_assets.serving.explain import (
    attribution_shares,
    contribution_summary,
    explain,
    iter_profiles,
    snapshot_rows,
)
from consumer_assets.serving.resources import ExplanationResource, ScoringResource
from consumer_assets.serving.spark_score import write_predictions_with_spark
from consumer_assets.serving.states import batch_states, cutoff_seconds
from consumer_assets.storage.handle import StoredPartition
from consumer_assets.storage.resources import STORAGE_RETRY, StorageResource

SCORE_BINS = np.linspace(0, 1, 11)


@dg.asset(
    name=PREDICTIONS,
    io_manager_key="partition_io_manager",
    partitions_def=daily_partitions,
    retry_policy=STORAGE_RETRY,
    group_name="serving",
    ins={
        HISTORIES: stored_input(HISTORIES),
        MODEL_IN_SERVICE: dg.AssetIn(MODEL_IN_SERVICE, input_manager_key="model_in_service_loader"),
    },
    kinds={"pytorch", "parquet"},
    owners=["team:ml"],
    tags={"stage": "serving"},
    code_version="1",
)
def batch_predictions(
    context: dg.AssetExecutionContext,
    daily_histories: StoredPartition,
    model_in_service: LoadedModel,
    storage: StorageResource,
    scoring: ScoringResource,
    spark: SparkResource,
) -> dg.MaterializeResult:
    """The probability of each target for every profile of daily_histories(D), from the model in service.

    The model is the one ``models/serving.json`` names, never the newest candidate: a
    refused candidate leaves yesterday's model scoring. Streams the snapshot in chunks on
    CPU (inference mode), or scores it on Spark (``ScoringResource.engine``).
    """
    day, root, model = daily_histories.day, storage.open(), model_in_service
    started = time.perf_counter()
    if scoring.engine == "spark":
        context.log.info("scoring %s on Spark (%s)", day, spark.master)
        manifest = write_predictions_with_spark(
            spark.session(), spark.spark_storage(root), day, model.version, scoring.batch_size
        )
    else:
        with CoreShare(scoring.threads) as cores:  # runs sharing the machine split its cores
            batches = iter_snapshot_batches(root, day, scoring.chunk_rows, columns=list(HISTORY_COLUMNS))
            scored = score_partition(
                model, cores.rebalancing(batches), day, scoring.batch_size, progress=context.log.info
            )
            manifest = root.write_partition(PREDICTIONS, day, scored, properties={"model_version": model.version})
    seconds = time.perf_counter() - started
    scores = root.read_partition(PREDICTIONS, day, columns=["p_order_any"]).column("p_order_any").to_numpy()
    counts, _ = np.histogram(scores, SCORE_BINS)
    labels = [f"{lo:.1f}-{hi:.1f}" for lo, hi in zip(SCORE_BINS[:-1], SCORE_BINS[1:])]
    context.log.info("%s: scored %d profiles with %s in %.1f s", day, manifest.rows, model.version, seconds)
    return dg.MaterializeResult(
        metadata={
            "rows": manifest.rows,
            "model_version": model.version,
            "profiles_per_second": manifest.rows / max(seconds, 1e-9),
            "mean_p_order_any": float(scores.mean()) if len(scores) else 0.0,
            "score_distribution": count_table(dict(zip(labels, counts.tolist())), "p_order_any", "profiles"),
            "score_histogram": plot_markdown(
                bar_chart(labels, counts.tolist(), "Scores of the day", "p_order_any", "profiles"), "score histogram"
            ),
        }
    )


@dg.asset_check(asset=batch_predictions, partitions_def=daily_partitions, blocking=True)
def check_every_profile_scored_once(
    context: dg.AssetCheckExecutionContext, storage: StorageResource
) -> dg.AssetCheckResult:
    """As many predictions as snapshot profiles, and no profile twice."""
    root = storage.open()
    profiles = root.manifest(HISTORIES, context.partition_key).rows
    ids = root.read_partition(PREDICTIONS, context.partition_key, columns=["profile_id"]).column("profile_id")
    distinct = pc.count_distinct(ids).as_py()
    return dg.AssetCheckResult(
        passed=len(ids) == profiles == distinct,
        metadata={"snapshot_profiles": profiles, "predictions": len(ids), "distinct_profiles": distinct},
    )


@dg.asset_check(asset=batch_predictions, partitions_def=daily_partitions, blocking=True)
def check_probabilities_valid(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dg.AssetCheckResult:
    """Every score a finite probability in [0, 1], and the scores not collapsed onto one value."""
    table = storage.open().read_partition(PREDICTIONS, context.partition_key)
    scores = np.stack([table.column(c).to_numpy() for c in table.column_names if c.startswith("p_")], axis=1)
    valid = bool(np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all())
    spread = float(np.nanstd(scores[:, 0])) if len(scores) else 0.0
    return dg.AssetCheckResult(
        passed=valid and spread > 1e-4, metadata={"all_valid_probabilities": valid, "std_p_order_any": spread}
    )


def choose_profiles(predictions: pa.Table, top: int, sample: int, seed: int) -> dict[str, str]:
    """The ``top`` highest-scored profiles and a seeded random ``sample`` of the rest: profile id -> why it was
    chosen."""
    scores = predictions.column("p_order_any").to_numpy()
    ids = predictions.column("profile_id").to_pylist()
    order = np.argsort(-scores, kind="stable")
    chosen = {ids[i]: "top" for i in order[:top]}
    rest = order[top:]
    for i in np.random.default_rng(seed).choice(rest, size=min(sample, len(rest)), replace=False):
        chosen[ids[i]] = "sample"
    return chosen


def model_that_scored(predictions: StoredPartition) -> LoadedModel:
    """The model whose version batch_predictions(D) records: explanations and states must come from the same one."""
    version = predictions.manifest().properties["model_version"]
    try:
        return ModelStore(predictions.root).load(version)
    except ModelLoadError as exc:
        raise dg.Failure(
            f"the model that scored {predictions.day} cannot be loaded: {exc}", allow_retries=False
        ) from exc


@dg.asset(
    name=EXPLANATIONS,
    io_manager_key="partition_io_manager",
    partitions_def=daily_partitions,
    retry_policy=STORAGE_RETRY,
    group_name="serving",
    ins={
        HISTORIES: stored_input(HISTORIES),
        PREDICTIONS: stored_input(PREDICTIONS),
    },
    kinds={"pytorch", "parquet"},
    owners=["team:ml"],
    tags={"stage": "serving"},
    code_version="1",
)
def score_explanations(
    context: dg.AssetExecutionContext,
    daily_histories: StoredPartition,
    batch_predictions: StoredPartition,
    storage: StorageResource,
    explanations: ExplanationResource,
) -> dg.MaterializeResult:
    """Each event's contribution to the score of the day's top profiles and of a random sample.

    Explained with the model that scored the day (the version in batch_predictions), so
    every trajectory ends at the profile's batch score and its contributions add up to
    that score minus the empty-history score. The summary says which event types, and
    how long before the cut-off, move scores up or down; monitoring compares it day by day.
    """
    day, root = daily_histories.day, storage.open()
    model = model_that_scored(batch_predictions)
    version = model.version
    chosen = choose_profiles(
        batch_predictions.read(columns=["profile_id", "p_order_any"]),
        explanations.top_profiles,
        explanations.sample_profiles,
        day.toordinal(),
    )
    histories = snapshot_rows(root, day, list(chosen))
    started = time.perf_counter()
    explained = explain(model, histories)
    seconds = time.perf_counter() - started
    events = explained.events.append_column(
        "chosen_as", pa.array([chosen[p] for p in explained.events.column("profile_id").to_pylist()], pa.string())
    )
    summary = contribution_summary(events)
    shares = attribution_shares(events)
    root.write_partition(
        EXPLANATIONS,
        day,
        events,
        properties={
            "model_version": version,
            "empty_score": explained.empty_score,
            "attribution_shares": shares,
            "profiles": histories.num_rows,
        },
    )
    context.log.info(
        "%s: explained %d profiles (%d events) with %s in %.1f s",
        day,
        histories.num_rows,
        events.num_rows,
        version,
        seconds,
    )
    top = [profile for profile, why in chosen.items() if why == "top"][: explanations.plotted_profiles]
    by_profile = {p: e for p, e in iter_profiles(explained.events) if p in top}
    plots = {
        f"trajectory_{rank + 1}": plot_markdown(
            explanation_timeline(
                profile,
                (by_profile[profile].column("seconds_before_cutoff").to_numpy() / 3600).tolist(),
                by_profile[profile].column("probability").to_pylist(),
                by_profile[profile].column("event_type").to_pylist(),
                explained.empty_score,
            ),
            f"trajectory of {profile}",
        )
        for rank, profile in enumerate(top)
        if profile in by_profile
    }
    return dg.MaterializeResult(
        metadata={
            "profiles": histories.num_rows,
            "events": events.num_rows,
            "model_version": version,
            "empty_history_score": explained.empty_score,
            "seconds": seconds,
            "summary": dg.MetadataValue.table(
                records=[
                    dg.TableRecord({k: (round(v, 5) if isinstance(v, float) else v) for k, v in row.items()})
                    for row in summary
                ],
                schema=dg.TableSchema(
                    columns=[
                        dg.TableColumn("event_type", "string"),
                        dg.TableColumn("age", "string"),
                        dg.TableColumn("events", "int"),
                        dg.TableColumn("mean_contribution", "float"),
                        dg.TableColumn("share_up", "float"),
                        dg.TableColumn("total_contribution", "float"),
                    ]
                ),
            ),
            "attribution_shares": count_table(
                {k: round(v, 4) for k, v in shares.items()}, "event_type", "share of |contribution|"
            ),
            "what_moves_scores": plot_markdown(contribution_bars(summary), "mean contribution per event type and age"),
            **plots,
        }
    )


@dg.asset(
    name=STATES,
    io_manager_key="partition_io_manager",
    partitions_def=daily_partitions,
    retry_policy=STORAGE_RETRY,
    group_name="serving",
    ins={
        HISTORIES: stored_input(HISTORIES),
        PREDICTIONS: stored_input(PREDICTIONS),
    },
    kinds={"pytorch", "parquet"},
    owners=["team:ml"],
    tags={"stage": "serving"},
    code_version="1",
)
def profile_states(
    context: dg.AssetExecutionContext,
    daily_histories: StoredPartition,
    batch_predictions: StoredPartition,
    storage: StorageResource,
    scoring: ScoringResource,
) -> dg.MaterializeResult:
    """Each profile's LSTM state (h, c) after its last event at D's cut-off, with its window totals.

    Written with the model that scored the day, whose version the partition records:
    the online service (``consumer-assets serve``) loads the newest partition and that
    model together and advances the states event by event.
    """
    day, root = daily_histories.day, storage.open()
    model = model_that_scored(batch_predictions)
    version = model.version
    started = time.perf_counter()
    with CoreShare(scoring.threads) as cores:
        chunks = cores.rebalancing(iter_snapshot_batches(root, day, scoring.chunk_rows, columns=list(HISTORY_COLUMNS)))
        states = (batch_states(model, pa.Table.from_batches([chunk]), day, scoring.batch_size) for chunk in chunks)
        manifest = root.write_partition(
            STATES, day, states, properties={"model_version": version, "cutoff_s": cutoff_seconds(day)}
        )
    seconds = time.perf_counter() - started
    context.log.info("%s: %d profile states with %s in %.1f s", day, manifest.rows, version, seconds)
    return dg.MaterializeResult(
        metadata={
            "rows": manifest.rows,
            "model_version": version,
            "profiles_per_second": manifest.rows / max(seconds, 1e-9),
        }
    )


serving_assets = [batch_predictions, score_explanations, profile_states]
serving_checks = [check_every_profile_scored_once, check_probabilities_valid]
