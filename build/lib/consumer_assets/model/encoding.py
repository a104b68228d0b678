"""From snapshot rows to tensors: vocabularies built at training time, and the encoding.

Ids are raw strings in the histories; each model keeps its own vocabularies, so a
new article needs no change upstream. Index 0 is padding and index 1 stands for any
id the vocabulary does not know (unseen or too rare), so a model scores every
profile, including ones whose whole history is new to it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from consumer_assets.ingest.contract import EVENT_TYPES

PAD, OOV = "<pad>", "<oov>"
CATEGORICAL = ("event_type", "article_id", "category_id", "brand_id")
# What the LSTM reads at each step describes the event alone (never the moment of
# prediction), so the state after a profile's last event can be carried forward.
CONTINUOUS = ("log_dt_prev", "log_price", "hour_sin", "hour_cos", "weekday_sin", "weekday_cos")
PROFILE = ("window_events", *(f"window_{t}" for t in EVENT_TYPES), "window_spend", "active_days", "recency_s")
HISTORY_COLUMNS = ("profile_id", "length", *CATEGORICAL, "price", "platform", "dt_prev_s", "dt_cutoff_s", "hour", "weekday", *PROFILE)


@dataclass(frozen=True)
class VocabularyLimits:
    """How many ids of each field get their own embedding; the rest share the OOV row."""

    max_articles: int = 5_000
    max_brands: int = 2_000
    max_categories: int = 500
    min_count: int = 5


class Vocabulary:
    """Token lists per categorical field; position in the list is the embedding row."""

    def __init__(self, tokens: dict[str, list[str]]):
        for field in CATEGORICAL:
            if field not in tokens:
                raise ValueError(f"vocabulary has no field {field!r}")
            if tokens[field][:2] != [PAD, OOV]:
                raise ValueError(f"vocabulary field {field!r} must start with {PAD!r}, {OOV!r}")
        self.tokens = {field: list(tokens[field]) for field in CATEGORICAL}
        self._arrays = {field: pa.array(self.tokens[field][2:], pa.string()) for field in CATEGORICAL}
        self._positions = {field: {token: i for i, token in enumerate(self.tokens[field]) if i >= 2} for field in CATEGORICAL}

    def size(self, field: str) -> int:
        return len(self.tokens[field])

    def sizes(self) -> dict[str, int]:
        return {field: self.size(field) for field in CATEGORICAL}

    def to_json(self) -> dict:
        return {"tokens": self.tokens}

    @classmethod
    def from_json(cls, data: dict) -> Vocabulary:
        return cls(data["tokens"])

    @classmethod
    def build(cls, tables: Iterable[pa.Table], limits: VocabularyLimits = VocabularyLimits()) -> Vocabulary:
        """The most frequent ids of each field in ``tables``, capped and with a minimum count."""
        counts: dict[str, dict[str, int]] = {field: {} for field in CATEGORICAL}
        for table in tables:
            for field in CATEGORICAL:
                values = pc.value_counts(pc.list_flatten(table.column(field)).drop_null())
                target = counts[field]
                for value, count in zip(values.field("values").to_pylist(), values.field("counts").to_pylist()):
                    target[value] = target.get(value, 0) + count
        caps = {"event_type": 64, "article_id": limits.max_articles, "category_id": limits.max_categories, "brand_id": limits.max_brands}
        tokens = {}
        for field in CATEGORICAL:
            frequent = sorted(((c, v) for v, c in counts[field].items() if c >= limits.min_count or field == "event_type"), key=lambda cv: (-cv[0], cv[1]))
            tokens[field] = [PAD, OOV, *[v for _, v in frequent[: caps[field]]]]
        return cls(tokens)

    def index(self, field: str, token: str | None) -> int:
        """The embedding row of one id (OOV for unknown or None): a dictionary look-up, for scoring one event at a time."""
        return self._positions[field].get(token, 1) if token is not None else 1

    def lookup(self, field: str, values: pa.Array) -> np.ndarray:
        """Indices of ``values`` (OOV for unknown or null ids)."""
        index = pc.index_in(values, value_set=self._arrays[field])
        return pc.fill_null(pc.add(index, 2), 1).to_numpy(zero_copy_only=False).astype(np.int64)


@dataclass
class EncodedBatch:
    """A batch of sequences, right-padded to the batch's longest, and its labels if known."""

    categorical: torch.Tensor  # (batch, time, fields) int64
    continuous: torch.Tensor  # (batch, time, features) float32
    profile: torch.Tensor  # (batch, profile features) float32: window totals, log-scaled
    lengths: torch.Tensor  # (batch,) int64, every length >= 1
    labels: torch.Tensor | None = None  # (batch, targets) float32

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def to(self, device: torch.device | str) -> EncodedBatch:
        return EncodedBatch(
            self.categorical.to(device, non_blocking=True),
            self.continuous.to(device, non_blocking=True),
            self.profile.to(device, non_blocking=True),
            self.lengths,
            None if self.labels is None else self.labels.to(device, non_blocking=True),
        )

    def pin_memory(self) -> EncodedBatch:
        """The batch in page-locked host memory, so its copy to a GPU can overlap computation."""
        return EncodedBatch(
            self.categorical.pin_memory(),
            self.continuous.pin_memory(),
            self.profile.pin_memory(),
            self.lengths,
            None if self.labels is None else self.labels.pin_memory(),
        )


PROFILE_SCALE = 5.0


def profile_features(raw: np.ndarray) -> np.ndarray:
    """The head's profile inputs from raw window totals in ``PROFILE`` order (last axis): log1p / PROFILE_SCALE, float32."""
    return (np.log1p(np.maximum(raw, 0)) / PROFILE_SCALE).astype(np.float32)


def step_features(dt_prev_s: np.ndarray, price: np.ndarray, hour: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    """The continuous inputs of each event in ``CONTINUOUS`` order, (events, features); the one definition batch and online scoring share."""
    hour_angle, weekday_angle = hour * (2 * np.pi / 24), weekday * (2 * np.pi / 7)
    return np.stack(
        [
            np.log1p(np.maximum(dt_prev_s, 0)) / 10,
            np.log1p(np.maximum(price, 0)) / 5,
            np.sin(hour_angle),
            np.cos(hour_angle),
            np.sin(weekday_angle),
            np.cos(weekday_angle),
        ],
        axis=-1,
    )


def _flat(table: pa.Table, name: str) -> pa.Array:
    return pc.list_flatten(table.column(name)).combine_chunks() if table.num_rows else pa.array([], pa.string())


@dataclass(frozen=True)
class KeptEvents:
    """Where the last ``max_length`` events of each row sit: in the flattened list columns and in a padded batch."""

    kept: np.ndarray  # (rows,) events kept per row
    width: int  # padded steps, at least 1
    row_index: np.ndarray  # (kept events,) batch row of each kept event
    step: np.ndarray  # (kept events,) its step in the batch
    source: np.ndarray  # (kept events,) its position in the flattened lists

    @classmethod
    def of(cls, table: pa.Table, max_length: int) -> KeptEvents:
        rows = table.num_rows
        lengths = pc.list_value_length(table.column("event_type")).to_numpy(zero_copy_only=False).astype(np.int64)
        kept = np.minimum(lengths, max_length)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if rows else np.zeros(0, np.int64)
        step = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
        return cls(kept, max(int(kept.max()) if rows else 1, 1), np.repeat(np.arange(rows), kept), step, np.repeat(starts + lengths - kept, kept) + step)

    def padded(self, flat: np.ndarray, fill, dtype) -> np.ndarray:
        """A flattened list column's kept values as (rows, width), left-aligned, ``fill`` after each row's end."""
        out = np.full((len(self.kept), self.width), fill, dtype=dtype)
        out[self.row_index, self.step] = flat[self.source]
        return out


def encode(table: pa.Table, vocabulary: Vocabulary, max_length: int, labels: np.ndarray | None = None) -> EncodedBatch:
    """Encode snapshot rows: the last ``max_length`` events of each, padded at the end.

    A profile with an empty history gets one all-padding step, so every profile gets
    a score; its continuous inputs are zeros.
    """
    rows = table.num_rows
    layout = KeptEvents.of(table, max_length)
    kept, width, row_index, step, source = layout.kept, layout.width, layout.row_index, layout.step, layout.source

    categorical = np.zeros((rows, width, len(CATEGORICAL)), np.int64)
    for k, field in enumerate(CATEGORICAL):
        categorical[row_index, step, k] = vocabulary.lookup(field, _flat(table, field))[source]

    def numbers(name: str) -> np.ndarray:
        return pc.fill_null(_flat(table, name), 0).to_numpy(zero_copy_only=False).astype(np.float64)[source]

    features = step_features(numbers("dt_prev_s"), numbers("price"), numbers("hour"), numbers("weekday"))
    continuous = np.zeros((rows, width, len(CONTINUOUS)), np.float32)
    continuous[row_index, step] = features
    raw = (
        np.stack([pc.fill_null(table.column(name), 0).to_numpy(zero_copy_only=False).astype(np.float64) for name in PROFILE], axis=1)
        if rows
        else np.zeros((0, len(PROFILE)))
    )
    profile = profile_features(raw)
    return EncodedBatch(
        categorical=torch.from_numpy(categorical),
        continuous=torch.from_numpy(continuous),
        profile=torch.from_numpy(profile),
        lengths=torch.from_numpy(np.maximum(kept, 1)),
        labels=None if labels is None else torch.from_numpy(np.asarray(labels, np.float32)),
    )
