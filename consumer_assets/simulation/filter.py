"""The best reachable from the events: a forward filter over the simulator's hidden intent states.

The oracle knows each profile's true state; no model can. This filter knows the
simulator's chain (transitions, order, session and cart rates) but sees only what a
model sees of a profile, reduced to day-by-day counts (views, wishlist adds, cart
adds, orders). It integrates each profile's unknown rates (how often it wakes up,
how active it is) over their priors on a grid, filters the state day by day, and
gives P(order in the next H days) at the end of a day. Its AUC says how much of the
oracle's lead any model reading counts per day could reach; a model that reads the
sequence may still do a little better (categories, within-day order).

Used by ``benchmarks/training.py``; never by the platform.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.special import gammaln, xlogy

from consumer_assets.simulation.world import (
    AFTER_ORDER,
    CART_PROBABILITY,
    DORMANT,
    MEAN_VIEWS_PER_SESSION,
    ORDER_PROBABILITY,
    SESSIONS_PER_DAY,
    TRANSITIONS,
    WEEKDAY_FACTOR,
    WISHLIST_PROBABILITY,
    SimulationConfig,
)

COUNTED = ("view", "wishlist", "add_to_cart", "order")
MAX_SESSIONS = 40


def _grid(draw: np.ndarray, points: int) -> np.ndarray:
    """Midpoints of ``points`` equal-probability bins of a prior, from a large sample of it."""
    return np.quantile(draw, (np.arange(points) + 0.5) / points)


def _priors(points_wake: int, points_activity: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Grids of the per-profile rates, drawn as the simulator draws them (``ShopSimulator.__init__``)."""
    rng = np.random.default_rng(seed)
    wake = _grid(np.clip(rng.lognormal(np.log(0.04), 1.1, 200_000), 0.002, 0.9), points_wake)
    activity = _grid(rng.lognormal(-0.3, 0.8, 200_000), points_activity)
    return wake, activity


def _transition(wake: np.ndarray, ordered: bool) -> np.ndarray:
    """(wake grid, 4, 4) transition matrices for one day, given whether the profile ordered that day."""
    matrices = np.repeat(TRANSITIONS[None], len(wake), axis=0).copy()
    matrices[:, DORMANT, DORMANT] = 1 - wake
    matrices[:, DORMANT, 1] = wake
    if ordered:
        matrices[:] = AFTER_ORDER
    return matrices


def _start_distribution(wake: np.ndarray, burn_in_days: int) -> np.ndarray:
    """(wake grid, 4): the state on the first simulated day, after the burn-in from dormant."""
    quiet, ordered = _transition(wake, False), _transition(wake, True)
    step = ORDER_PROBABILITY[None, :, None] * ordered + (1 - ORDER_PROBABILITY[None, :, None]) * quiet
    mass = np.zeros((len(wake), 4))
    mass[:, DORMANT] = 1.0
    for _ in range(burn_in_days):
        mass = np.einsum("gs,gst->gt", mass, step)
    return mass


def _emission_log(counts: np.ndarray, weekday_factor: float, activity: np.ndarray) -> np.ndarray:
    """log P(a day's counts | state, activity): (profiles, activity grid, 4).

    Sessions are Poisson, each with a geometric number of events; an order forces at
    least one session; each event is a cart add, a wishlist add or a view with the
    state's probabilities.
    """
    views, wishlist, cart, ordered = (counts[:, k].astype(float) for k in range(4))
    events = views + wishlist + cart
    rate = SESSIONS_PER_DAY[None, None, :] * activity[None, :, None] * weekday_factor  # (1, A, 4)
    p_cart, p_wish = CART_PROBABILITY[None, None, :], WISHLIST_PROBABILITY[None, None, :]
    p_view = 1 - p_cart - p_wish
    types = (
        xlogy(cart[:, None, None], p_cart)
        + xlogy(wishlist[:, None, None], p_wish)
        + xlogy(views[:, None, None], p_view)
    )
    with np.errstate(divide="ignore"):
        order = np.where(ordered[:, None, None] > 0, np.log(ORDER_PROBABILITY), np.log1p(-ORDER_PROBABILITY))
    result = np.where(events[:, None, None] == 0, -rate, -np.inf)  # no session at all
    busy = np.flatnonzero(events > 0)
    if len(busy):
        e = events[busy][:, None]  # (B, 1)
        n = np.arange(1, MAX_SESSIONS + 1)[None, :]  # (1, N)
        q = 1 / MEAN_VIEWS_PER_SESSION
        with np.errstate(invalid="ignore", divide="ignore"):
            negbin = (
                gammaln(e) - gammaln(n) - gammaln(np.maximum(e - n + 1, 1)) + n * np.log(q) + (e - n) * np.log1p(-q)
            )
        negbin = np.where(n <= e, negbin, -np.inf)  # (B, N)
        lam = rate[0]  # (A, 4)
        with np.errstate(divide="ignore"):
            poisson = (
                n[:, :, None, None] * np.log(lam)[None, None] - lam[None, None] - gammaln(n + 1)[:, :, None, None]
            )  # (1, N, A, 4)
        poisson = np.repeat(poisson, len(busy), axis=0)
        forced = ordered[busy] > 0
        poisson[forced, 0] = np.logaddexp(poisson[forced, 0], -lam[None])  # an order turns "no session" into one
        total = negbin[:, :, None, None] + poisson
        result[busy] = np.logaddexp.reduce(total, axis=1)
    return result + types + order


def daily_counts(events: pa.Table, profile_index: dict[str, int]) -> np.ndarray:
    """(profiles, 4) counts of views, wishlist adds, cart adds and orders of one day's events."""
    counts = np.zeros((len(profile_index), len(COUNTED)))
    keys = pa.array(list(profile_index))
    for k, event_type in enumerate(COUNTED):
        ids = events.filter(pc.equal(events.column("event_type"), event_type)).column("profile_id")
        position = pc.index_in(ids, value_set=keys)
        position = pc.drop_null(position).to_numpy(zero_copy_only=False)
        np.add.at(counts[:, k], position, 1)
    return counts


def _order_probability(alpha: np.ndarray, ordered_today: np.ndarray, wake: np.ndarray, horizon: int) -> np.ndarray:
    """P(order in the next ``horizon`` days) from the filtered joint weights, as ``ShopSimulator.order_probability``
    computes it."""
    posterior = np.exp(alpha)  # (P, W, A, 4), sums to one per profile
    no_order = 1 - ORDER_PROBABILITY
    quiet = _transition(wake, False)
    probability = np.zeros(len(alpha))
    for flag in (False, True):
        rows = ordered_today == flag
        if not rows.any():
            continue
        mass = np.einsum("pgas,gst->pgat", posterior[rows], _transition(wake, flag))
        for _ in range(horizon - 1):
            mass = np.einsum("pgas,gst->pgat", mass * no_order, quiet)
        probability[rows] = 1 - np.einsum("pgat,t->p", mass, no_order)
    return probability


def filter_probabilities(
    days: Iterable[tuple[date, pa.Table]],
    profile_ids: list[str],
    horizon: int,
    config: SimulationConfig,
    at: Collection[date],
    grid: tuple[int, int] = (8, 10),
) -> dict[date, np.ndarray]:
    """P(order in the H days after each day of ``at`` | the profiles' daily counts since the first simulated day).

    ``days`` must be every simulated day from the first, in order, as (day, raw events).
    """
    wake, activity = _priors(*grid)
    index = {p: i for i, p in enumerate(profile_ids)}
    # log of the joint weight of (wake, activity, state) per profile, kept normalised per profile.
    start = np.log(np.maximum(_start_distribution(wake, config.burn_in_days), 1e-300))
    alpha = np.broadcast_to(start[None, :, None, :], (len(profile_ids), len(wake), len(activity), 4)).copy()
    alpha -= np.log(len(wake) * len(activity))
    ordered_last, predictions = None, {}
    for day, events in days:
        counts = daily_counts(events, index)
        if ordered_last is not None:
            moved = np.empty_like(alpha)
            for flag in (False, True):
                rows = ordered_last == flag
                if rows.any():
                    m = np.max(alpha[rows], axis=3, keepdims=True)
                    moved[rows] = (
                        np.log(np.einsum("pgas,gst->pgat", np.exp(alpha[rows] - m), _transition(wake, flag)) + 1e-300)
                        + m
                    )
            alpha = moved
        alpha = alpha + _emission_log(counts, WEEKDAY_FACTOR[day.weekday()], activity)[:, None, :, :]
        alpha -= np.logaddexp.reduce(alpha.reshape(len(profile_ids), -1), axis=1)[:, None, None, None]
        ordered_last = counts[:, 3] > 0
        if day in at:
            predictions[day] = _order_probability(alpha, ordered_last, wake, horizon)
    return predictions
