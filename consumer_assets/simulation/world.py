"""A simulated fashion shop whose true purchase propensities are known.

Each profile carries a hidden intent state that moves day by day through a Markov
chain: dormant -> browsing -> interested -> ready to buy. The state drives what the
profile does (how many sessions, how many cart adds, which categories it looks at)
and whether it orders. A model sees only the events, so it has to infer the state
from them, and *when* a cart add happened matters, not only how many there were:
the order of events carries signal that counts of events do not.

Because the chain is known, the probability that a profile orders in the next H
days given its state at the end of a day is computed exactly (no sampling), and the
AUC of that probability (the oracle's) is the best any model can reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.ingest.contract import EVENT_TYPES

DORMANT, BROWSING, INTERESTED, READY = range(4)
STATE_NAMES = ("dormant", "browsing", "interested", "ready")

PLATFORMS = ("web", "ios", "android")
COLOURS = ("black", "white", "navy", "grey", "beige", "red", "green", "blue")
MATERIALS = ("cotton", "wool", "linen", "denim", "leather", "polyester", "viscose")

# Daily transitions for browsing/interested/ready. A dormant profile wakes up with
# its own rate (the heavy tail of activity), so row 0 is left empty here and filled
# per profile.
TRANSITIONS = np.array(
    [
        [0.00, 0.00, 0.00, 0.00],
        [0.35, 0.50, 0.12, 0.03],
        [0.10, 0.22, 0.43, 0.25],
        [0.05, 0.15, 0.20, 0.60],
    ]
)
AFTER_ORDER = np.array([0.5, 0.5, 0.0, 0.0])
ORDER_PROBABILITY = np.array([0.0, 0.002, 0.02, 0.25])
SESSIONS_PER_DAY = np.array([0.0, 1.0, 1.3, 1.6])
CART_PROBABILITY = np.array([0.0, 0.008, 0.035, 0.08])
WISHLIST_PROBABILITY = np.array([0.0, 0.004, 0.012, 0.012])
REMOVE_AFTER_CART = 0.25
INTENT_FOCUS = np.array([0.0, 0.0, 0.6, 0.75])
WEEKDAY_FACTOR = np.array([1.0, 0.95, 0.95, 1.0, 1.05, 1.2, 1.25])  # Monday first
HOUR_WEIGHTS = np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 4, 4, 5, 6, 5, 5, 5, 5, 6, 8, 10, 11, 9, 5, 2], float)
MEAN_VIEWS_PER_SESSION = 6.0
MEAN_SECONDS_BETWEEN_EVENTS = 45.0


@dataclass(frozen=True)
class Drift:
    """Scenarios that change the shop or its tracking from a given day on, for monitoring to catch.

    ``season_shift_from``: from that day, a share ``season_shift_strength`` of the
    browsing that follows taste moves to the categories of the coming season (each
    category's place taken by another: a fixed permutation), as when a shop turns from
    summer to winter. ``tracking_fault_from``: from that day, the tracker loses a share
    ``tracking_fault_drop`` of the ``view`` events; behaviour is unchanged, only what
    the shop records of it.
    """

    season_shift_from: date | None = None
    season_shift_strength: float = 0.6
    tracking_fault_from: date | None = None
    tracking_fault_drop: float = 0.9

    @staticmethod
    def active(start: date | None, day: date) -> bool:
        return start is not None and day >= start


@dataclass(frozen=True)
class SimulationConfig:
    """Sizes and seeds of a simulated shop. Defaults give a few thousand events a day per 1,000 profiles."""

    profiles: int = 5_000
    seed: int = 7
    horizon_days: int = 7
    categories: int = 20
    brands: int = 150
    articles_per_category: int = 150
    article_turnover: float = 0.03  # share of each category's articles replaced every day
    burn_in_days: int = 30
    drift: Drift = field(default_factory=Drift)


@dataclass
class DayEvents:
    """One simulated day: the events as columns, the catalogue export of the day, and each profile's truth at the
    day's end."""

    day: date
    events: pa.Table
    catalogue: pa.Table
    truth: pa.Table


@dataclass
class _Catalogue:
    rng: np.random.Generator
    config: SimulationConfig
    next_id: int = 0
    article_ids: list[np.ndarray] = field(default_factory=list)
    article_brands: list[np.ndarray] = field(default_factory=list)
    article_prices: list[np.ndarray] = field(default_factory=list)
    launched: dict[int, int] = field(default_factory=dict)  # article id -> day index of its launch (0: the first day)
    days_run: int = 0

    def __post_init__(self) -> None:
        c = self.config
        self.price_level = self.rng.lognormal(np.log(40), 0.5, c.categories)
        self.category_brands = [
            self.rng.choice(c.brands, size=max(3, c.brands // 5), replace=False) for _ in range(c.categories)
        ]
        for k in range(c.categories):
            ids, brands, prices = self._new_articles(k, c.articles_per_category)
            self.article_ids.append(ids)
            self.article_brands.append(brands)
            self.article_prices.append(prices)
        # The first articles launched up to half a year before; drawn apart from the shop's generator, which the
        # behaviour follows.
        ages = np.random.default_rng([c.seed, 1729]).integers(1, 181, len(self.launched))
        self.launched = {article: -int(age) for article, age in zip(self.launched, ages, strict=True)}

    def _new_articles(self, category: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        ids = np.arange(self.next_id, self.next_id + n)
        self.next_id += n
        brands = self.rng.choice(self.category_brands[category], size=n)
        prices = np.round(self.rng.lognormal(np.log(self.price_level[category]), 0.4, n), 2)
        self.launched.update(dict.fromkeys(ids.tolist(), self.days_run + 1))  # on sale from the next day
        return ids, brands, prices

    def turn_over(self) -> None:
        """Articles come and go: retire the oldest share of each category, add new ones."""
        for k in range(self.config.categories):
            n = max(1, int(round(self.config.article_turnover * len(self.article_ids[k]))))
            for retired in self.article_ids[k][:n].tolist():
                del self.launched[retired]
            ids, brands, prices = self._new_articles(k, n)
            self.article_ids[k] = np.concatenate([self.article_ids[k][n:], ids])
            self.article_brands[k] = np.concatenate([self.article_brands[k][n:], brands])
            self.article_prices[k] = np.concatenate([self.article_prices[k][n:], prices])
        self.days_run += 1

    def export(self, day: date) -> pa.Table:
        """The article database on ``day``: every article on sale, with the attributes the events carry and more
        (colour and material follow the id)."""
        ids = np.concatenate(self.article_ids)
        launch = np.array([self.launched[a] for a in ids.tolist()]) - self.days_run
        categories = np.repeat(np.arange(len(self.article_ids)), [len(a) for a in self.article_ids])
        return pa.table(
            {
                "article_id": pa.array(np.char.add("a", ids.astype(str)).astype(object)),
                "brand_id": pa.array(np.char.add("b", np.concatenate(self.article_brands).astype(str)).astype(object)),
                "category_id": pa.array(np.char.add("c", categories.astype(str)).astype(object)),
                "price": pa.array(np.concatenate(self.article_prices)),
                "launch_date": pa.array([day + timedelta(days=int(d)) for d in launch], pa.date32()),
                "colour": pa.array(np.array(COLOURS, dtype=object)[ids * 7919 % len(COLOURS)]),
                "material": pa.array(np.array(MATERIALS, dtype=object)[ids * 104729 % len(MATERIALS)]),
            }
        )

    def pick(self, categories: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Articles for events of the given categories; popularity within a category is heavy-tailed.

        New arrivals sit at the end of each list and get the most attention, as in a
        shop that promotes them, so yesterday's vocabulary never covers today fully.
        """
        article = np.empty(len(categories), np.int64)
        brand = np.empty(len(categories), np.int64)
        price = np.empty(len(categories))
        for k in np.unique(categories):
            mask = categories == k
            n = len(self.article_ids[k])
            idx = n - 1 - np.minimum((u[mask] ** 2.5 * n).astype(np.int64), n - 1)
            article[mask] = self.article_ids[k][idx]
            brand[mask] = self.article_brands[k][idx]
            price[mask] = self.article_prices[k][idx]
        return article, brand, price


class ShopSimulator:
    """Steps the shop one day at a time; deterministic for a given config."""

    def __init__(self, config: SimulationConfig = SimulationConfig()):
        self.config = config
        self.rng = np.random.default_rng(config.seed)
        n, c = config.profiles, config.categories
        rng = self.rng
        self.profile_ids = np.array([f"p{i:07d}" for i in range(n)], dtype=object)
        # Heavy tail: most profiles wake up rarely, a few are nearly always around.
        self.wake_rate = np.clip(rng.lognormal(np.log(0.04), 1.1, n), 0.002, 0.9)
        self.activity = rng.lognormal(-0.3, 0.8, n)
        popularity = rng.dirichlet(np.full(c, 2.0))
        self.taste_cdf = np.cumsum(rng.dirichlet(popularity * c * 0.4, size=n).clip(1e-9), axis=1)
        self.taste_cdf /= self.taste_cdf[:, -1:]
        self.platform = rng.choice(len(PLATFORMS), size=n, p=[0.45, 0.3, 0.25])
        self.state = np.zeros(n, np.int64)
        self.intent_category = self._draw_categories(np.arange(n))
        self.catalogue = _Catalogue(rng, config)
        self._sequence = 0
        for _ in range(config.burn_in_days):
            ordered = rng.random(n) < ORDER_PROBABILITY[self.state]
            self._transition(ordered)

    def _draw_categories(self, profiles: np.ndarray) -> np.ndarray:
        u = self.rng.random(len(profiles))
        return (self.taste_cdf[profiles] < u[:, None]).sum(axis=1)

    def _transition_rows(self, ordered: np.ndarray) -> np.ndarray:
        rows = TRANSITIONS[self.state].copy()
        dormant = self.state == DORMANT
        rows[dormant] = 0.0
        rows[dormant, DORMANT] = 1 - self.wake_rate[dormant]
        rows[dormant, BROWSING] = self.wake_rate[dormant]
        rows[ordered] = AFTER_ORDER
        return rows

    def _transition(self, ordered: np.ndarray) -> None:
        rows = self._transition_rows(ordered)
        u = self.rng.random(len(rows))
        new_state = (np.cumsum(rows, axis=1) < u[:, None]).sum(axis=1).clip(0, 3)
        newly_interested = (new_state >= INTERESTED) & (self.state < INTERESTED)
        self.intent_category[newly_interested] = self._draw_categories(np.flatnonzero(newly_interested))
        self.state = new_state

    def order_probability(self, ordered_today: np.ndarray, horizon: int) -> np.ndarray:
        """Exact P(at least one order in the next ``horizon`` days | state at today's end)."""
        # mass[i, s]: P(profile i is in state s on the coming day and has not ordered yet).
        mass = self._transition_rows(ordered_today)
        no_order = 1 - ORDER_PROBABILITY
        for _ in range(horizon - 1):
            survive = mass * no_order
            mass = survive @ TRANSITIONS
            mass[:, DORMANT] += survive[:, DORMANT] * (1 - self.wake_rate)
            mass[:, BROWSING] += survive[:, DORMANT] * self.wake_rate
        return 1 - mass @ no_order

    def simulate_day(self, day: date) -> DayEvents:
        rng, cfg = self.rng, self.config
        n = cfg.profiles
        state = self.state
        ordered = rng.random(n) < ORDER_PROBABILITY[state]
        rate = SESSIONS_PER_DAY[state] * self.activity * WEEKDAY_FACTOR[day.weekday()]
        sessions = rng.poisson(rate)
        sessions[ordered] = np.maximum(sessions[ordered], 1)

        session_profile = np.repeat(np.arange(n), sessions)
        hours = rng.choice(24, size=len(session_profile), p=HOUR_WEIGHTS / HOUR_WEIGHTS.sum())
        session_start = hours * 3600 + rng.integers(0, 3600, len(session_profile))
        views = rng.geometric(1 / MEAN_VIEWS_PER_SESSION, len(session_profile))
        event_session = np.repeat(np.arange(len(session_profile)), views)
        profile = session_profile[event_session]
        s = state[profile]
        u = rng.random(len(profile))
        kind = np.zeros(len(profile), np.int64)
        kind[u < CART_PROBABILITY[s] + WISHLIST_PROBABILITY[s]] = 1
        kind[u < CART_PROBABILITY[s]] = 2

        # A remove follows some cart adds within the same session.
        removes = np.flatnonzero((kind == 2) & (rng.random(len(kind)) < REMOVE_AFTER_CART))
        event_session = np.concatenate([event_session, event_session[removes]])
        profile = np.concatenate([profile, profile[removes]])
        kind = np.concatenate([kind, np.full(len(removes), 3)])

        focus = rng.random(len(profile)) < INTENT_FOCUS[state[profile]]
        category = np.where(focus, self.intent_category[profile], 0)
        taste = ~focus
        category[taste] = (self.taste_cdf[profile[taste]] < rng.random(taste.sum())[:, None]).sum(axis=1)
        if Drift.active(cfg.drift.season_shift_from, day):
            category = self._season_shift(category, taste, day)

        # Events of a session follow each other by exponential gaps; the remove goes last.
        order_in_session = np.argsort(event_session, kind="stable")
        event_session, profile, kind, category = (a[order_in_session] for a in (event_session, profile, kind, category))
        gaps = rng.exponential(MEAN_SECONDS_BETWEEN_EVENTS, len(profile))
        first = np.r_[True, event_session[1:] != event_session[:-1]]
        gaps[first] = 0
        seconds = session_start[event_session] + _cumsum_by_group(gaps, first)

        # An order closes the profile's last session of the day, in its intent category.
        order_profiles = np.flatnonzero(ordered)
        last_session_start = np.zeros(n)
        np.maximum.at(last_session_start, session_profile, session_start)
        last_event = np.zeros(n)
        np.maximum.at(last_event, profile, seconds)
        order_seconds = np.maximum(last_event[order_profiles], last_session_start[order_profiles]) + rng.exponential(
            60, len(order_profiles)
        )
        profile = np.concatenate([profile, order_profiles])
        kind = np.concatenate([kind, np.full(len(order_profiles), 4)])
        category = np.concatenate([category, self.intent_category[order_profiles]])
        seconds = np.concatenate([seconds, order_seconds])
        seconds = np.minimum(seconds, 86_400 - 0.001)

        article, brand, price = self.catalogue.pick(category, rng.random(len(profile)))
        platform = np.where(rng.random(len(profile)) < 0.85, self.platform[profile], rng.integers(0, 3, len(profile)))

        chronological = np.lexsort((seconds, profile))
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        ts_ms = int(midnight.timestamp() * 1000) + (seconds[chronological] * 1000).astype(np.int64)
        sequence = np.arange(self._sequence, self._sequence + len(profile))
        self._sequence += len(profile)
        events = pa.table(
            {
                "event_id": pa.array([f"e{day:%Y%m%d}-{i:x}" for i in sequence]),
                "profile_id": pa.array(self.profile_ids[profile[chronological]]),
                "ts": pa.array(ts_ms, pa.timestamp("ms", tz="UTC")),
                "event_type": pa.array(np.array(EVENT_TYPES, dtype=object)[kind[chronological]]),
                "article_id": pa.array(np.char.add("a", article[chronological].astype(str)).astype(object)),
                "brand_id": pa.array(np.char.add("b", brand[chronological].astype(str)).astype(object)),
                "category_id": pa.array(np.char.add("c", category[chronological].astype(str)).astype(object)),
                "price": pa.array(price[chronological]),
                "platform": pa.array(np.array(PLATFORMS, dtype=object)[platform[chronological]]),
            }
        )
        if Drift.active(cfg.drift.tracking_fault_from, day):
            events = self._tracking_fault(events, day)
        truth = pa.table(
            {
                "profile_id": pa.array(self.profile_ids),
                "p_order_any": pa.array(self.order_probability(ordered, cfg.horizon_days)),
                "state": pa.array(np.array(STATE_NAMES, dtype=object)[state]),
                "ordered_today": pa.array(ordered),
            }
        )
        self._transition(ordered)
        catalogue = self.catalogue.export(day)
        self.catalogue.turn_over()
        return DayEvents(day=day, events=events, catalogue=catalogue, truth=truth)

    def _drift_rng(self, day: date) -> np.random.Generator:
        """Draws of a drift scenario, apart from the shop's own so that behaviour stays the same."""
        return np.random.default_rng((self.config.seed, day.toordinal()))

    def _season_shift(self, category: np.ndarray, taste: np.ndarray, day: date) -> np.ndarray:
        rng = self._drift_rng(day)
        season = np.random.default_rng(self.config.seed + 1).permutation(self.config.categories)
        moved = taste & (rng.random(len(category)) < self.config.drift.season_shift_strength)
        category = category.copy()
        category[moved] = season[category[moved]]
        return category

    def _tracking_fault(self, events: pa.Table, day: date) -> pa.Table:
        lost = pc.equal(events.column("event_type"), "view").to_numpy(zero_copy_only=False)
        lost &= self._drift_rng(day).random(events.num_rows) < self.config.drift.tracking_fault_drop
        return events.filter(pa.array(~lost))

    def simulate(self, start: date, days: int):
        for offset in range(days):
            yield self.simulate_day(start + timedelta(days=offset))


def _cumsum_by_group(values: np.ndarray, group_start: np.ndarray) -> np.ndarray:
    """Running sum of ``values`` that restarts where ``group_start`` is true."""
    total = np.cumsum(values)
    starts = np.flatnonzero(group_start)
    offsets = np.repeat(total[starts] - values[starts], np.diff(np.r_[starts, len(values)]))
    return total - offsets
