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
# prediction), so the state after a profile's last event can be carried forward. The
# gap enters twice: on a log scale for the spacing inside a session, and in days on a
# linear scale, where a profile's interest moves; flags mark a new calendar day (UTC)
# and a new session, and an event in the same category as the one before (a profile
# about to order keeps to one category: focus the LSTM need not infer from embeddings).
TIMING = (
    "log_dt_prev",
    "days_prev",
    "new_day",
    "new_session",
    "log_price",
    "hour_sin",
    "hour_cos",
    "weekday_sin",
    "weekday_cos",
)
# Events older than the last L (the histories' max_events) reach the LSTM as one step per
# earlier active day, read from the snapshot's per-day counts: every profile is read
# back to the start of its window, at the cost of a step per day rather than per event.
DAY_COUNTS = ("events", *EVENT_TYPES)
DAY_INPUTS = ("day_step", *(f"log_day_{name}" for name in DAY_COUNTS), "log_day_spend")
CONTINUOUS = (*TIMING, "same_category", *DAY_INPUTS)
SESSION_GAP_S = 1_800  # a gap longer than this starts a new session
DAYS_SCALE = 30.0  # days_prev = days since the previous event / DAYS_SCALE, capped at GAP_CAP_DAYS
GAP_CAP_DAYS = 90.0
PROFILE = ("window_events", *(f"window_{t}" for t in EVENT_TYPES), "window_spend", "active_days", "recency_s")
# What the head reads besides the LSTM state, at the moment of prediction: the snapshot's
# PROFILE columns, then the time since the last event of each type (NEVER_S when the
# steps hold none), derived from the steps themselves.
TYPE_RECENCY = tuple(f"recency_{t}_s" for t in EVENT_TYPES)
HEAD = (*PROFILE, *TYPE_RECENCY)
NEVER_S = 400 * 86_400.0
HISTORY_COLUMNS = (
    "profile_id",
    "length",
    *CATEGORICAL,
    "price",
    "platform",
    "dt_prev_s",
    "dt_cutoff_s",
    "hour",
    "weekday",
    *PROFILE,
    "days",
)


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
        self._positions = {
            field: {token: i for i, token in enumerate(self.tokens[field]) if i >= 2} for field in CATEGORICAL
        }

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
        caps = {
            "event_type": 64,
            "article_id": limits.max_articles,
            "category_id": limits.max_categories,
            "brand_id": limits.max_brands,
        }
        tokens = {}
        for field in CATEGORICAL:
            frequent = sorted(
                ((c, v) for v, c in counts[field].items() if c >= limits.min_count or field == "event_type"),
                key=lambda cv: (-cv[0], cv[1]),
            )
            tokens[field] = [PAD, OOV, *[v for _, v in frequent[: caps[field]]]]
        return cls(tokens)

    def index(self, field: str, token: str | None) -> int:
        """The embedding row of one id (OOV for unknown or None): a dictionary look-up, for scoring one event at a
        time."""
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
    profile: torch.Tensor  # (batch, len(HEAD)) float32: the head's inputs, log-scaled
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
    """The head's profile inputs from raw values in ``HEAD`` order (last axis): log1p / PROFILE_SCALE, float32."""
    return (np.log1p(np.maximum(raw, 0)) / PROFILE_SCALE).astype(np.float32)


def step_features(
    dt_prev_s: np.ndarray,
    price: np.ndarray,
    hour: np.ndarray,
    weekday: np.ndarray,
    seconds_into_day: np.ndarray,
    same_category: np.ndarray,
) -> np.ndarray:
    """The continuous inputs of each event in ``CONTINUOUS`` order, (events, features).

    The one definition batch and online scoring share. ``seconds_into_day`` is the
    event's time since midnight UTC: a gap longer than it began on an earlier day.
    ``same_category``: the event's category index equals the previous event's.
    """
    timing = _timing(dt_prev_s, hour, weekday, seconds_into_day, price)
    return np.concatenate(
        [timing, np.asarray(same_category, np.float64)[:, None], np.zeros((len(dt_prev_s), len(DAY_INPUTS)))], axis=1
    )


def day_step_features(gap_s: np.ndarray, weekday: np.ndarray, counts: np.ndarray, spend: np.ndarray) -> np.ndarray:
    """The continuous inputs of each day step, (days, features): the gap from the previous day step, the weekday,
    and the day's counts (``DAY_COUNTS`` order) and spend, log-scaled."""
    timing = _timing(gap_s, np.zeros_like(gap_s), weekday, np.zeros_like(gap_s), np.zeros_like(gap_s))
    day = np.concatenate(
        [np.ones((len(gap_s), 1)), np.log1p(np.maximum(counts, 0)) / 3, np.log1p(np.maximum(spend, 0))[:, None] / 5],
        axis=1,
    )
    return np.concatenate([timing, np.zeros((len(gap_s), 1)), day], axis=1)


def _timing(
    dt_prev_s: np.ndarray, hour: np.ndarray, weekday: np.ndarray, seconds_into_day: np.ndarray, price: np.ndarray
) -> np.ndarray:
    dt_prev_s = np.maximum(dt_prev_s, 0)
    hour_angle, weekday_angle = hour * (2 * np.pi / 24), weekday * (2 * np.pi / 7)
    return np.stack(
        [
            np.log1p(dt_prev_s) / 10,
            np.minimum(dt_prev_s / 86_400, GAP_CAP_DAYS) / DAYS_SCALE,
            (dt_prev_s > seconds_into_day).astype(np.float64),
            (dt_prev_s > SESSION_GAP_S).astype(np.float64),
            np.log1p(np.maximum(price, 0)) / 5,
            np.sin(hour_angle),
            np.cos(hour_angle),
            np.sin(weekday_angle),
            np.cos(weekday_angle),
        ],
        axis=-1,
    )


def seconds_into_day(dt_cutoff_s: np.ndarray) -> np.ndarray:
    """An event's seconds since midnight UTC from its distance to a snapshot cut-off (cut-offs are midnights)."""
    return np.mod(-np.asarray(dt_cutoff_s, np.float64), 86_400)


def _flat(table: pa.Table, name: str) -> pa.Array:
    return pc.list_flatten(table.column(name)).combine_chunks() if table.num_rows else pa.array([], pa.string())


def days_before_cutoff(dt_cutoff_s: np.ndarray) -> np.ndarray:
    """Whole days between an event's day and the snapshot's day (0: the same day), from its seconds to the cut-off."""
    return np.ceil(np.asarray(dt_cutoff_s, np.float64) / 86_400).astype(np.int64) - 1


@dataclass(frozen=True)
class DaySteps:
    """Each row's active days before the day of its first kept event: one LSTM step each, oldest first."""

    count: np.ndarray  # (rows,) day steps per row
    row_index: np.ndarray  # (day steps,) batch row of each
    step: np.ndarray  # (day steps,) its step in the batch (day steps come first)
    date: np.ndarray  # (day steps,) the day, in days since 1970-01-01
    days_before_cutoff: np.ndarray  # (day steps,) whole days from that day to the snapshot's
    counts: np.ndarray  # (day steps, len(DAY_COUNTS)) the day's events, in all and per type
    spend: np.ndarray  # (day steps,)

    @classmethod
    def none(cls, rows: int) -> DaySteps:
        empty = np.zeros(0, np.int64)
        return cls(np.zeros(rows, np.int64), empty, empty, empty, empty, np.zeros((0, len(DAY_COUNTS))), np.zeros(0))

    @classmethod
    def of(cls, table: pa.Table, first_kept: np.ndarray, last: np.ndarray) -> DaySteps:
        """``first_kept``/``last``: per row, the flattened position of its first kept and its last event (-1: none).

        A table without the ``days`` column (histories built by hand) has no day steps.
        """
        rows = table.num_rows
        if "days" not in table.column_names or rows == 0:
            return cls.none(rows)
        days = table.column("days").combine_chunks()
        per_row = pc.fill_null(pc.list_value_length(days), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        flat = pc.list_flatten(days)
        if len(flat) == 0:
            return cls.none(rows)
        date = flat.field("date").cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.int64)
        owner = np.repeat(np.arange(rows), per_row)
        seconds = pc.fill_null(_flat(table, "dt_cutoff_s"), 0).to_numpy(zero_copy_only=False).astype(np.float64)
        has = (first_kept >= 0) & (per_row > 0)
        # The last event's day is the row's last active day; the snapshot's day and the first kept event's follow.
        last_day = np.where(has, date[np.maximum(np.cumsum(per_row) - 1, 0)], 0)
        snapshot_day = last_day + np.where(has, days_before_cutoff(seconds[np.maximum(last, 0)]), 0)
        first_day = np.where(
            has, snapshot_day - days_before_cutoff(seconds[np.maximum(first_kept, 0)]), np.iinfo(np.int64).min
        )
        chosen = np.flatnonzero(date < first_day[owner])
        owner = owner[chosen]
        count = np.bincount(owner, minlength=rows).astype(np.int64)
        step = np.arange(len(chosen)) - np.repeat(np.cumsum(count) - count, count)
        counts = np.stack(
            [flat.field(name).to_numpy(zero_copy_only=False)[chosen] for name in DAY_COUNTS], axis=1
        ).astype(np.float64)
        spend = pc.fill_null(flat.field("spend"), 0).to_numpy(zero_copy_only=False)[chosen].astype(np.float64)
        return cls(count, owner, step, date[chosen], snapshot_day[owner] - date[chosen], counts, spend)

    def features(self) -> np.ndarray:
        """The continuous inputs of every day step, (day steps, features); the first day step of a row has no gap."""
        gap = np.zeros(len(self.date))
        follows = self.row_index[1:] == self.row_index[:-1]
        gap[1:] = np.where(follows, (self.date[1:] - self.date[:-1]) * 86_400.0, 0.0)
        return day_step_features(gap, (self.date + 3) % 7, self.counts, self.spend)  # 1970-01-01 was a Thursday


@dataclass(frozen=True)
class KeptEvents:
    """Where each row's steps sit in a padded batch: its day steps first, then its last ``max_length`` events,
    and where those events are in the flattened list columns."""

    kept: np.ndarray  # (rows,) events kept per row
    width: int  # padded steps, at least 1
    row_index: np.ndarray  # (kept events,) batch row of each kept event
    step: np.ndarray  # (kept events,) its step in the batch
    source: np.ndarray  # (kept events,) its position in the flattened lists
    days: DaySteps

    @property
    def lengths(self) -> np.ndarray:
        """Steps per row, at least 1 (an empty history keeps one padding step)."""
        return np.maximum(self.days.count + self.kept, 1)

    @classmethod
    def of(cls, table: pa.Table, max_length: int) -> KeptEvents:
        rows = table.num_rows
        lengths = pc.list_value_length(table.column("event_type")).to_numpy(zero_copy_only=False).astype(np.int64)
        kept = np.minimum(lengths, max_length)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if rows else np.zeros(0, np.int64)
        first_kept = np.where(kept > 0, starts + lengths - kept, -1)
        days = DaySteps.of(table, first_kept, np.where(kept > 0, starts + lengths - 1, -1))
        event_step = np.arange(kept.sum()) - np.repeat(np.cumsum(kept) - kept, kept)
        width = max(int((days.count + kept).max()) if rows else 1, 1)
        step = np.repeat(days.count, kept) + event_step
        return cls(
            kept,
            width,
            np.repeat(np.arange(rows), kept),
            step,
            np.repeat(starts + lengths - kept, kept) + event_step,
            days,
        )

    def padded(self, flat: np.ndarray, fill, dtype) -> np.ndarray:
        """A flattened list column's kept values as (rows, width), at their event steps, ``fill`` elsewhere."""
        out = np.full((len(self.kept), self.width), fill, dtype=dtype)
        out[self.row_index, self.step] = flat[self.source]
        return out


def type_recency(table: pa.Table, layout: KeptEvents) -> np.ndarray:
    """Seconds from the last step of each event type to the cut-off, (rows, len(EVENT_TYPES)); NEVER_S where none.

    A day step counts for each type it holds, at the end of its day."""
    out = np.full((table.num_rows, len(EVENT_TYPES)), NEVER_S)
    types = pc.fill_null(_flat(table, "event_type"), "").to_numpy(zero_copy_only=False)[layout.source]
    age = pc.fill_null(_flat(table, "dt_cutoff_s"), 0).to_numpy(zero_copy_only=False).astype(np.float64)[layout.source]
    days = layout.days
    for k, event_type in enumerate(EVENT_TYPES):
        column = out[:, k]  # a view: ufunc.at writes through it
        held = days.counts[:, 1 + k] > 0
        np.minimum.at(column, days.row_index[held], days.days_before_cutoff[held] * 86_400.0)
        match = types == event_type
        np.minimum.at(column, layout.row_index[match], np.minimum(age[match], NEVER_S))
    return out


def head_inputs(table: pa.Table, layout: KeptEvents) -> np.ndarray:
    """Raw head inputs of each row in ``HEAD`` order, (rows, len(HEAD)): the PROFILE columns, then ``type_recency``."""
    if table.num_rows == 0:
        return np.zeros((0, len(HEAD)))
    columns = np.stack(
        [pc.fill_null(table.column(name), 0).to_numpy(zero_copy_only=False).astype(np.float64) for name in PROFILE],
        axis=1,
    )
    return np.concatenate([columns, type_recency(table, layout)], axis=1)


def encode(table: pa.Table, vocabulary: Vocabulary, max_length: int, labels: np.ndarray | None = None) -> EncodedBatch:
    """Encode snapshot rows: a step per active day before the last ``max_length`` events, then those events, padded at
    the
    end.

    A profile with an empty history gets one all-padding step, so every profile gets
    a score; its continuous inputs are zeros.
    """
    rows = table.num_rows
    layout = KeptEvents.of(table, max_length)
    width, row_index, step, source = layout.width, layout.row_index, layout.step, layout.source

    categorical = np.zeros((rows, width, len(CATEGORICAL)), np.int64)
    for k, field in enumerate(CATEGORICAL):
        categorical[row_index, step, k] = vocabulary.lookup(field, _flat(table, field))[source]

    def numbers(name: str) -> np.ndarray:
        return pc.fill_null(_flat(table, name), 0).to_numpy(zero_copy_only=False).astype(np.float64)[source]

    category = categorical[..., CATEGORICAL.index("category_id")]
    previous = np.concatenate(
        [np.zeros((rows, 1), np.int64), category[:, :-1]], axis=1
    )  # a day step or the start: padding
    same = (category == previous) & (previous != 0)
    features = step_features(
        numbers("dt_prev_s"),
        numbers("price"),
        numbers("hour"),
        numbers("weekday"),
        seconds_into_day(numbers("dt_cutoff_s")),
        same[row_index, step],
    )
    continuous = np.zeros((rows, width, len(CONTINUOUS)), np.float32)
    continuous[row_index, step] = features
    continuous[layout.days.row_index, layout.days.step] = layout.days.features()
    profile = profile_features(head_inputs(table, layout))
    return EncodedBatch(
        categorical=torch.from_numpy(categorical),
        continuous=torch.from_numpy(continuous),
        profile=torch.from_numpy(profile),
        lengths=torch.from_numpy(layout.lengths),
        labels=None if labels is None else torch.from_numpy(np.asarray(labels, np.float32)),
    )
