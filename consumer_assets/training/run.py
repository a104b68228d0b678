"""One training run over the storage root: pick the snapshots, build the vocabulary, train, save.

Plain Python (no dagster) so a script, a notebook or a test can train exactly as
the trained_lstm asset does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

from consumer_assets.datasets import LABELS
from consumer_assets.features.labels import targets as target_names
from consumer_assets.model.encoding import Vocabulary, VocabularyLimits
from consumer_assets.model.network import ModelConfig
from consumer_assets.model.store import LoadedModel, ModelLoadError, ModelStore
from consumer_assets.storage import StorageRoot
from consumer_assets.training.batches import HELD_OUT_DAYS, SnapshotBatches, SnapshotSplit, matured_days, plan_split
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
    batch_size: int = 128


@dataclass
class TrainedCandidate:
    version: str
    plan: TrainingPlan
    vocabulary: Vocabulary
    result: TrainingResult


def plan_training(
    root: StorageRoot,
    day: date,
    horizon_days: int,
    max_training_days: int,
    model: ModelConfig,
    config: TrainConfig,
    limits: VocabularyLimits,
    batch_size: int,
    held_out_days: int = HELD_OUT_DAYS,
) -> TrainingPlan:
    """Snapshots whose labels have matured by ``day``: D + H <= ``day``."""
    split = plan_split(matured_days(root, day - timedelta(days=horizon_days)), max_training_days, held_out_days)
    groups = root.manifest(LABELS, split.held_out_days[-1]).properties.get("groups", {})
    targets = tuple(target_names(groups))
    return TrainingPlan(split=split, targets=targets, model=replace(model, targets=targets), train=config, limits=limits, batch_size=batch_size)


def batches(root: StorageRoot, plan: TrainingPlan, vocabulary: Vocabulary | None, role: str, days: tuple[date, ...], shuffle_seed: int | None = None) -> SnapshotBatches:
    return SnapshotBatches(root, days, plan.targets, role, vocabulary, plan.model.max_length, plan.batch_size, shuffle_seed=shuffle_seed)


def serving_model(store: ModelStore) -> tuple[LoadedModel | None, str | None]:
    """The model in service to warm-start from, or why there is none."""
    if store.serving() is None:
        return None, "no model in service"
    version = store.serving_version()
    try:
        return store.load(version), None
    except ModelLoadError as exc:
        return None, f"model in service cannot be loaded ({exc})"


def train_candidate(root: StorageRoot, plan: TrainingPlan, version: str, warm_start: bool = True, log_fn: Callable[[str], None] = log.info) -> TrainedCandidate:
    """Train and save a candidate under models/candidates/<version>/."""
    train_days = plan.split.train_days
    vocabulary = Vocabulary.build(batches(root, plan, None, "train", train_days).history_tables(), plan.limits)
    held_out = plan.split.held_out_days
    log_fn(f"vocabulary sizes: {vocabulary.sizes()}; training on {len(train_days)} snapshots {train_days[0]}..{train_days[-1]}")
    store = ModelStore(root)
    previous, reason = serving_model(store) if warm_start else (None, "warm start disabled")
    result = train(
        batches(root, plan, vocabulary, "train", train_days, shuffle_seed=plan.train.seed),
        batches(root, plan, vocabulary, "validation", held_out),
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
        "batch_size": plan.batch_size,
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
