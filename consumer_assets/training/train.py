"""Training the LSTM: same code on CPU and GPU, early stopping, warm start, then calibration.

An epoch sees every snapshot row, or (``one_snapshot_per_profile``) each training
profile once, on one of its snapshot days drawn anew each epoch
(``EncodedRows.one_per_profile``), so that its cost grows with profiles, not
profiles x days; it pays at large shops, while on a small shop its short epochs stop
early (docs/benchmarks.md has both measured): off by default. The loss is the log-loss, the judged target (the first,
``order_any``) weighted as much as all the others together; positives are not
weighted: that would shift every logit and leave a bias to undo. The learning rate
halves when the validation loss stalls. Probabilities are put on the observed rates afterwards by a
calibration step of its own (Platt scaling, ``model/calibration.py``) fitted on the
validation profiles, which are held out and later than every training day.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from consumer_assets.cores import CoreShare
from consumer_assets.metrics import auc, mean_log_likelihood
from consumer_assets.model.calibration import PlattScaling, fit_platt, sigmoid
from consumer_assets.model.encoding import CATEGORICAL, EncodedBatch, Vocabulary
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.store import LoadedModel
from consumer_assets.training.dataset import EncodedRows, prefetched

CPU_MAX_EPOCHS = 40
REFERENCE_BATCH = 128  # the batch size ``TrainConfig.learning_rate`` is given for
CUDA_BATCH = 2048  # default batch on a GPU, where small batches leave it idle (docs/benchmarks.md, GPU row)
CUDA_MAX_EPOCHS = 80  # larger batches take fewer steps per epoch; early stopping ends sooner
INFERENCE_BATCH = 4096  # validation passes: no gradients, so larger batches cost little memory


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults train a good model on the simulator in a few epochs on CPU."""

    max_epochs: int | None = (
        None  # None: CPU_MAX_EPOCHS on the CPU, CUDA_MAX_EPOCHS on a GPU; early stopping usually ends sooner
    )
    patience: int = 4
    one_snapshot_per_profile: bool = False  # True: an epoch sees each profile once, on a snapshot day drawn anew
    judged_target_weight: float = 0.5  # the first target's share of the loss; the others share the rest
    learning_rate: float = (
        2e-3  # at a batch of REFERENCE_BATCH; larger batches scale it by sqrt(batch / REFERENCE_BATCH)
    )
    weight_decay: float = 1e-4
    batch_size: int | None = None  # None: REFERENCE_BATCH on the CPU, CUDA_BATCH on a GPU, where epochs are cheap
    seed: int = 0
    threads: int = 2
    device: str = "auto"  # "auto": CUDA when available, else CPU
    mixed_precision: bool = False  # float16 autocast on CUDA; off: fp32 is as fast at hidden 64 (docs/benchmarks.md)

    def to_json(self) -> dict:
        return asdict(self)

    def batch_size_on(self, device: torch.device) -> int:
        return self.batch_size or (CUDA_BATCH if device.type == "cuda" else REFERENCE_BATCH)

    def max_epochs_on(self, device: torch.device) -> int:
        return self.max_epochs or (CUDA_MAX_EPOCHS if device.type == "cuda" else CPU_MAX_EPOCHS)

    def target_weights(self, targets: int) -> torch.Tensor:
        """Weights of the targets in the loss, summing to one."""
        if targets == 1:
            return torch.ones(1)
        rest = (1 - self.judged_target_weight) / (targets - 1)
        return torch.tensor([self.judged_target_weight, *[rest] * (targets - 1)])

    def learning_rate_at(self, batch_size: int) -> float:
        """Square-root scaling: Adam's step noise falls with the root of the batch, so the rate may rise with it."""
        return self.learning_rate * math.sqrt(batch_size / REFERENCE_BATCH)


@dataclass
class TrainingResult:
    network: ConsumerLSTM
    history: list[dict]
    best_epoch: int
    initialisation: str
    device: str
    batch_size: int
    learning_rate: float
    seconds: float
    calibration: PlattScaling
    calibration_figures: dict

    @property
    def sequences_per_second(self) -> float:
        return float(np.mean([h["sequences_per_second"] for h in self.history])) if self.history else 0.0


def resolve_device(name: str) -> torch.device:
    """The training device; a GPU with its index (``cuda:0``), so that tensors moved there compare equal to it."""
    if name.startswith("cuda") and not torch.cuda.is_available():
        build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise RuntimeError(
            f"device {name!r} was asked for (CONSUMER_ASSETS_TRAINING_DEVICE on a GPU deployment) but this machine has "
            "no usable GPU: "
            f"torch {torch.__version__} here is {build}. Was the run launched on a GPU node (the job's "
            "dagster-k8s/config tags) "
            "from the GPU image (README, GPU training)? Set the device to 'auto' or 'cpu' to train on this CPU instead."
        )
    if name in ("auto", "cuda"):
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
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


def predict_logits(
    network: ConsumerLSTM, batches: Iterable[EncodedBatch], device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """Uncalibrated logits and labels for every row of ``batches`` (inference mode)."""
    network.eval()
    logits, labels = [], []
    with torch.inference_mode():
        for batch in batches:
            moved = batch.to(device)
            logits.append(
                network(moved.categorical, moved.continuous, moved.profile, moved.lengths).float().cpu().numpy()
            )
            labels.append(batch.labels.cpu().numpy())
    return np.concatenate(logits), np.concatenate(labels)


def calibrate(network: ConsumerLSTM, logits: np.ndarray, labels: np.ndarray) -> tuple[PlattScaling, dict]:
    """Fit Platt scaling on validation logits, store it in the network's buffers; figures before and after."""
    scaling = fit_platt(logits, labels)
    with torch.no_grad():
        network.calibration_scale.copy_(torch.tensor(scaling.scale))
        network.calibration_bias.copy_(torch.tensor(scaling.bias))
    raw, calibrated = sigmoid(logits[:, 0]), scaling.apply(logits)[:, 0]
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


def place(rows: EncodedRows, device: torch.device, log: Callable[[str], None]) -> EncodedRows:
    """The rows on the GPU when they fit in half its free memory (batches are then gathered there), else where they
    are."""
    if device.type != "cuda" or rows.device == device:
        return rows
    free, _ = torch.cuda.mem_get_info(device)
    if rows.nbytes < free / 2:
        return rows.to(device)
    log(
        f"{rows.nbytes / 2**30:.1f} GiB of encoded rows do not fit in half the GPU's free {free / 2**30:.1f} GiB: "
        "batches are gathered on the host"
    )
    return rows


def feed(
    rows: EncodedRows,
    batch_size: int,
    device: torch.device,
    rng: np.random.Generator | None = None,
    subset: np.ndarray | None = None,
) -> Iterator[EncodedBatch]:
    """Batches of ``rows`` (or of ``subset`` of them) on ``device``; rows left on the host for a GPU are gathered and
    pinned ahead by a thread."""
    if rows.device == device:
        return rows.batches(batch_size, rng, subset)
    return (
        batch.to(device)
        for batch in prefetched(rows.batches(batch_size, rng, subset), transform=EncodedBatch.pin_memory)
    )


def train(
    train_rows: EncodedRows,
    validation_rows: EncodedRows,
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
    rng = np.random.default_rng(config.seed)
    network = ConsumerLSTM.for_vocabulary(model_config, vocabulary)
    reason = warm_start(network, vocabulary, previous) if previous is not None else cold_start_reason
    if reason is not None:
        network.fit_standardisation(train_rows.profile)
    initialisation = (
        f"warm start from {previous.version}" if previous is not None and reason is None else f"cold start: {reason}"
    )
    batch_size = config.batch_size_on(device)
    learning_rate = config.learning_rate_at(batch_size)
    max_epochs = config.max_epochs_on(device)
    log(
        f"training on {device}, batch {batch_size}, learning rate {learning_rate:.2g}, at most {max_epochs} epochs; "
        f"{initialisation}"
    )
    network.to(device)
    train_rows, validation_rows = place(train_rows, device, log), place(validation_rows, device, log)

    loss_fn = nn.BCEWithLogitsLoss(reduction="none")
    weights = config.target_weights(len(model_config.targets)).to(device)
    optimiser = torch.optim.AdamW(network.parameters(), lr=learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=0.5, patience=1)
    amp = device.type == "cuda" and config.mixed_precision
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    history: list[dict] = []
    best_loss, best_epoch, best_state, best_validation = math.inf, 0, copy.deepcopy(network.state_dict()), None
    started = time.perf_counter()
    with CoreShare(config.threads) if device.type == "cpu" else contextlib.nullcontext() as cores:
        for epoch in range(1, max_epochs + 1):
            network.train()
            epoch_start, total_loss = time.perf_counter(), torch.zeros((), device=device)
            subset = train_rows.one_per_profile(rng) if config.one_snapshot_per_profile else None
            seen = len(train_rows) if subset is None else len(subset)
            for batch in feed(train_rows, batch_size, device, rng, subset):
                if cores is not None:
                    cores.rebalance()
                optimiser.zero_grad(set_to_none=True)
                with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=amp):
                    logits = network(batch.categorical, batch.continuous, batch.profile, batch.lengths)
                loss = (loss_fn(logits.float(), batch.labels).mean(dim=0) * weights).sum()
                scaler.scale(loss).backward()
                scaler.unscale_(optimiser)
                nn.utils.clip_grad_norm_(network.parameters(), 1.0)
                scaler.step(optimiser)
                scaler.update()
                total_loss += loss.detach() * len(batch)  # no per-step synchronisation with the GPU
            train_seconds = time.perf_counter() - epoch_start
            z, y = predict_logits(network, feed(validation_rows, INFERENCE_BATCH, device), device)
            p = sigmoid(z)
            record = {
                "epoch": epoch,
                "train_loss": total_loss.item() / seen,
                "rows_seen": seen,
                "learning_rate": optimiser.param_groups[0]["lr"],
                "validation_log_loss": -mean_log_likelihood(p[:, 0], y[:, 0]),
                "validation_log_loss_all_targets": -mean_log_likelihood(p, y),
                "validation_auc": auc(p[:, 0], y[:, 0]),
                "sequences_per_second": seen / max(train_seconds, 1e-9),
                "cpu_threads": torch.get_num_threads(),
            }
            history.append(record)
            log(
                f"epoch {epoch}/{max_epochs}: train loss {record['train_loss']:.4f}, validation log-loss "
                f"{record['validation_log_loss']:.4f}, AUC {record['validation_auc']:.4f}, "
                f"{record['sequences_per_second']:,.0f} sequences/s"
                + (f" on {record['cpu_threads']} thread(s)" if cores is not None else "")
            )
            schedule.step(record["validation_log_loss"])
            if record["validation_log_loss"] < best_loss - 1e-5:
                best_loss, best_epoch, best_state, best_validation = (
                    record["validation_log_loss"],
                    epoch,
                    copy.deepcopy(network.state_dict()),
                    (z, y),
                )
            elif epoch - best_epoch >= config.patience:
                log(f"early stop: no improvement for {config.patience} epochs; keeping epoch {best_epoch}")
                break
    network.load_state_dict(best_state)
    # The best epoch's validation logits are the calibration's input; no second pass over validation.
    scaling, calibration_figures = calibrate(
        network, *(best_validation or predict_logits(network, feed(validation_rows, INFERENCE_BATCH, device), device))
    )
    log(
        f"calibrated on {calibration_figures['fitted_on_rows']:,} validation rows "
        f"({calibration_figures['fitted_on_positives']:,} positives): "
        f"mean prediction {calibration_figures['mean_prediction_before']:.4f} -> "
        f"{calibration_figures['mean_prediction_after']:.4f}, "
        f"observed {calibration_figures['observed_rate']:.4f}"
    )
    network.to("cpu").eval()
    return TrainingResult(
        network=network,
        history=history,
        best_epoch=best_epoch,
        initialisation=initialisation,
        device=str(device),
        batch_size=batch_size,
        learning_rate=learning_rate,
        seconds=time.perf_counter() - started,
        calibration=scaling,
        calibration_figures=calibration_figures,
    )
