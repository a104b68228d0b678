"""The network: embeddings and a few continuous inputs per event, ONE LSTM layer, a sigmoid head per target.

The head also sees a handful of log-scaled window totals of the profile (counts
per event type, spend, active days, recency). They are exact where the sequence
is cut at L events, and they let the LSTM spend its state on what counts cannot
tell: order and timing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from consumer_assets.model.encoding import CATEGORICAL, CONTINUOUS, PROFILE, EncodedBatch, Vocabulary


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the network; stored as config.json beside the weights.

    Defaults suit a shop with tens of thousands of articles: the article embedding is
    the largest block, the LSTM itself is small (hidden 64). Dropout applies to the
    inputs and to the final state: ids of rare articles are easy to memorise.
    """

    targets: tuple[str, ...] = ("order_any",)
    hidden_size: int = 64
    embedding_dims: dict[str, int] = field(default_factory=lambda: {"event_type": 4, "article_id": 16, "category_id": 8, "brand_id": 8})
    dropout: float = 0.2
    id_dropout: float = 0.5  # share of article and brand ids replaced by the OOV id while training
    max_length: int = 100

    def to_json(self) -> dict:
        return {"architecture": "consumer_lstm/1", **asdict(self), "targets": list(self.targets)}

    @classmethod
    def from_json(cls, data: dict) -> ModelConfig:
        if data.get("architecture") != "consumer_lstm/1":
            raise ValueError(f"unknown architecture {data.get('architecture')!r}; this code reads consumer_lstm/1")
        known = {k: data[k] for k in ("hidden_size", "embedding_dims", "dropout", "id_dropout", "max_length") if k in data}
        return cls(targets=tuple(data["targets"]), **known)


ID_FIELDS = ("article_id", "brand_id")
OOV_INDEX = 1


class ConsumerLSTM(nn.Module):
    """Reads a profile's events oldest first; the state after its last real event predicts each target."""

    def __init__(self, config: ModelConfig, vocabulary_sizes: dict[str, int]):
        super().__init__()
        self.config = config
        self.embeddings = nn.ModuleDict(
            {name: nn.Embedding(vocabulary_sizes[name], config.embedding_dims[name], padding_idx=0) for name in CATEGORICAL}
        )
        inputs = sum(config.embedding_dims[name] for name in CATEGORICAL) + len(CONTINUOUS)
        self.lstm = nn.LSTM(inputs, config.hidden_size, num_layers=1, batch_first=True)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size + len(PROFILE), len(config.targets))
        # Standardisation of the profile features, fitted on the training data and stored with the weights.
        self.register_buffer("profile_mean", torch.zeros(len(PROFILE)))
        self.register_buffer("profile_std", torch.ones(len(PROFILE)))

    @classmethod
    def for_vocabulary(cls, config: ModelConfig, vocabulary: Vocabulary) -> ConsumerLSTM:
        return cls(config, vocabulary.sizes())

    def forward(self, categorical: torch.Tensor, continuous: torch.Tensor, profile: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits, (batch, targets). Padding after ``lengths`` never reaches the LSTM (packed sequences)."""
        if self.training and self.config.id_dropout > 0:
            categorical = self._drop_ids(categorical)
        embedded = [self.embeddings[name](categorical[..., k]) for k, name in enumerate(CATEGORICAL)]
        inputs = self.dropout(torch.cat([*embedded, continuous.to(embedded[0].dtype)], dim=-1))
        packed = pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.lstm(packed)
        standardised = (profile.to(hidden.dtype) - self.profile_mean) / self.profile_std
        return self.head(torch.cat([self.dropout(hidden[-1]), standardised], dim=-1))

    def _drop_ids(self, categorical: torch.Tensor) -> torch.Tensor:
        """Hide some article and brand ids behind OOV, so the network cannot memorise profiles by their ids."""
        dropped = categorical.clone()
        for k, name in enumerate(CATEGORICAL):
            if name in ID_FIELDS:
                hide = (torch.rand(dropped[..., k].shape, device=dropped.device) < self.config.id_dropout) & (dropped[..., k] > OOV_INDEX)
                dropped[..., k] = torch.where(hide, torch.full_like(dropped[..., k], OOV_INDEX), dropped[..., k])
        return dropped

    def fit_standardisation(self, profile: torch.Tensor) -> None:
        """Set the profile features' mean and spread from training rows, (rows, features)."""
        with torch.no_grad():
            self.profile_mean.copy_(profile.mean(dim=0))
            self.profile_std.copy_(profile.std(dim=0).clamp_min(1e-3))

    def predict_proba(self, batch: EncodedBatch) -> torch.Tensor:
        """Probabilities, (batch, targets), for an encoded batch on the network's device."""
        return torch.sigmoid(self.forward(batch.categorical, batch.continuous, batch.profile, batch.lengths).float())
