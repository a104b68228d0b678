"""Where the online service keeps profile states: in process (one machine) or in Redis (several replicas).

A store holds one *generation*: the states of one day's batch under one model
version. The service loads the next generation beside the current one and switches
when it is ready, so states of one model are never read with another. Updates are
read-modify-write of one profile at a time, atomic per profile: a lock in process,
in Redis a compare-and-set script (the state is written only if it is still the one
read; two replicas updating the same profile retry, neither update is lost).

Events applied online are also logged, so that a new generation, whose batch ends at
its cut-off, can replay the events after that cut-off; each generation remembers the
event ids it has applied, so a replay (by any replica, any number of times) applies
each event once.

Memory is bounded whatever the stream: the embedded log by bytes (``EVENT_LOG_BYTES``,
oldest dropped first, and everything before the current cut-off at each switch), the
Redis log by entries (``EVENT_LOG_LIMIT``; each entry's strings are bounded by the
contract); the applied ids of a generation by count (``APPLIED_IDS_LIMIT``, oldest
forgotten first: an older event then meets the profile's newer state and is refused),
its profiles unknown to the batch by count (``NEW_PROFILES_LIMIT``, beyond which writes
of new profiles are refused until the next generation).
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

from consumer_assets.serving.states import CARRIED, Event, ProfileState, states_from_table

Update = Callable[[ProfileState | None], ProfileState]
EVENT_LOG_LIMIT = 2_000_000  # events kept for replay after a switch (Redis): about two days of a large shop's stream
EVENT_LOG_BYTES = 512 << 20  # the embedded log's budget: ~2 M events of typical size
APPLIED_IDS_LIMIT = 4_000_000  # event ids a generation remembers (embedded)
NEW_PROFILES_LIMIT = 2_000_000  # profiles a generation takes on beyond its batch (embedded)


class CapacityError(RuntimeError):
    """The generation holds as many new profiles as it may; the next day's states start afresh."""


def event_bytes(event: Event) -> int:
    """What an event costs in the log, roughly: its strings and a fixed overhead for the object and its numbers."""
    return 200 + sum(
        len(value)
        for value in (
            event.event_id,
            event.profile_id,
            event.event_type,
            event.article_id,
            event.category_id or "",
            event.brand_id or "",
        )
    )


class EmbeddedStates:
    """One generation in this process: the batch's states in arrays, changed profiles in a dictionary."""

    def __init__(
        self, table: pa.Table, applied_limit: int = APPLIED_IDS_LIMIT, new_profiles_limit: int = NEW_PROFILES_LIMIT
    ):
        ids, self._h, self._c, self._last, self._carried = states_from_table(table)
        self._rows = {profile: i for i, profile in enumerate(ids)}
        self._changed: dict[str, ProfileState] = {}
        self._applied: dict[str, None] = {}  # insertion-ordered: the oldest id is forgotten first
        self._applied_limit, self._new_profiles_limit, self._new_profiles = applied_limit, new_profiles_limit, 0
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
        return ProfileState(self._h[row], self._c[row], float(self._last[row]), self._carried[row])

    def retire(self) -> None:
        """Nothing to release: the arrays go with the last reference."""

    def apply(self, event: Event, update: Update, log: EmbeddedEventLog | None) -> bool:
        """Advance ``event``'s profile by ``update`` and log the event, once per event id; whether it was new here."""
        with self._lock:
            if event.event_id in self._applied:
                return False
            new = event.profile_id not in self._rows and event.profile_id not in self._changed
            if new and self._new_profiles >= self._new_profiles_limit:
                raise CapacityError(
                    f"this generation holds {self._new_profiles:,} profiles beyond its batch, its limit; new profiles "
                    "wait for the next states"
                )
            self._changed[event.profile_id] = update(self.get(event.profile_id))
            self._new_profiles += new
            self._applied[event.event_id] = None
            if len(self._applied) > self._applied_limit:
                del self._applied[next(iter(self._applied))]
            if log is not None:
                log.append(event)
            return True

    @property
    def applied_ids(self) -> int:
        return len(self._applied)


class EmbeddedEventLog:
    """Events applied online, oldest dropped first once their bytes pass ``limit_bytes``."""

    def __init__(self, limit_bytes: int = EVENT_LOG_BYTES):
        self._events: deque[Event] = deque()
        self.limit_bytes, self.bytes = limit_bytes, 0
        self._lock = threading.Lock()

    def append(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)
            self.bytes += event_bytes(event)
            while self.bytes > self.limit_bytes:
                self.bytes -= event_bytes(self._events.popleft())

    def drop_before(self, seconds: float) -> None:
        """Forget events before ``seconds`` (a new generation's cut-off: its batch holds them)."""
        with self._lock:
            self._events = deque(e for e in self._events if e.ts_s >= seconds)
            self.bytes = sum(event_bytes(e) for e in self._events)

    def __len__(self) -> int:
        return len(self._events)

    def since(self, seconds: float) -> list[Event]:
        with self._lock:
            kept = list(self._events)
        return sorted((e for e in kept if e.ts_s >= seconds), key=lambda e: e.ts_s)


def _pack(state: ProfileState) -> bytes:
    return (
        state.h.astype(np.float32).tobytes()
        + state.c.astype(np.float32).tobytes()
        + np.append(state.last_event_s, state.carried).astype(np.float64).tobytes()
    )


def _unpack(data: bytes, hidden: int) -> ProfileState:
    h = np.frombuffer(data, np.float32, hidden, 0).copy()
    c = np.frombuffer(data, np.float32, hidden, 4 * hidden).copy()
    rest = np.frombuffer(data, np.float64, 1 + len(CARRIED), 8 * hidden)
    return ProfileState(h, c, float(rest[0]), rest[1:].copy())


# Compare-and-set of one profile's state, the event-id mark and the log entry, atomically in Redis.
CHANGED_MEANWHILE, ALREADY_APPLIED, APPLIED = -1, 0, 1
APPLY_SCRIPT = """
if redis.call('SISMEMBER', KEYS[2], ARGV[3]) == 1 then return 0 end
if (redis.call('HGET', KEYS[1], ARGV[6]) or '') ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], ARGV[6], ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
if ARGV[4] ~= '' then
  redis.call('RPUSH', KEYS[3], ARGV[4])
  redis.call('LTRIM', KEYS[3], -tonumber(ARGV[5]), -1)
end
return 1
"""


RETIRED_GENERATION_TTL_S = 3600  # a replaced generation's keys expire after this: every replica has switched by then


class RedisStates:
    """One generation in Redis under its own key prefix (one hash of packed states, one set of applied event ids);
    loaded once, whichever replica gets there first. ``client`` is redis-py's (loading, replays, a thread);
    ``aclient`` its asyncio twin, for the service's requests (the ``a...`` methods, awaited on the event loop)."""

    def __init__(self, client, prefix: str, hidden_size: int, aclient=None):
        self.client, self.aclient, self.prefix, self.hidden = client, aclient, prefix, hidden_size
        self.states_key, self.applied_key = f"{prefix}:states", f"{prefix}:applied"
        self._commit = client.register_script(APPLY_SCRIPT)
        self._acommit = aclient.register_script(APPLY_SCRIPT) if aclient is not None else None

    @classmethod
    def load(
        cls,
        client,
        prefix: str,
        table: pa.Table,
        log: Callable[[str], None] = lambda _: None,
        wait_s: float = 600,
        aclient=None,
    ) -> RedisStates:
        """The generation ``prefix``, writing ``table``'s states into Redis unless another replica has (or is)."""
        hidden = table.schema.field("h").type.list_size
        states = cls(client, prefix, hidden, aclient)
        ready, claim = f"{prefix}:ready", f"{prefix}:loading"
        deadline = time.monotonic() + wait_s
        while not client.exists(ready):
            if client.set(claim, "1", nx=True, ex=300):
                ids, h, c, last, carried = states_from_table(table)
                for begin in range(0, len(ids), 10_000):
                    packed = {
                        ids[i]: _pack(ProfileState(h[i], c[i], float(last[i]), carried[i]))
                        for i in range(begin, min(begin + 10_000, len(ids)))
                    }
                    client.hset(states.states_key, mapping=packed)
                client.set(ready, "1")
                log(f"loaded {len(ids):,} states into Redis under {prefix}")
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"another replica has been loading {prefix} into Redis for over {wait_s:.0f} s")
            time.sleep(0.2)
        return states

    def __len__(self) -> int:
        return int(self.client.hlen(self.states_key))

    async def alen(self) -> int:
        return int(await self.aclient.hlen(self.states_key))

    def get(self, profile_id: str) -> ProfileState | None:
        data = self.client.hget(self.states_key, profile_id)
        return None if data is None else _unpack(data, self.hidden)

    async def aget(self, profile_id: str) -> ProfileState | None:
        data = await self.aclient.hget(self.states_key, profile_id)
        return None if data is None else _unpack(data, self.hidden)

    def retire(self) -> None:
        """Let this generation's keys expire once every replica has had time to switch away from it."""
        for key in (self.states_key, self.applied_key, f"{self.prefix}:ready"):
            self.client.expire(key, RETIRED_GENERATION_TTL_S)

    def apply(self, event: Event, update: Update, log: RedisEventLog | None) -> bool:
        """As ``EmbeddedStates.apply``, in two round trips: read the state, then write it if nobody changed it
        meanwhile."""
        while True:
            data, applied = (
                self.client.pipeline(transaction=False)
                .hget(self.states_key, event.profile_id)
                .sismember(self.applied_key, event.event_id)
                .execute()
            )
            if applied:
                return False  # a retry of an event this generation has seen: not even checked against the state
            outcome = self._commit(**self._commit_args(event, data, update, log))
            if outcome != CHANGED_MEANWHILE:
                return outcome == APPLIED

    async def aapply(self, event: Event, update: Update, log: RedisEventLog | None) -> bool:
        """``apply`` on the asyncio client: the event loop serves other requests during both round trips."""
        while True:
            async with self.aclient.pipeline(transaction=False) as pipe:
                data, applied = (
                    await pipe.hget(self.states_key, event.profile_id)
                    .sismember(self.applied_key, event.event_id)
                    .execute()
                )
            if applied:
                return False
            outcome = await self._acommit(**self._commit_args(event, data, update, log))
            if outcome != CHANGED_MEANWHILE:
                return outcome == APPLIED

    def _commit_args(self, event: Event, data: bytes | None, update: Update, log: RedisEventLog | None) -> dict:
        """The compare-and-set script's keys and arguments: the state read (``data``), the state after ``update``."""
        state = update(None if data is None else _unpack(data, self.hidden))
        entry = json.dumps(asdict(event)) if log is not None else ""
        keys = [self.states_key, self.applied_key, log.key if log is not None else ""]
        return {
            "keys": keys,
            "args": [
                data or b"",
                _pack(state),
                event.event_id,
                entry,
                log.limit if log is not None else 0,
                event.profile_id,
            ],
        }


class RedisEventLog:
    """Events applied online in a Redis list, trimmed to the newest ``limit`` entries at every append."""

    def __init__(self, client, key: str, limit: int = EVENT_LOG_LIMIT):
        self.client, self.key, self.limit = client, key, limit

    def drop_before(self, seconds: float) -> None:
        """Nothing: the list is shared by replicas that may switch later, and its length is bounded by ``limit``."""

    def since(self, seconds: float) -> list[Event]:
        events = (Event(**json.loads(item)) for item in self.client.lrange(self.key, 0, -1))
        return sorted((e for e in events if e.ts_s >= seconds), key=lambda e: e.ts_s)
