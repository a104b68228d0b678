"""Training the LSTM: same code on CPU and GPU, early stopping, warm start, then calibration.

The loss is the plain log-loss: weighting positives would shift every logit and
leave a bias to undo. Probabilities are put on the observed rates afterwards by a
calibration step of its own (Platt scaling, ``model/calibration.py``) fitted on the
validation profiles, which are held out and later than every training day.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from consumer_assets.model.calibration import PlattScaling, fit_platt
from consumer_assets.model.encoding import CATEGORICAL, EncodedBatch, Vocabulary
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.store import LoadedModel
from consumer_assets.metrics import auc, mean_log_likelihood


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults train a good model on the simulator in a few epochs on CPU."""

    max_epochs: int = 12
    patience: int = 3
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    threads: int = 2
    device: str = "auto"  # "auto": CUDA when available, else CPU
    mixed_precision: bool = False  # float16 autocast on CUDA; measured slower than fp32 at hidden 64 on an H200

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
    calibration: PlattScaling
    calibration_figures: dict

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
    for name in ("hidden_size", "embedding_dims", "targets", "max_length", "head_size"):
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


def predict_logits(network: ConsumerLSTM, batches: Iterable[EncodedBatch], device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated logits and labels for every row of ``batches`` (inference mode)."""
    network.eval()
    logits, labels = [], []
    with torch.inference_mode():
        for batch in batches:
            moved = batch.to(device)
            logits.append(network(moved.categorical, moved.continuous, moved.profile, moved.lengths).float().cpu().numpy())
            labels.append(batch.labels.numpy())
    return np.concatenate(logits), np.concatenate(labels)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def calibrate(network: ConsumerLSTM, logits: np.ndarray, labels: np.ndarray) -> tuple[PlattScaling, dict]:
    """Fit Platt scaling on validation logits, store it in the network's buffers; figures before and after."""
    scaling = fit_platt(logits, labels)
    with torch.no_grad():
        network.calibration_scale.copy_(torch.tensor(scaling.scale))
        network.calibration_bias.copy_(torch.tensor(scaling.bias))
    raw, calibrated = _sigmoid(logits[:, 0]), scaling.apply(logits)[:, 0]
    y = labels[:, 0]
    figures = {
        **scaling.to_json(),
        "fitted_on_rows": int(len(y)),
        "fitted_on_positives": int(y.sum()),
        "observed_rate": float(y.mean()),
        "mean_prediction_before": float(raw.mean()),
        "mean_prediction_after": float(calibrated.mean()),
        "log_likelihood_before": mean_log_likelihood(raw, y),
        "log_likelihood_after": mean_log_likelihood(calibrated, y),
    }
    return scaling, figures


def train(
    train_batches: Iterable[EncodedBatch],
    validation_batches: Iterable[EncodedBatch],
    model_config: ModelConfig,
    vocabulary: Vocabulary,
    config: TrainConfig = TrainConfig(),
    previous: LoadedModel | None = None,
    log: Callable[[str], None] = print,
    cold_start_reason: str = "no model in service",
) -> TrainingResult:
    """Train with early stopping on the first target's validation log-loss, then calibrate on validation.

    The first target (``order_any``) decides: article-group targets are rarer and
    noisier, and their loss would stop training on noise. Returns the best epoch's
    network, calibrated, on the CPU.
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

    loss_fn = nn.BCEWithLogitsLoss()
    optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    amp = device.type == "cuda" and config.mixed_precision
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    history: list[dict] = []
    best_loss, best_epoch, best_state, best_validation = math.inf, 0, copy.deepcopy(network.state_dict()), None
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
        z, y = predict_logits(network, validation_batches, device)
        p = _sigmoid(z)
        record = {
            "epoch": epoch,
            "train_loss": total_loss / max(seen, 1),
            "validation_log_loss": -mean_log_likelihood(p[:, 0], y[:, 0]),
            "validation_log_loss_all_targets": -mean_log_likelihood(p, y),
            "validation_auc": auc(p[:, 0], y[:, 0]),
            "sequences_per_second": seen / max(train_seconds, 1e-9),
        }
        history.append(record)
        log(
            f"epoch {epoch}/{config.max_epochs}: train loss {record['train_loss']:.4f}, validation log-loss "
            f"{record['validation_log_loss']:.4f}, AUC {record['validation_auc']:.4f}, {record['sequences_per_second']:,.0f} sequences/s"
        )
        if record["validation_log_loss"] < best_loss - 1e-5:
            best_loss, best_epoch, best_state, best_validation = record["validation_log_loss"], epoch, copy.deepcopy(network.state_dict()), (z, y)
        elif epoch - best_epoch >= config.patience:
            log(f"early stop: no improvement for {config.patience} epochs; keeping epoch {best_epoch}")
            break
    network.load_state_dict(best_state)
    # The best epoch's validation logits are the calibration's input; no second pass over validation.
    scaling, calibration_figures = calibrate(network, *(best_validation or predict_logits(network, validation_batches, device)))
    log(
        f"calibrated on {calibration_figures['fitted_on_rows']:,} validation rows ({calibration_figures['fitted_on_positives']:,} positives): "
        f"mean prediction {calibration_figures['mean_prediction_before']:.4f} -> {calibration_figures['mean_prediction_after']:.4f}, "
        f"observed {calibration_figures['observed_rate']:.4f}"
    )
    network.to("cpu").eval()
    return TrainingResult(
        network=network,
        history=history,
        best_epoch=best_epoch,
        initialisation=initialisation,
        device=str(device),
        seconds=time.perf_counter() - started,
        calibration=scaling,
        calibration_figures=calibration_figures,
    )
