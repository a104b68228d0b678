from collections import Counter
from datetime import date, timedelta

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from consumer_assets.simulation import Drift, ShopSimulator, SimulationConfig

START = date(2026, 10, 1)


@pytest.fixture(scope="module")
def days():
    return list(ShopSimulator(SimulationConfig(profiles=8000, seed=11)).simulate(START, 21))


def test_funnel_rates_are_those_of_a_real_shop(days):
    counts = Counter()
    for day in days:
        counts.update(day.events.column("event_type").to_pylist())
    total = sum(counts.values())
    assert 0.93 < counts["view"] / total < 0.98
    assert 0.015 < counts["add_to_cart"] / total < 0.035
    assert 0 < counts["order"] / total < 0.01
    assert counts["wishlist"] > 0 and counts["remove_from_cart"] > 0


def test_activity_is_heavy_tailed(days):
    per_profile = Counter()
    for day in days:
        per_profile.update(day.events.column("profile_id").to_pylist())
    volumes = np.sort(np.array(list(per_profile.values())))[::-1]
    top_decile_share = volumes[: len(volumes) // 10].sum() / volumes.sum()
    assert top_decile_share > 0.35
    assert np.median(volumes) < volumes.mean()


def test_same_seed_same_events_other_seed_other_events():
    a = ShopSimulator(SimulationConfig(profiles=500, seed=3)).simulate_day(START)
    b = ShopSimulator(SimulationConfig(profiles=500, seed=3)).simulate_day(START)
    c = ShopSimulator(SimulationConfig(profiles=500, seed=4)).simulate_day(START)
    assert a.events.equals(b.events) and a.truth.equals(b.truth)
    assert not a.events.equals(c.events)


def test_events_are_inside_their_day_and_articles_turn_over(days):
    first, last = days[0], days[-1]
    for day in (first, last):
        ts = day.events.column("ts").to_pylist()
        assert all(t.date() == day.day for t in ts)
    assert len(
        set(first.events.column("article_id").to_pylist()) & set(last.events.column("article_id").to_pylist())
    ) < 0.8 * len(set(last.events.column("article_id").to_pylist()))


def test_truth_is_the_probability_of_ordering_in_the_next_days(days):
    """The truth at day D predicts the orders of D+1..D+7, and is calibrated."""
    horizon = 7
    day = days[5]
    ordered = set()
    for later in days[6 : 6 + horizon]:
        events = later.events
        ordered |= {
            p
            for p, t in zip(events.column("profile_id").to_pylist(), events.column("event_type").to_pylist())
            if t == "order"
        }
    profiles = day.truth.column("profile_id").to_pylist()
    p = day.truth.column("p_order_any").to_numpy()
    y = np.array([pid in ordered for pid in profiles])
    assert ((p >= 0) & (p <= 1)).all()
    assert roc_auc_score(y, p) > 0.8
    assert abs(p.mean() - y.mean()) < 0.25 * y.mean()


def test_the_hidden_intent_drives_both_truth_and_behaviour(days):
    """Ready profiles order far more often and add to cart more than browsing ones: the state shows in recent events."""
    day = days[10]
    state = dict(zip(day.truth.column("profile_id").to_pylist(), day.truth.column("state").to_pylist()))
    p = day.truth.column("p_order_any").to_numpy()
    states = np.array(day.truth.column("state").to_pylist())
    assert p[states == "ready"].mean() > 2 * p[states == "browsing"].mean() > 2 * p[states == "dormant"].mean() > 0
    cart_share = {}
    for name in ("browsing", "ready"):
        types = [
            t
            for pid, t in zip(day.events.column("profile_id").to_pylist(), day.events.column("event_type").to_pylist())
            if state[pid] == name
        ]
        cart_share[name] = types.count("add_to_cart") / len(types)
    assert cart_share["ready"] > 3 * cart_share["browsing"]


def _share(events, column: str) -> dict:
    values, counts = np.unique(np.asarray(events.column(column).to_pylist(), dtype=object), return_counts=True)
    return dict(zip(values, counts / counts.sum()))


def test_drift_scenarios_start_on_their_day_and_leave_earlier_days_alone():
    start = date(2026, 10, 1)
    shift_day = start + timedelta(days=2)
    plain = list(ShopSimulator(SimulationConfig(profiles=3000, seed=5)).simulate(start, 3))
    season = list(
        ShopSimulator(SimulationConfig(profiles=3000, seed=5, drift=Drift(season_shift_from=shift_day))).simulate(
            start, 3
        )
    )
    fault = list(
        ShopSimulator(SimulationConfig(profiles=3000, seed=5, drift=Drift(tracking_fault_from=shift_day))).simulate(
            start, 3
        )
    )
    for k in range(2):
        assert season[k].events.equals(plain[k].events) and fault[k].events.equals(plain[k].events)

    before, after = _share(plain[2].events, "category_id"), _share(season[2].events, "category_id")
    moved = 0.5 * sum(abs(after.get(c, 0) - before.get(c, 0)) for c in set(before) | set(after))
    assert moved > 0.1  # total variation distance of the category mix (about 0.17 here)
    assert season[2].events.num_rows == plain[2].events.num_rows

    views = lambda table: sum(1 for t in table.column("event_type").to_pylist() if t == "view")  # noqa: E731
    assert views(fault[2].events) == pytest.approx(0.1 * views(plain[2].events), rel=0.1)
    assert fault[2].events.num_rows - views(fault[2].events) == plain[2].events.num_rows - views(plain[2].events)
    assert fault[2].truth.equals(plain[2].truth)  # behaviour unchanged: only tracking lost events
