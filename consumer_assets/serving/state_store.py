"""Where the online service keeps profile states: in process (one machine) or in Redis (several replicas).

A store holds one *generation*: the states of one day's batch under one model
version. The service loads the next generation beside the current one and switches
when it is ready, so states of one model are never read with another. Updates are
read-modify-write of one profile at a time, atomic per profile: a lock in process,
an optimistic ``WATCH``/``MULTI`` transaction in Redis (two replicas updating the
same profile retry, neither update is lost).

Events applied online are also logged (bounded), so that a new generation, whose
batch ends at its cut-off, can replay the events after that cut-off; each generation
remembers the event ids it has applied, so a replay (by any replica, any number of
times) applies each event once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict

import numpy as np
import pyarrow as pa

from consumer_assets.serving.states import TOTALS, Event, ProfileState, states_from_table

Update = Callable[[ProfileState | None], ProfileState]
EVENT_LOG_LIMIT = 2_000_000  # events kept for replay after a switch: about two days of a large shop's stream


class EmbeddedStates:
    """One generation in this process: the batch's states in arrays, changed profiles in a dictionary."""

    def __init__(self, table: pa.Table):
        ids, self._h, self._c, self._last, self._totals = states_from_table(table)
        self._rows = {profile: i for i, profile in enumerate(ids)}
        self._changed: dict[str, ProfileState] = {}
        self._applied: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._rows) + sum(1 for p in self._changed if p not in self._rows)

    def get(self, profile_id: str) -> ProfileState | None:
        changed = self._changed.get(profile_id)
        if changed is not None:
            return changed
        row = self._rows.get(profile_id)
        if row is None:
            return None
        return ProfileState(self._h[row], self._c[row], float(self._last[row]), self._totals[row])

    def first_time(self, event_id: str) -> bool:
        """Whether ``event_id`` is new to this generation (and mark it): replays apply each event once."""
        with self._lock:
            if event_id in self._applied:
                return False
            self._applied.add(event_id)
            return True

    def update(self, profile_id: str, update: Update) -> ProfileState:
        with self._lock:
            state = update(self.get(profile_id))
            self._changed[profile_id] = state
            return state


class EmbeddedEventLog:
    def __init__(self, limit: int = EVENT_LOG_LIMIT):
        self._events: deque[Event] = deque(maxlen=limit)

    def append(self, event: Event) -> None:
        self._events.append(event)

    def since(self, seconds: float) -> list[Event]:
        return sorted((e for e in list(self._events) if e.ts_s >= seconds), key=lambda e: e.ts_s)


def _pack(state: ProfileState) -> bytes:
    return state.h.astype(np.float32).tobytes() + state.c.astype(np.float32).tobytes() + np.append(state.last_event_s, state.totals).astype(np.float64).tobytes()


def _unpack(data: bytes, hidden: int) -> ProfileState:
    h = np.frombuffer(data, np.float32, hidden, 0).copy()
    c = np.frombuffer(data, np.float32, hidden, 4 * hidden).copy()
    rest = np.frombuffer(data, np.float64, 1 + len(TOTALS), 8 * hidden)
    return ProfileState(h, c, float(rest[0]), rest[1:].copy())


class RedisStates:
    """One generation in Redis under its own key prefix; loaded once, whichever replica gets there first."""

    def __init__(self, client, prefix: str, hidden_size: int):
        self.client, self.prefix, self.hidden = client, prefix, hidden_size

    def _key(self, profile_id: str) -> str:
        return f"{self.prefix}:p:{profile_id}"

    @classmethod
    def load(cls, client, prefix: str, table: pa.Table, log: Callable[[str], None] = lambda _: None, wait_s: float = 600) -> RedisStates:
        """The generation ``prefix``, writing ``table``'s states into Redis unless another replica has (or is)."""
        hidden = table.schema.field("h").type.list_size
        states = cls(client, prefix, hidden)
        ready, claim = f"{prefix}:ready", f"{prefix}:loading"
        deadline = time.monotonic() + wait_s
        while not client.exists(ready):
            if client.set(claim, "1", nx=True, ex=300):
                ids, h, c, last, totals = states_from_table(table)
                pipe = client.pipeline(transaction=False)
                for i, profile in enumerate(ids):
                    pipe.set(states._key(profile), _pack(ProfileState(h[i], c[i], float(last[i]), totals[i])), nx=True)  # nx: keep what replicas already changed
                    if i % 10_000 == 9_999:
                        pipe.execute()
                pipe.execute()
                client.set(f"{prefix}:profiles", len(ids))
                client.set(ready, "1")
                log(f"loaded {len(ids):,} states into Redis under {prefix}")
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"another replica has been loading {prefix} into Redis for over {wait_s:.0f} s")
            time.sleep(0.2)
        return states

    def __len__(self) -> int:
        return int(self.client.get(f"{self.prefix}:profiles") or 0)

    def first_time(self, event_id: str) -> bool:
        return bool(self.client.sadd(f"{self.prefix}:applied", event_id))

    def get(self, profile_id: str) -> ProfileState | None:
        data = self.client.get(self._key(profile_id))
        return None if data is None else _unpack(data, self.hidden)

    def update(self, profile_id: str, update: Update) -> ProfileState:
        import redis  # the client library is needed only with a Redis store

        key = self._key(profile_id)
        while True:
            with self.client.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    data = pipe.get(key)
                    state = update(None if data is None else _unpack(data, self.hidden))
                    pipe.multi()
                    pipe.set(key, _pack(state))
                    pipe.execute()
                    return state
                except redis.WatchError:
                    continue  # another replica changed this profile in between: read it again


class RedisEventLog:
    def __init__(self, client, key: str, limit: int = EVENT_LOG_LIMIT):
        self.client, self.key, self.limit = client, key, limit

    def append(self, event: Event) -> None:
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(self.key, json.dumps(asdict(event)))
        pipe.ltrim(self.key, -self.limit, -1)
        pipe.execute()

    def since(self, seconds: float) -> list[Event]:
        events = (Event(**json.loads(item)) for item in self.client.lrange(self.key, 0, -1))
        return sorted((e for e in events if e.ts_s >= seconds), key=lambda e: e.ts_s)
