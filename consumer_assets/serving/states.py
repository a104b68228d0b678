"""Each profile's LSTM state after its last event, from the batch, carried forward one event at a time.

The LSTM's per-step inputs describe the event alone, never the moment of prediction,
so the state after a profile's last event is all the sequence needs: a new event
is one LSTM step from it, and a score at any moment is the head applied to that
state, the window totals and the time since the last event. The daily batch
writes the states (``profile_states``); the online service (``serving/online.py``)
loads them and advances them as events arrive.

Streamed events for day D+1 on top of the states of D give the score the batch
gives at D+1, with two named approximations, both from the snapshot's bounds:
- **length**: the batch reads only a profile's last ``max_length`` events, and the
  days before them as one step per day; the carried state has read every event;
- **window**: the batch's totals and events cover the trailing ``window_days``; the
  carried totals do not drop a day that leaves the window.
Neither touches a profile whose window holds fewer than ``max_length`` events and none
older than the window: for them the two agree to float precision (tested to 1e-4).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from consumer_assets.features.snapshots import cutoff
from consumer_assets.ingest.contract import EVENT_TYPES
from consumer_assets.model.encoding import (
    CATEGORICAL,
    NEVER_S,
    PROFILE,
    KeptEvents,
    encode,
    head_inputs,
    profile_features,
    step_features,
)
from consumer_assets.model.store import LoadedModel
from consumer_assets.serving.explain import empty_history_score

# What a state carries besides h and c: the window totals, when the last event of each
# type was (Unix seconds; the head's recencies are computed from them when scoring), and
# the model's vocabulary index of the last event's category (0 when none).
WINDOW_TOTALS = PROFILE[:-1]
LAST_OF_TYPE = tuple(f"last_{t}_s" for t in EVENT_TYPES)
CARRIED = (*WINDOW_TOTALS, *LAST_OF_TYPE, "last_category")


def cutoff_seconds(day: date) -> float:
    """The snapshot cut-off of ``day`` (the end of the day, UTC) in Unix seconds."""
    return cutoff(day).timestamp()


def state_schema(hidden_size: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("profile_id", pa.string(), nullable=False),
            pa.field("h", pa.list_(pa.float32(), hidden_size), nullable=False),
            pa.field("c", pa.list_(pa.float32(), hidden_size), nullable=False),
            pa.field("last_event_s", pa.float64(), nullable=False),
            *[pa.field(name, pa.float64(), nullable=False) for name in CARRIED],
        ]
    )


@dataclass(frozen=True)
class ProfileState:
    """Where one profile stands: the LSTM state after its last event, when that was, its window totals and last event of
    each type."""

    h: np.ndarray  # (hidden,) float32
    c: np.ndarray  # (hidden,) float32
    last_event_s: float  # Unix seconds of the last event
    carried: np.ndarray  # (len(CARRIED),) float64, in CARRIED order


@dataclass(frozen=True)
class Event:
    """One event of the landing contract, as the online service receives it."""

    event_id: str
    profile_id: str
    ts_s: float  # Unix seconds
    event_type: str
    article_id: str
    category_id: str | None = None
    brand_id: str | None = None
    price: float | None = None


def batch_states(model: LoadedModel, table: pa.Table, day: date, batch_size: int = 2048) -> pa.Table:
    """The state of every snapshot row of ``day`` (history rows), as ``state_schema`` rows in the table's order.

    Packed sequences here, so that the cell state ``c`` is the one after each row's last
    event (a padded run would carry it on through the padding). Rows go through the
    LSTM in batches of similar length.
    """
    hidden = model.config.hidden_size
    h, c = np.zeros((table.num_rows, hidden), np.float32), np.zeros((table.num_rows, hidden), np.float32)
    last_category = np.zeros(table.num_rows, np.int64)
    order = np.argsort(pc.list_value_length(table.column("event_type")).to_numpy(zero_copy_only=False), kind="stable")
    network = model.network.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = encode(table.take(pa.array(rows)), model.vocabulary, model.config.max_length)
            packed = pack_padded_sequence(
                network.step_inputs(batch.categorical, batch.continuous),
                batch.lengths,
                batch_first=True,
                enforce_sorted=False,
            )
            _, (h_last, c_last) = network.lstm(packed)
            h[rows], c[rows] = h_last[0].numpy(), c_last[0].numpy()
            last_category[rows] = batch.categorical[
                torch.arange(len(rows)), batch.lengths - 1, CATEGORICAL.index("category_id")
            ].numpy()
    raw = head_inputs(table, KeptEvents.of(table, model.config.max_length))
    last_of_type = cutoff_seconds(day) - raw[:, len(PROFILE) :]  # NEVER_S before the cut-off where the steps hold none
    flat = lambda values: pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), hidden)  # noqa: E731
    return pa.table(
        {
            "profile_id": table.column("profile_id"),
            "h": flat(h),
            "c": flat(c),
            "last_event_s": cutoff_seconds(day) - raw[:, PROFILE.index("recency_s")],
            **{name: raw[:, PROFILE.index(name)] for name in WINDOW_TOTALS},
            **{name: last_of_type[:, k] for k, name in enumerate(LAST_OF_TYPE)},
            "last_category": last_category.astype(np.float64),
        },
        schema=state_schema(hidden),
    )


def states_from_table(table: pa.Table) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Columns of a states partition as arrays: ids, h, c (rows, hidden), last event seconds, carried values (rows,
    len(CARRIED))."""
    hidden = table.schema.field("h").type.list_size

    def values(name):
        return (
            pc.list_flatten(table.column(name))
            .to_numpy(zero_copy_only=False)
            .reshape(-1, hidden)
            .astype(np.float32, copy=False)
        )

    carried = (
        np.stack([table.column(name).to_numpy(zero_copy_only=False) for name in CARRIED], axis=1)
        if table.num_rows
        else np.zeros((0, len(CARRIED)))
    )
    return (
        table.column("profile_id").to_pylist(),
        values("h"),
        values("c"),
        table.column("last_event_s").to_numpy(zero_copy_only=False),
        carried,
    )


class OnlineModel:
    """One model's step and head, for one event or one score at a time (CPU, inference mode)."""

    def __init__(self, model: LoadedModel):
        self.model = model
        self.version = model.version
        self.network = model.network.eval()
        self.hidden_size = model.config.hidden_size
        self._type_index = {t: CARRIED.index(f"window_{t}") for t in EVENT_TYPES}
        self._empty = empty_history_score(model)

    def advance(self, state: ProfileState | None, event: Event) -> ProfileState:
        """The state after ``event``; ``None`` is a profile never seen (the LSTM's zero state, no totals)."""
        if state is not None and event.ts_s < state.last_event_s:
            raise ValueError(
                f"event at {event.ts_s} is older than the profile's last event at {state.last_event_s}: online states "
                "only move forward"
            )
        vocabulary = self.model.vocabulary
        ids = [vocabulary.index(field, getattr(event, field)) for field in CATEGORICAL]
        moment = datetime.fromtimestamp(event.ts_s, tz=UTC)
        dt_prev = event.ts_s - state.last_event_s if state is not None else 0.0
        category = ids[CATEGORICAL.index("category_id")]
        same_category = state is not None and category == state.carried[CARRIED.index("last_category")] != 0
        features = step_features(
            np.array([dt_prev]),
            np.array([event.price or 0.0]),
            np.array([float(moment.hour)]),
            np.array([float(moment.weekday())]),
            np.array([event.ts_s % 86_400]),
            np.array([same_category]),
        )
        zeros = np.zeros(self.hidden_size, np.float32)
        h, c = (state.h, state.c) if state is not None else (zeros, zeros)
        with torch.inference_mode():
            x = self.network.step_inputs(torch.tensor([[ids]]), torch.from_numpy(features.astype(np.float32))[None])
            _, (h_next, c_next) = self.network.lstm(
                x, (torch.from_numpy(h)[None, None], torch.from_numpy(c)[None, None])
            )
        carried = (
            state.carried.copy()
            if state is not None
            else np.concatenate([np.zeros(len(WINDOW_TOTALS)), np.full(len(LAST_OF_TYPE), -NEVER_S), [0.0]])
        )
        carried[CARRIED.index("window_events")] += 1
        carried[self._type_index[event.event_type]] += 1
        if event.event_type == "order":
            carried[CARRIED.index("window_spend")] += event.price or 0.0
        if state is None or _day_of(event.ts_s) != _day_of(state.last_event_s):
            carried[CARRIED.index("active_days")] += 1
        carried[CARRIED.index(f"last_{event.event_type}_s")] = event.ts_s
        carried[CARRIED.index("last_category")] = category
        return ProfileState(h_next[0, 0].numpy().copy(), c_next[0, 0].numpy().copy(), event.ts_s, carried)

    def score(self, state: ProfileState | None, at_s: float) -> np.ndarray:
        """Calibrated probabilities per target at the moment ``at_s``; the batch's empty-history score for ``None``."""
        if state is None:
            return self._empty
        carried = state.carried
        last_of_type = carried[len(WINDOW_TOTALS) : len(WINDOW_TOTALS) + len(LAST_OF_TYPE)]
        raw = np.concatenate(
            [
                carried[: len(WINDOW_TOTALS)],
                [max(at_s - state.last_event_s, 0.0)],
                np.clip(at_s - last_of_type, 0.0, NEVER_S),
            ]
        )
        with torch.inference_mode():
            return self._head(state.h, raw)

    def _head(self, h: np.ndarray, raw: np.ndarray) -> np.ndarray:
        profile = torch.from_numpy(profile_features(raw))[None]
        logits = self.network.head_logits(torch.from_numpy(np.asarray(h, np.float32))[None], profile)
        return torch.sigmoid(self.network.calibrate(logits))[0].numpy()


def _day_of(seconds: float) -> int:
    return int(seconds // 86_400)
