"""One training run over the storage root: pick the snapshots, build the vocabulary, train, save.

Plain Python (no dagster) so a script, a notebook or a test can train exactly as
the trained_lstm asset does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from consumer_assets.asset_keys import LABELS
from consumer_assets.labels.targets import targets as target_names
from consumer_assets.model.encoding import Vocabulary, VocabularyLimits
from consumer_assets.model.network import ModelConfig
from consumer_assets.model.store import LoadedModel, ModelLoadError, ModelStore
from consumer_assets.storage import StorageRoot
from consumer_assets.timeline import Timeline
from consumer_assets.training.dataset import EncodedRows
from consumer_assets.training.split import SnapshotRows, SnapshotSplit, matured_days, plan_split
from consumer_assets.training.train import TrainConfig, TrainingResult, train

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPlan:
    """Everything that decides what a run learns from; stored in training.json."""

    split: SnapshotSplit
    targets: tuple[str, ...]
    model: ModelConfig
    train: TrainConfig
    limits: VocabularyLimits


@dataclass
class TrainedCandidate:
    version: str
    plan: TrainingPlan
    vocabulary: Vocabulary
    result: TrainingResult


def plan_training(
    root: StorageRoot,
    day: date,
    timeline: Timeline,
    model: ModelConfig,
    config: TrainConfig,
    limits: VocabularyLimits,
) -> TrainingPlan:
    """Snapshots whose labels have matured by ``day``: D + H <= ``day``."""
    split = plan_split(matured_days(root, day - timedelta(days=timeline.label_horizon_days)), timeline)
    groups = root.manifest(LABELS, split.held_out_days[-1]).properties.get("groups", {})
    targets = tuple(target_names(groups))
    return TrainingPlan(
        split=split, targets=targets, model=replace(model, targets=targets), train=config, limits=limits
    )


def encode_rows(rows: SnapshotRows, vocabulary: Vocabulary, max_length: int) -> EncodedRows:
    return EncodedRows.encode(((chunk, y) for _, chunk, y in rows), vocabulary, max_length)


def serving_model(store: ModelStore) -> tuple[LoadedModel | None, str | None]:
    """The model in service to warm-start from, or why there is none."""
    try:
        if store.serving() is None:
            return None, "no model in service"
        return store.load_serving(), None
    except ModelLoadError as exc:
        return None, f"model in service cannot be loaded ({exc})"


def train_candidate(
    root: StorageRoot,
    plan: TrainingPlan,
    version: str,
    warm_start: bool = True,
    log_fn: Callable[[str], None] = log.info,
) -> TrainedCandidate:
    """Train and save a candidate under models/candidates/<version>/."""
    train_days = plan.split.train_days
    train_source = SnapshotRows(root, train_days, plan.targets, "train")
    vocabulary = Vocabulary.build((chunk for _, chunk, _ in train_source), plan.limits)
    log_fn(
        f"vocabulary sizes: {vocabulary.sizes()}; training on {len(train_days)} snapshots "
        f"{train_days[0]}..{train_days[-1]}"
    )
    started = time.perf_counter()
    train_rows = encode_rows(train_source, vocabulary, plan.model.max_length)
    validation_rows = encode_rows(
        SnapshotRows(root, plan.split.held_out_days, plan.targets, "validation"), vocabulary, plan.model.max_length
    )
    log_fn(
        f"encoded {len(train_rows):,} training rows ({train_rows.events:,} events, {train_rows.nbytes / 2**20:,.0f} "
        "MiB) and "
        f"{len(validation_rows):,} validation rows once, in {time.perf_counter() - started:.1f} s"
    )
    store = ModelStore(root)
    previous, reason = serving_model(store) if warm_start else (None, "warm start disabled")
    result = train(
        train_rows,
        validation_rows,
        plan.model,
        vocabulary,
        plan.train,
        previous=previous,
        log=log_fn,
        cold_start_reason=reason or "no model in service",
    )
    training = {
        "version": version,
        "split": plan.split.to_json(),
        "targets": list(plan.targets),
        "train_config": plan.train.to_json(),
        "vocabulary_limits": plan.limits.__dict__,
        "batch_size": result.batch_size,
        "learning_rate": result.learning_rate,
        "initialisation": result.initialisation,
        "device": result.device,
        "seconds": result.seconds,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "calibration": result.calibration_figures,
    }
    store.save_candidate(version, result.network, vocabulary, training)
    log_fn(f"saved candidate {version}")
    return TrainedCandidate(version=version, plan=plan, vocabulary=vocabulary, result=result)
