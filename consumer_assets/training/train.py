"""Training the LSTM: same code on CPU and GPU, early stopping, class weights, warm start.

Orders are rare, so positives get a larger weight in the loss. A weighted loss
shifts every logit by log(weight); the head's bias is shifted back after training,
so the stored model predicts calibrated probabilities, not weighted ones.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score
from torch import nn

from consumer_assets.model.encoding import CATEGORICAL, EncodedBatch, Vocabulary
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.store import LoadedModel


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults train a good model on the simulator in a few epochs on CPU."""

    max_epochs: int = 8
    patience: int = 2
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    max_positive_weight: float = 10.0
    seed: int = 0
    threads: int = 2
    device: str = "auto"  # "auto": CUDA when available, else CPU
    mixed_precision: bool = True  # float16 autocast on CUDA; ignored on CPU

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class TrainingResult:
    network: ConsumerLSTM
    history: list[dict]
    best_epoch: int
    initialisation: str
    device: str
    seconds: float
    positive_weights: list[float]

    @property
    def sequences_per_second(self) -> float:
        return float(np.mean([h["sequences_per_second"] for h in self.history])) if self.history else 0.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available on this machine; use 'auto' or 'cpu'")
    return torch.device(name)


def warm_start(network: ConsumerLSTM, vocabulary: Vocabulary, previous: LoadedModel) -> str | None:
    """Copy ``previous``'s weights into ``network`` where they fit; returns why not, or None when done.

    Embedding rows are copied token by token, so a grown vocabulary keeps what was
    learnt for known ids and starts new ids from fresh rows.
    """
    old, new = previous.config, network.config
    for name in ("hidden_size", "embedding_dims", "targets", "max_length"):
        if getattr(old, name) != getattr(new, name):
            return f"{name} differs from the model in service ({getattr(old, name)} vs {getattr(new, name)})"
    source = previous.network.state_dict()
    with torch.no_grad():
        for name, parameter in network.state_dict().items():
            if not name.startswith("embeddings."):
                parameter.copy_(source[name])
        for field in CATEGORICAL:
            old_index = {token: i for i, token in enumerate(previous.vocabulary.tokens[field])}
            pairs = [(i, old_index[t]) for i, t in enumerate(vocabulary.tokens[field]) if t in old_index]
            target = network.embeddings[field].weight
            rows, sources = zip(*pairs)
            target[list(rows)] = source[f"embeddings.{field}.weight"][list(sources)]
    return None


def _positive_weights(rates: np.ndarray, cap: float) -> torch.Tensor:
    rates = np.clip(rates, 1e-6, 1 - 1e-6)
    return torch.tensor(np.clip((1 - rates) / rates, 1.0, cap), dtype=torch.float32)


def predict(network: ConsumerLSTM, batches: Iterable[EncodedBatch], device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and labels for every row of ``batches`` (inference mode)."""
    network.eval()
    scores, labels = [], []
    with torch.inference_mode():
        for batch in batches:
            moved = batch.to(device)
            scores.append(network.predict_proba(moved).cpu().numpy())
            labels.append(batch.labels.numpy())
    return np.concatenate(scores), np.concatenate(labels)


def _log_loss(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _auc(p: np.ndarray, y: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def train(
    train_batches: Iterable[EncodedBatch],
    validation_batches: Iterable[EncodedBatch],
    positive_rates: np.ndarray,
    model_config: ModelConfig,
    vocabulary: Vocabulary,
    config: TrainConfig = TrainConfig(),
    previous: LoadedModel | None = None,
    log: Callable[[str], None] = print,
    cold_start_reason: str = "no model in service",
) -> TrainingResult:
    """Train with early stopping on the first target's validation log-loss; returns the best epoch's network.

    The first target (``order_any``) decides: article-group targets are rarer and
    noisier, and their loss would stop training on noise.
    """
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    if device.type == "cpu":
        torch.set_num_threads(config.threads)
    network = ConsumerLSTM.for_vocabulary(model_config, vocabulary)
    reason = warm_start(network, vocabulary, previous) if previous is not None else cold_start_reason
    if reason is not None:
        network.fit_standardisation(torch.cat([batch.profile for batch in train_batches]))
    initialisation = f"warm start from {previous.version}" if previous is not None and reason is None else f"cold start: {reason}"
    log(f"training on {device}; {initialisation}")
    network.to(device)

    weights = _positive_weights(positive_rates, config.max_positive_weight)
    log_weights = torch.log(weights).to(device)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=weights.to(device))
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    amp = device.type == "cuda" and config.mixed_precision
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    history: list[dict] = []
    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(network.state_dict())
    started = time.perf_counter()
    for epoch in range(1, config.max_epochs + 1):
        network.train()
        epoch_start, seen, total_loss = time.perf_counter(), 0, 0.0
        for batch in train_batches:
            moved = batch.to(device)
            optimiser.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                logits = network(moved.categorical, moved.continuous, moved.profile, moved.lengths)
            loss = loss_fn(logits.float(), moved.labels)
            scaler.scale(loss).backward()
            scaler.unscale_(optimiser)
            nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            scaler.step(optimiser)
            scaler.update()
            total_loss += loss.item() * len(batch)
            seen += len(batch)
        train_seconds = time.perf_counter() - epoch_start
        # Validation sees the de-weighted (calibrated) probabilities the stored model will give.
        _shift_bias(network, -log_weights)
        p, y = predict(network, validation_batches, device)
        _shift_bias(network, log_weights)
        record = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "validation_log_loss": _log_loss(p[:, 0], y[:, 0]),
            "validation_log_loss_all_targets": _log_loss(p, y),
            "validation_auc": _auc(p[:, 0], y[:, 0]),
            "sequences_per_second": seen / max(train_seconds, 1e-9),
        }
        history.append(record)
        log(
            f"epoch {epoch}/{config.max_epochs}: train loss {record['train_loss']:.4f}, validation log-loss "
            f"{record['validation_log_loss']:.4f}, AUC {record['validation_auc']:.4f}, {record['sequences_per_second']:,.0f} sequences/s"
        )
        if record["validation_log_loss"] < best_loss - 1e-5:
            best_loss, best_epoch, best_state = record["validation_log_loss"], epoch, copy.deepcopy(network.state_dict())
        elif epoch - best_epoch >= config.patience:
            log(f"early stop: no improvement for {config.patience} epochs; keeping epoch {best_epoch}")
            break
    network.load_state_dict(best_state)
    _shift_bias(network, -log_weights)
    network.to("cpu").eval()
    return TrainingResult(
        network=network,
        history=history,
        best_epoch=best_epoch,
        initialisation=initialisation,
        device=str(device),
        seconds=time.perf_counter() - started,
        positive_weights=weights.tolist(),
    )


def _shift_bias(network: ConsumerLSTM, shift: torch.Tensor) -> None:
    with torch.no_grad():
        network.head.bias.add_(shift.to(network.head.bias.device))
