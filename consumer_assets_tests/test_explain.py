"""Per-event explanations: additive, equal to the batch score at the end, one pass per profile."""

from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pytest
import torch

from consumer_assets.model.encoding import (
    CONTINUOUS,
    HEAD,
    NEVER_S,
    PROFILE,
    KeptEvents,
    Vocabulary,
    VocabularyLimits,
    days_before_cutoff,
    encode,
)
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import LoadedModel
from consumer_assets.serving.explain import (
    EARLIER_DAY,
    attribution_drift,
    attribution_shares,
    contribution_summary,
    empty_history_score,
    explain,
    iter_profiles,
    prefix_profiles,
)

pytestmark = (
    pytest.mark.slow
)  # tens of seconds of Spark, training or servers: `make test` runs it, `make test-fast` does not

TYPES = np.array(["view", "wishlist", "add_to_cart", "remove_from_cart", "order"])


def day_structs(
    types: np.ndarray, price: np.ndarray, age: np.ndarray, snapshot_day: date = date(2026, 11, 30)
) -> list[dict]:
    """The ``days`` column of one row: per active day, its date, counts per event type and spend."""
    dates = [snapshot_day - timedelta(days=int(k)) for k in days_before_cutoff(age)]
    days = []
    for day in sorted(set(dates)):
        on = np.array([d == day for d in dates])
        counts = {t: int((types[on] == t).sum()) for t in TYPES}
        days.append(
            {"date": day, "events": int(on.sum()), **counts, "spend": float(price[on & (types == "order")].sum())}
        )
    return days


def histories(lengths: list[int], seed: int = 0, with_days: bool = False) -> pa.Table:
    """Snapshot rows whose window totals agree with their events, as daily_histories writes them (with its
    ``days`` column when ``with_days``)."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in lengths:
        gaps = rng.exponential(20_000, n)
        age = np.cumsum(gaps[::-1])[::-1] if n else np.zeros(0)  # seconds before the cut-off, oldest first
        types = rng.choice(TYPES, n, p=[0.8, 0.05, 0.08, 0.03, 0.04])
        price = rng.uniform(5, 80, n)
        rows.append(
            {
                "profile_id": f"p{len(rows)}",
                "length": n,
                "event_type": types.tolist(),
                "article_id": [f"a{k}" for k in rng.integers(0, 30, n)],
                "category_id": [f"c{k}" for k in rng.integers(0, 4, n)],
                "brand_id": [f"b{k}" for k in rng.integers(0, 5, n)],
                "price": price.tolist(),
                "platform": ["web"] * n,
                "dt_prev_s": np.r_[0.0, gaps[1:]].tolist() if n else [],
                "dt_cutoff_s": age.tolist(),
                "hour": rng.integers(0, 24, n).astype(float).tolist(),
                "weekday": rng.integers(0, 7, n).astype(float).tolist(),
                "window_events": float(n + 3),  # three events older than the kept sequence
                **{f"window_{t}": float((types == t).sum()) for t in TYPES},
                "window_spend": float(price[types == "order"].sum()),
                "active_days": float(len(set(np.floor(age / 86_400)))) + 1,
                "recency_s": float(age[-1]) if n else 0.0,
                **({"days": day_structs(types, price, age)} if with_days else {}),
            }
        )
    return pa.Table.from_pylist(rows)


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    table = histories([12] * 40, seed=1)
    vocabulary = Vocabulary.build([table], VocabularyLimits(min_count=1))
    torch.manual_seed(0)
    config = ModelConfig(targets=("order_any", "order_c1"), hidden_size=12, max_length=20)
    network = ConsumerLSTM.for_vocabulary(config, vocabulary)
    network.fit_standardisation(encode(table, vocabulary, 20).profile)
    with torch.no_grad():
        network.head[-1].weight.mul_(8.0)  # scores that move visibly from event to event
        network.calibration_scale.copy_(torch.tensor([0.8, 1.0]))
        network.calibration_bias.copy_(torch.tensor([-1.5, 0.0]))
    return LoadedModel("v-explain", config, vocabulary, network.eval(), {})


def test_contributions_add_up_to_the_score_minus_the_empty_history_score(model):
    table = histories([1, 5, 17, 30, 3], seed=2)  # 30 > max_length: only the last 20 events are explained
    explained = explain(model, table, batch_size=2)
    scores = score_table(model, table)[:, 0]
    empty = float(empty_history_score(model)[0])
    assert explained.empty_score == pytest.approx(empty)
    by_profile = dict(iter_profiles(explained.events))
    assert list(by_profile) == table.column("profile_id").to_pylist()
    for k, profile in enumerate(table.column("profile_id").to_pylist()):
        events = by_profile[profile]
        assert events.num_rows == min(table.column("length")[k].as_py(), 20)
        contributions = events.column("contribution").to_numpy().astype(np.float64)
        trajectory = events.column("probability").to_numpy()
        assert contributions.sum() == pytest.approx(scores[k] - empty, abs=1e-5)
        assert trajectory[-1] == pytest.approx(scores[k], abs=1e-5)  # the last point is the batch score
        assert events.column("position").to_pylist() == list(range(events.num_rows))
    assert np.abs(explained.events.column("contribution").to_numpy()).max() > 1e-3


def test_days_before_the_kept_events_are_steps_that_explanations_count_too(model):
    table = histories([40, 8, 0], seed=6, with_days=True)  # 40 > max_length 20: its older days become day steps
    layout = KeptEvents.of(table, 20)
    dates = [[d["date"] for d in row] for row in table.column("days").to_pylist()]
    first_kept_day = date(2026, 11, 30) - timedelta(
        days=int(days_before_cutoff(table.column("dt_cutoff_s")[0].values.to_numpy()[20]))
    )
    assert layout.days.count.tolist() == [sum(d < first_kept_day for d in dates[0]), 0, 0]
    assert layout.days.count[0] > 0 and layout.lengths.tolist() == [layout.days.count[0] + 20, 8, 1]
    batch = encode(table, model.vocabulary, 20)
    day_step = CONTINUOUS.index("day_step")
    assert (
        batch.continuous[0, : layout.days.count[0], day_step].eq(1).all()
        and batch.continuous[0, layout.days.count[0] :, day_step].eq(0).all()
    )
    without_days = encode(table.drop_columns(["days"]), model.vocabulary, 20)
    assert without_days.lengths.tolist() == [20, 8, 1]  # histories without per-day counts: the kept events only

    explained = explain(model, table)
    scores = score_table(model, table)[:, 0]
    first = dict(iter_profiles(explained.events))["p0"]
    assert first.column("event_type").to_pylist()[: layout.days.count[0]] == [EARLIER_DAY] * int(layout.days.count[0])
    assert first.num_rows == layout.lengths[0] and first.column("position").to_pylist() == list(range(first.num_rows))
    assert first.column("contribution").to_numpy().astype(np.float64).sum() == pytest.approx(
        scores[0] - explained.empty_score, abs=1e-5
    )
    raw, _ = prefix_profiles(table, 20)
    after_days = raw[0, layout.days.count[0] - 1]  # the profile after its last day step, before its kept events
    kept_ages = table.column("dt_cutoff_s")[0].values.to_numpy()[20:]
    assert after_days[PROFILE.index("window_events")] == table.column("window_events")[0].as_py() - 20
    assert after_days[PROFILE.index("active_days")] == table.column("active_days")[0].as_py() - len(
        set(days_before_cutoff(kept_ages))
    )
    assert (
        after_days[PROFILE.index("recency_s")]
        == (date(2026, 11, 30) - max(d for d in dates[0] if d < first_kept_day)).days * 86_400
    )


def test_prefix_profiles_subtract_the_events_still_to_come():
    table = histories([6], seed=3)
    raw, layout = prefix_profiles(table, 10)
    row = table.to_pylist()[0]
    assert layout.kept.tolist() == [6]
    assert raw[0, -1, : len(PROFILE)].tolist() == pytest.approx([row[name] for name in PROFILE])
    for event_type in TYPES:  # the time since the last event of each type, as it stood after each event
        for t in range(6):
            seen = [row["dt_cutoff_s"][i] for i in range(t + 1) if row["event_type"][i] == event_type]
            assert raw[0, t, HEAD.index(f"recency_{event_type}_s")] == pytest.approx(seen[-1] if seen else NEVER_S), (
                event_type,
                t,
            )
    assert raw[0, 0, PROFILE.index("window_events")] == row["window_events"] - 5
    assert raw[0, :, PROFILE.index("recency_s")][:-1].tolist() == pytest.approx(row["dt_cutoff_s"][:-1])
    orders = [t == "order" for t in row["event_type"]]
    assert raw[0, 0, PROFILE.index("window_order")] == row["window_order"] - sum(orders[1:])


def test_the_summary_groups_by_event_type_and_time_before_the_cutoff(model):
    explained = explain(model, histories([10] * 20, seed=4))
    summary = contribution_summary(explained.events)
    assert sum(r["events"] for r in summary) == explained.events.num_rows
    assert sum(r["total_contribution"] for r in summary) == pytest.approx(
        float(np.sum(explained.events.column("contribution").to_numpy(), dtype=np.float64)), abs=1e-4
    )
    assert {r["event_type"] for r in summary} <= set(TYPES)
    assert all(0.0 <= r["share_up"] <= 1.0 for r in summary)


def test_attribution_drift_flags_a_shift_and_refuses_to_judge_on_too_little_data(model):
    explained = explain(model, histories([15] * 60, seed=5)).events
    shares = attribution_shares(explained)
    assert sum(shares.values()) == pytest.approx(1.0)
    same = attribution_drift(explained, [shares, shares], min_events=100, warn_shift=0.1)
    assert same["judged"] and same["flagged"] == [] and same["max_shift"] == pytest.approx(0.0, abs=1e-9)
    view_heavy = {t: (0.98 if t == "view" else 0.02 / 4) for t in shares}
    moved = attribution_drift(explained, [view_heavy], min_events=100, warn_shift=0.1)
    assert "view" in moved["flagged"]
    row = next(r for r in moved["rows"] if r["event_type"] == "view")
    assert row["share_ci_low"] <= row["share"] <= row["share_ci_high"]
    scarce = attribution_drift(explained.slice(0, 50), [view_heavy], min_events=100, warn_shift=0.1)
    assert not scarce["judged"] and "too little data to judge: 50 explained events" in scarce["reason"]
