"""The network: embeddings and a few continuous inputs per event, ONE LSTM layer, a head per target.

What the LSTM reads at each step describes that event alone: its type and ids,
the gap since the previous event, its price and time of day. Nothing depends on
the moment of prediction, so the state after a profile's last event can be carried
forward (one step per new event) and the score after every prefix of a history is
one pass. The moment of prediction enters only at the head, as the time since the
last event (``recency_s``) and since the last event of each type, beside a handful of
log-scaled window totals (counts per event type, spend, active days). The head is a small MLP, so that how much the
state
counts can depend on how long ago it was last updated.

Probabilities are calibrated by a step of their own: Platt scaling of each target's
logit (a scale and a bias), fitted on validation profiles after training and stored
with the weights, so every path that scores (evaluation, smoke test, batch, Spark)
applies the same calibration by calling ``predict_proba``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from consumer_assets.model.encoding import CATEGORICAL, CONTINUOUS, HEAD, PROFILE_SCALE, EncodedBatch, Vocabulary

ARCHITECTURE = (
    "consumer_lstm/3"  # the per-step inputs of ``CONTINUOUS``, the head's of ``HEAD``; dropout on the embeddings only
)


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network; stored as config.json beside the weights.

    Defaults suit a shop with tens of thousands of articles: the article embedding is
    the largest block, the LSTM itself is small (hidden 64). Dropout applies to the
    embeddings and to the final state (ids of rare articles are easy to memorise),
    never to the gaps and times: a blanked gap would read as a burst of activity.
    """

    targets: tuple[str, ...] = ("order_any",)
    hidden_size: int = 64
    embedding_dims: dict[str, int] = field(
        default_factory=lambda: {"event_type": 4, "article_id": 16, "category_id": 8, "brand_id": 8}
    )
    dropout: float = 0.2
    id_dropout: float = 0.5  # share of article and brand ids replaced by the OOV id while training
    max_length: int = 100

    head_size: int = 32

    def to_json(self) -> dict:
        return {"architecture": ARCHITECTURE, **asdict(self), "targets": list(self.targets)}

    @classmethod
    def from_json(cls, data: dict) -> ModelConfig:
        if data.get("architecture") != ARCHITECTURE:
            raise ValueError(f"unknown architecture {data.get('architecture')!r}; this code reads {ARCHITECTURE}")
        known = {
            k: data[k]
            for k in ("hidden_size", "embedding_dims", "dropout", "id_dropout", "max_length", "head_size")
            if k in data
        }
        return cls(targets=tuple(data["targets"]), **known)


ID_FIELDS = ("article_id", "brand_id")
RECENCY = HEAD.index("recency_s")
OOV_INDEX = 1


class ConsumerLSTM(nn.Module):
    """Reads a profile's events oldest first; the state after its last real event predicts each target."""

    def __init__(self, config: ModelConfig, vocabulary_sizes: dict[str, int]):
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleDict(
            {
                name: nn.Embedding(vocabulary_sizes[name], config.embedding_dims[name], padding_idx=0)
                for name in CATEGORICAL
            }
        )
        inputs = sum(config.embedding_dims[name] for name in CATEGORICAL) + len(CONTINUOUS)
        self.lstm = nn.LSTM(inputs, config.hidden_size, num_layers=1, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Sequential(
            nn.Linear(config.hidden_size + len(HEAD), config.head_size),
            nn.ReLU(),
            nn.Linear(config.head_size, len(config.targets)),
        )
        # Standardisation of the profile features, fitted on the training data and stored with the weights.
        self.register_buffer("profile_mean", torch.zeros(len(HEAD)))
        self.register_buffer("profile_std", torch.ones(len(HEAD)))
        # How fast each unit of the state fades between the last event and the prediction (per day).
        self.decay_log_rate = nn.Parameter(torch.linspace(math.log(1 / 30), math.log(2.0), config.hidden_size))
        # Platt scaling per target, fitted on validation profiles; identity until fitted.
        self.register_buffer("calibration_scale", torch.ones(len(config.targets)))
        self.register_buffer("calibration_bias", torch.zeros(len(config.targets)))

    @classmethod
    def for_vocabulary(cls, config: ModelConfig, vocabulary: Vocabulary) -> ConsumerLSTM:
        return cls(config, vocabulary.sizes())

    def forward(
        self, categorical: torch.Tensor, continuous: torch.Tensor, profile: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """Uncalibrated logits, (batch, targets): what training optimises.

        The LSTM runs over the padded batch and the state after each row's last real
        event is picked out: the LSTM reads forward, so padding after that event
        cannot change it. On the CPU this is one fused oneDNN kernel where packed
        sequences cost a small matrix product per time step; batches are length-bucketed,
        so little padding is computed.
        """
        states, _ = self.lstm(self.step_inputs(categorical, continuous))
        last = (lengths.to(states.device) - 1).clamp_min(0)
        return self.head_logits(states[torch.arange(states.shape[0], device=states.device), last], profile)

    def step_inputs(self, categorical: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        """What the LSTM reads at each step, (..., time, inputs): the event alone, never the moment of prediction."""
        if self.training and self.config.id_dropout > 0:
            categorical = self._drop_ids(categorical)
        embedded = self.dropout(
            torch.cat([self.embeddings[name](categorical[..., k]) for k, name in enumerate(CATEGORICAL)], dim=-1)
        )
        return torch.cat([embedded, continuous.to(embedded.dtype)], dim=-1)

    def head_logits(self, state: torch.Tensor, profile: torch.Tensor) -> torch.Tensor:
        """Uncalibrated logits from an LSTM state and the profile features at the moment of prediction (any leading
        shape)."""
        standardised = (profile.to(state.dtype) - self.profile_mean) / self.profile_std
        recency_days = torch.expm1(profile[..., RECENCY].to(state.dtype) * PROFILE_SCALE).clamp_min(0) / 86_400
        faded = state * torch.exp(-torch.exp(self.decay_log_rate) * recency_days.unsqueeze(-1))
        return self.head(torch.cat([self.dropout(faded), standardised], dim=-1))

    def prefix_logits(
        self, categorical: torch.Tensor, continuous: torch.Tensor, prefix_profile: torch.Tensor
    ) -> torch.Tensor:
        """Uncalibrated logits after every prefix of each sequence, (batch, time, targets), in one LSTM pass.

        ``prefix_profile`` (batch, time, features) holds the profile features as they
        stand after each event; at the last real event they are the snapshot's, so the
        last point equals ``forward``. Steps past a row's length are padding: ignore them.
        """
        states, _ = self.lstm(self.step_inputs(categorical, continuous))
        return self.head_logits(states, prefix_profile)

    def _drop_ids(self, categorical: torch.Tensor) -> torch.Tensor:
        """Hide some article and brand ids behind OOV, so the network cannot memorise profiles by their ids."""
        dropped = categorical.clone()
        for k, name in enumerate(CATEGORICAL):
            if name in ID_FIELDS:
                hide = (torch.rand(dropped[..., k].shape, device=dropped.device) < self.config.id_dropout) & (
                    dropped[..., k] > OOV_INDEX
                )
                dropped[..., k] = torch.where(hide, torch.full_like(dropped[..., k], OOV_INDEX), dropped[..., k])
        return dropped

    def fit_standardisation(self, profile: torch.Tensor) -> None:
        """Set the profile features' mean and spread from training rows, (rows, features)."""
        with torch.no_grad():
            self.profile_mean.copy_(profile.mean(dim=0))
            self.profile_std.copy_(profile.std(dim=0).clamp_min(1e-3))

    def calibrate(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float() * self.calibration_scale + self.calibration_bias

    def predict_proba(self, batch: EncodedBatch) -> torch.Tensor:
        """Calibrated probabilities, (batch, targets), for an encoded batch on the network's device."""
        return torch.sigmoid(
            self.calibrate(self.forward(batch.categorical, batch.continuous, batch.profile, batch.lengths))
        )
