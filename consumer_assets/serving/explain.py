"""Why did the model say so: each event's contribution to a profile's score, from one pass over its history.

The LSTM reads each event alone (never the moment of prediction), so the state
after event t is the state of the history cut at t. The probability after each
prefix is the head applied to that state, with the profile features as they stood
then (window totals less the events still to come, and the time from event t to
the cut-off), calibrated as every score is. An event's contribution is the change
it caused: p(after t) - p(after t-1), starting from the score of an empty history.
The contributions therefore add up exactly to the final score minus the
empty-history score, and the last point of the trajectory is the batch score.

One LSTM pass per profile, not one per prefix: explaining costs a few times
scoring. Plain Python: the asset, the CLI and tests call it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from consumer_assets.asset_keys import PREDICTIONS
from consumer_assets.features.snapshots import iter_snapshot_batches
from consumer_assets.ingest.contract import EVENT_TYPES
from consumer_assets.model.encoding import (
    HISTORY_COLUMNS,
    NEVER_S,
    PROFILE,
    TYPE_RECENCY,
    KeptEvents,
    days_before_cutoff,
    encode,
    head_inputs,
    profile_features,
)
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import LoadedModel, ModelStore
from consumer_assets.storage import StorageRoot

AGE_BUCKETS = (
    (3_600, "< 1 hour"),
    (86_400, "1 hour - 1 day"),
    (3 * 86_400, "1-3 days"),
    (7 * 86_400, "3-7 days"),
    (30 * 86_400, "7-30 days"),
    (np.inf, ">= 30 days"),
)
EXPLANATION_SCHEMA = pa.schema(
    [
        ("profile_id", pa.string()),
        ("position", pa.int32()),
        ("event_type", pa.string()),
        ("category_id", pa.string()),
        ("article_id", pa.string()),
        ("seconds_before_cutoff", pa.float64()),
        ("probability", pa.float32()),
        ("contribution", pa.float32()),
    ]
)


class ExplanationError(ValueError):
    """A profile cannot be explained for a day; the message says why and what to do."""


@dataclass(frozen=True)
class Explanations:
    """Per-event rows of the explained profiles (first target), and the score every trajectory starts from."""

    events: pa.Table
    empty_score: float
    target: str


def empty_history_score(model: LoadedModel) -> np.ndarray:
    """What the model gives a profile with no events and no window totals, per target."""
    empty = pa.table(
        {
            "profile_id": ["-"],
            **{
                name: pa.array([[]], pa.list_(pa.string()))
                for name in ("event_type", "article_id", "category_id", "brand_id", "platform")
            },
            **{
                name: pa.array([[]], pa.list_(pa.float64()))
                for name in ("price", "dt_prev_s", "dt_cutoff_s", "hour", "weekday")
            },
            **{name: pa.array([0.0]) for name in PROFILE},
        }
    )
    return score_table(model, empty)[0]


EARLIER_DAY = "earlier_day"  # the event type of a day step: an active day before the last kept events


def prefix_profiles(table: pa.Table, max_length: int) -> tuple[np.ndarray, KeptEvents]:
    """Raw head inputs after each step, (rows, steps, features) in ``HEAD`` order, and the steps' layout.

    Totals after step t are the snapshot's totals less what the later steps hold (an
    event, or a day's counts); the recency is the time from step t to the cut-off (a
    day step: from the end of its day). At the last step they are the snapshot's own
    values, so the last prefix is the scored profile. The time since the last event of
    each type is that of the latest such step up to t.
    """
    layout = KeptEvents.of(table, max_length)
    rows, width, days = len(layout.kept), layout.width, layout.days
    at, day_at = (layout.row_index, layout.step), (days.row_index, days.step)

    def flat(name, fill):
        return pc.fill_null(pc.list_flatten(table.column(name)), fill).to_numpy(zero_copy_only=False)[layout.source]

    types, price, age = (
        flat("event_type", ""),
        flat("price", 0.0).astype(np.float64),
        flat("dt_cutoff_s", 0.0).astype(np.float64),
    )
    held = np.zeros((rows, width, len(PROFILE)))  # what each step adds to the totals
    held[(*at, 0)] = 1.0
    for k, event_type in enumerate(EVENT_TYPES):
        held[(*at, 1 + k)] = types == event_type
    held[(*at, PROFILE.index("window_spend"))] = np.where(types == "order", price, 0.0)
    held[(*day_at, slice(0, 1 + len(EVENT_TYPES)))] = days.counts
    held[(*day_at, PROFILE.index("window_spend"))] = days.spend
    recency = np.zeros((rows, width))
    recency[at] = age
    recency[day_at] = days.days_before_cutoff * 86_400.0
    new_day = np.zeros((rows, width))
    new_day[day_at] = 1.0
    day = np.full((rows, width), -1)
    day[at] = days_before_cutoff(age)
    new_day[at] = (np.concatenate([np.full((rows, 1), -1), day[:, :-1]], axis=1) != day)[
        at
    ]  # after a day step too: its day is -1 here
    held[..., PROFILE.index("active_days")] = new_day

    final = head_inputs(table, layout)
    after = np.cumsum(held[:, ::-1], axis=1)[:, ::-1] - held  # what the steps after t hold (zero past a row's end)
    raw = np.concatenate([final[:, None, : len(PROFILE)] - after, np.zeros((rows, width, len(TYPE_RECENCY)))], axis=2)
    raw[..., PROFILE.index("recency_s")] = recency
    steps = np.broadcast_to(np.arange(width), (rows, width))
    for k in range(len(EVENT_TYPES)):  # the time since the last step of each type up to t, held at the cut-off
        holds = held[..., 1 + k] > 0
        latest = np.maximum.accumulate(np.where(holds, steps, -1), axis=1)
        raw[..., len(PROFILE) + k] = np.where(
            latest >= 0, np.take_along_axis(recency, np.maximum(latest, 0), axis=1), NEVER_S
        )
    last = layout.lengths - 1
    raw[np.arange(rows), last] = final  # exactly the snapshot's row at the last step
    return raw, layout


def _explain_rows(model: LoadedModel, table: pa.Table) -> tuple[np.ndarray, KeptEvents]:
    """Probabilities after each prefix (rows, steps) for the first target, and where the steps sit."""
    batch = encode(table, model.vocabulary, model.config.max_length)
    raw, layout = prefix_profiles(table, model.config.max_length)
    network = model.network
    with torch.inference_mode():
        logits = network.prefix_logits(batch.categorical, batch.continuous, torch.from_numpy(profile_features(raw)))
        probabilities = torch.sigmoid(network.calibrate(logits))[..., 0].numpy()
    return probabilities, layout


def explain(model: LoadedModel, table: pa.Table, batch_size: int = 512) -> Explanations:
    """Per-event probabilities and contributions of every profile in ``table`` (snapshot rows)."""
    empty = float(empty_history_score(model)[0])
    if table.num_rows == 0:
        return Explanations(events=EXPLANATION_SCHEMA.empty_table(), empty_score=empty, target=model.config.targets[0])
    # Batches of similar length pad little; the rows go back to the table's order at the end.
    order = np.argsort(pc.list_value_length(table.column("event_type")).to_numpy(zero_copy_only=False), kind="stable")
    parts, rows = [], []
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        part, kept = _event_rows(model, table.take(pa.array(chosen)), empty)
        parts.append(part)
        rows.append(np.repeat(chosen, kept))
    events = pa.concat_tables(parts)
    events = events.take(pa.array(np.argsort(np.concatenate(rows), kind="stable")))
    return Explanations(events=events, empty_score=empty, target=model.config.targets[0])


def _event_rows(model: LoadedModel, table: pa.Table, empty: float) -> tuple[pa.Table, np.ndarray]:
    """The explained steps of ``table``'s rows (day steps, then events), and how many steps each row gave."""
    probabilities, layout = _explain_rows(model, table)
    days = layout.days
    steps = days.count + layout.kept
    previous = np.concatenate([np.full((len(layout.kept), 1), empty), probabilities[:, :-1]], axis=1)
    row = np.concatenate([days.row_index, layout.row_index])
    step = np.concatenate([days.step, layout.step])
    order = np.lexsort((step, row))  # each row's steps, oldest first
    at = (row[order], step[order])

    def flat(name: str, day_value) -> np.ndarray:
        events = pc.list_flatten(table.column(name)).to_numpy(zero_copy_only=False)[layout.source]
        return np.concatenate([np.full(len(days.step), day_value, dtype=object), events.astype(object)])[order]

    ids = np.asarray(table.column("profile_id").to_pylist(), dtype=object)
    event_seconds = pc.list_flatten(table.column("dt_cutoff_s")).to_numpy(zero_copy_only=False)[layout.source]
    seconds = np.concatenate([days.days_before_cutoff * 86_400.0, event_seconds.astype(np.float64)])[order]
    events = pa.table(
        {
            "profile_id": pa.array(np.repeat(ids, steps), pa.string()),
            "position": pa.array(at[1].astype(np.int32)),
            "event_type": pa.array(flat("event_type", EARLIER_DAY), pa.string()),
            **{name: pa.array(flat(name, None), pa.string()) for name in ("category_id", "article_id")},
            "seconds_before_cutoff": pa.array(seconds),
            "probability": pa.array(probabilities[at].astype(np.float32)),
            "contribution": pa.array((probabilities - previous)[at].astype(np.float32)),
        },
        schema=EXPLANATION_SCHEMA,
    )
    return events, steps


def age_bucket(seconds: np.ndarray) -> np.ndarray:
    edges = np.array([edge for edge, _ in AGE_BUCKETS])
    names = np.array([name for _, name in AGE_BUCKETS], dtype=object)
    return names[np.searchsorted(edges, np.asarray(seconds, float), side="right").clip(0, len(names) - 1)]


def contribution_summary(events: pa.Table) -> list[dict]:
    """What moves scores: per event type and time before the cut-off, the events, their mean contribution and share
    pushing up."""
    if events.num_rows == 0:
        return []
    table = pa.table(
        {
            "event_type": events.column("event_type"),
            "age": pa.array(age_bucket(events.column("seconds_before_cutoff").to_numpy()), pa.string()),
            "contribution": events.column("contribution").cast(pa.float64()),
            "up": pc.greater(events.column("contribution"), 0).cast(pa.float64()),
        }
    )
    grouped = table.group_by(["event_type", "age"]).aggregate(
        [("contribution", "count"), ("contribution", "mean"), ("up", "mean"), ("contribution", "sum")]
    )
    order = {name: k for k, (_, name) in enumerate(AGE_BUCKETS)}
    rows = [
        {
            "event_type": r["event_type"],
            "age": r["age"],
            "events": r["contribution_count"],
            "mean_contribution": r["contribution_mean"],
            "share_up": r["up_mean"],
            "total_contribution": r["contribution_sum"],
        }
        for r in grouped.to_pylist()
    ]
    return sorted(
        rows,
        key=lambda r: (EVENT_TYPES.index(r["event_type"]) if r["event_type"] in EVENT_TYPES else 99, order[r["age"]]),
    )


def iter_profiles(events: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """The explained events grouped by profile, in the order they were explained."""
    ids = events.column("profile_id").to_numpy(zero_copy_only=False)
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(ids)]):
        yield str(ids[start]), events.slice(int(start), int(stop - start))


def attribution_shares(events: pa.Table, weights: np.ndarray | None = None) -> dict[str, float]:
    """Each event type's share of the total absolute contribution: what drives the scores, in one vector."""
    types = events.column("event_type").to_numpy(zero_copy_only=False)
    size = np.abs(events.column("contribution").to_numpy().astype(np.float64)) * (1.0 if weights is None else weights)
    total = size.sum()
    return {t: float(size[types == t].sum() / total) if total > 0 else 0.0 for t in EVENT_TYPES}


def attribution_drift(
    events: pa.Table, reference: list[dict[str, float]], min_events: int, warn_shift: float, resamples: int = 200
) -> dict:
    """The day's attribution shares against the mean of earlier days', with 95 % intervals over profiles.

    A type is flagged when its share moved by more than ``warn_shift`` and the whole
    interval of the day's share lies beyond that distance. Too few explained events
    or no reference days: not judged, and the result says why.
    """
    shares = attribution_shares(events)
    result: dict = {
        "events": events.num_rows,
        "profiles": len(set(events.column("profile_id").to_pylist())),
        "shares": shares,
        "reference_days": len(reference),
    }
    if events.num_rows < min_events or not reference:
        result["judged"] = False
        result["reason"] = (
            f"too little data to judge: {events.num_rows} explained events (needs {min_events})"
            if events.num_rows < min_events
            else "no earlier days to compare with"
        )
        return result
    _, codes = np.unique(events.column("profile_id").to_numpy(zero_copy_only=False), return_inverse=True)
    rng = np.random.default_rng(0)
    draws = []
    for _ in range(resamples):
        drawn = np.bincount(rng.integers(0, codes.max() + 1, codes.max() + 1), minlength=codes.max() + 1)
        draws.append(attribution_shares(events, drawn[codes].astype(float)))
    baseline = {t: float(np.mean([r.get(t, 0.0) for r in reference])) for t in EVENT_TYPES}
    rows, flagged = [], []
    for t in EVENT_TYPES:
        low, high = np.quantile([d[t] for d in draws], [0.025, 0.975])
        shift = shares[t] - baseline[t]
        beyond = low > baseline[t] + warn_shift or high < baseline[t] - warn_shift
        rows.append(
            {
                "event_type": t,
                "share": shares[t],
                "share_ci_low": float(low),
                "share_ci_high": float(high),
                "reference_share": baseline[t],
                "shift": shift,
            }
        )
        if beyond:
            flagged.append(t)
    return {**result, "judged": True, "rows": rows, "flagged": flagged, "max_shift": max(abs(r["shift"]) for r in rows)}


@dataclass(frozen=True)
class ProfileExplanation:
    """One profile's explanation on one day, with the batch score it must end at."""

    profile_id: str
    day: date
    model_version: str
    batch_score: float
    explanations: Explanations


def snapshot_rows(root: StorageRoot, day: date, profile_ids: list[str]) -> pa.Table:
    """The snapshot rows of some profiles, streamed through the layered reader (memory bounded by a chunk)."""
    wanted = pa.array(profile_ids, pa.string())
    parts = [
        pa.Table.from_batches([b]).filter(pc.is_in(b.column("profile_id"), value_set=wanted))
        for b in iter_snapshot_batches(root, day, 50_000, columns=list(HISTORY_COLUMNS))
    ]
    # Layers written on different days may differ in nullability; promote to one schema.
    return pa.concat_tables(parts, promote_options="default")


def explain_profile(root: StorageRoot, day: date, profile_id: str) -> ProfileExplanation:
    """Explain a scored profile of ``day`` with the model that scored it (the version in batch_predictions)."""
    if not root.has_partition(PREDICTIONS, day):
        scored = ", ".join(str(d) for d in root.list_partitions(PREDICTIONS)[-5:]) or "none"
        raise ExplanationError(
            f"no batch_predictions for {day} under {root.uri} (latest scored days: {scored}); materialise "
            f"batch_predictions {day} first"
        )
    predictions = root.read_partition(PREDICTIONS, day, columns=["profile_id", "p_order_any", "model_version"])
    row = predictions.filter(pc.equal(predictions.column("profile_id"), profile_id))
    if row.num_rows == 0:
        raise ExplanationError(
            f"profile {profile_id!r} was not scored on {day}: it had no event in the window of daily_histories {day}, "
            "or the id is wrong"
        )
    version = row.column("model_version")[0].as_py()
    model = ModelStore(root).load(version)
    history = snapshot_rows(root, day, [profile_id])
    return ProfileExplanation(
        profile_id, day, version, float(row.column("p_order_any")[0].as_py()), explain(model, history)
    )
