"""The online scoring service: the model in service and each profile's carried state, one LSTM step per event.

    consumer-assets serve --host 127.0.0.1 --port 8080 [--state-store redis://HOST:PORT/0]

``POST /events`` takes events in the landing contract (one object or a list), checked
by the same rules as ``raw_events`` (a bad event is a 422 naming its field; nothing of
that request is applied), and advances each profile's state. ``GET
/profiles/{id}/score`` answers the calibrated probabilities at a moment (``?at=``,
default now), with the model version and the time of the state; a profile never
seen gets the empty-history score. ``GET /health`` says what is loaded.

The service serves one generation: the newest ``profile_states`` partition and the
model that wrote it. A watcher thread looks for a newer one every ``refresh_s``
seconds, loads it beside the current one, replays the logged events after its
cut-off, switches, and replays once more (events that arrived meanwhile); requests
are served throughout by whichever generation is current, never by a model with
another model's states. A new model in service therefore goes online when its
first states land (the same daily run that scores with it).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from consumer_assets.datasets import STATES
from consumer_assets.ingest.contract import check_event, parse_json
from consumer_assets.model.store import ModelStore
from consumer_assets.serving.state_store import EmbeddedEventLog, EmbeddedStates, RedisEventLog, RedisStates
from consumer_assets.serving.states import Event, OnlineModel, cutoff_seconds
from consumer_assets.storage import StorageRoot

log = logging.getLogger(__name__)


class NoStatesError(RuntimeError):
    """No profile_states partition to serve from yet."""


class EventRejected(ValueError):
    def __init__(self, errors: list[dict]):
        super().__init__("; ".join(f"event {e['index']}: {e['reason']}" for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Generation:
    """What the service serves at one time: one day's states and the model that wrote them."""

    day: date
    model: OnlineModel
    states: Any  # EmbeddedStates or RedisStates
    loaded_at: float

    @property
    def cutoff_s(self) -> float:
        return cutoff_seconds(self.day)


def parse_events(payload: Any) -> list[Event]:
    """Events from a request body (an object or a list of objects), checked by the landing contract's rules."""
    items = payload if isinstance(payload, list) else [payload]
    checked = [check_event(item) for item in items]
    errors = [{"index": i, "reason": reason, "field": reason.partition(":")[2] or None} for i, (_, reason) in enumerate(checked) if reason is not None]
    if errors:
        raise EventRejected(errors)
    return [
        Event(e["event_id"], e["profile_id"], e["ts"] / 1000, e["event_type"], e["article_id"], e["category_id"], e["brand_id"], e["price"]) for e, _ in checked
    ]


class OnlineScorer:
    """Generations, switching and event application; the HTTP layer (``create_app``) only translates."""

    def __init__(self, root: StorageRoot, state_store: str = "embedded", refresh_s: float = 30.0, redis_prefix: str = "consumer-assets"):
        self.root, self.refresh_s = root, refresh_s
        self._redis = None
        if state_store.startswith("redis://"):
            import redis

            self._redis = redis.Redis.from_url(state_store)
            self._redis.ping()
            self._prefix = redis_prefix
            self.events_log = RedisEventLog(self._redis, f"{redis_prefix}:events")
        elif state_store == "embedded":
            self.events_log = EmbeddedEventLog()
        else:
            raise ValueError(f"state store must be 'embedded' or a redis:// URL, not {state_store!r}")
        self.store = ModelStore(root)
        self.current: Generation | None = None
        self._stop = threading.Event()
        self._switch_lock = threading.Lock()

    # --- generations --------------------------------------------------------------

    def newest(self) -> tuple[date, str] | None:
        days = self.root.list_partitions(STATES)
        if not days:
            return None
        return days[-1], self.root.manifest(STATES, days[-1]).properties["model_version"]

    def load(self, day: date, version: str) -> Generation:
        started = time.perf_counter()
        model = OnlineModel(self.store.load_for_serving(version))
        table = self.root.read_partition(STATES, day)
        if self._redis is not None:
            states = RedisStates.load(self._redis, f"{self._prefix}:{version}:{day}", table, log.info)
        else:
            states = EmbeddedStates(table)
        log.info("loaded %d states of %s (model %s) in %.1f s", table.num_rows, day, version, time.perf_counter() - started)
        return Generation(day=day, model=model, states=states, loaded_at=time.time())

    def refresh(self) -> bool:
        """Switch to a newer generation when one has landed; whether it switched."""
        with self._switch_lock:
            newest = self.newest()
            if newest is None:
                if self.current is None:
                    raise NoStatesError(f"no {STATES} partition under {self.root.uri}: run batch scoring (daily_data_job) first")
                return False
            current = self.current
            if current is not None and (current.day, current.model.version) == newest:
                return False
            generation = self.load(*newest)
            self._replay(generation)
            self.current = generation
            self._replay(generation)  # events that reached the old generation while this one loaded
            if current is not None:
                current.states.retire()
            gc.collect()
            gc.freeze()  # the loaded states live until the next switch: keep the collector from walking them on every full pass
            log.info("now serving %s states with model %s", generation.day, generation.model.version)
            return True

    def _replay(self, generation: Generation) -> None:
        for event in self.events_log.since(generation.cutoff_s):
            self._apply(generation, event, logged=False)

    def watch(self) -> None:
        """Poll for new generations until ``stop``; errors are logged, the current generation keeps serving."""
        while not self._stop.wait(self.refresh_s):
            try:
                self.refresh()
            except Exception:  # a half-written partition or a model that does not load: try again next time
                log.exception("refreshing the online states failed; still serving the current generation")

    def start(self) -> None:
        self.refresh()
        threading.Thread(target=self.watch, name="states-watcher", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    # --- requests -----------------------------------------------------------------

    def _apply(self, generation: Generation, event: Event, logged: bool) -> None:
        """Advance the event's profile in ``generation`` (once per event id), logging it for later replays when ``logged``."""
        generation.states.apply(event, lambda state: generation.model.advance(state, event), self.events_log if logged else None)

    def post_events(self, payload: Any) -> int:
        events = parse_events(payload)
        generation = self.current
        for index, event in enumerate(events):
            try:
                self._apply(generation, event, logged=True)
            except ValueError as exc:
                raise ValueError(f"event {index}: {exc}; the {index} event(s) before it were applied") from exc
        return len(events)

    def score(self, profile_id: str, at_s: float | None = None) -> dict:
        generation = self.current
        state = generation.states.get(profile_id)
        moment = time.time() if at_s is None else at_s
        probabilities = generation.model.score(state, moment)
        return {
            "profile_id": profile_id,
            "known": state is not None,
            "probabilities": {t: float(p) for t, p in zip(generation.model.model.config.targets, np.asarray(probabilities))},
            "model_version": generation.model.version,
            "state_time": None if state is None else _iso(state.last_event_s),
            "scored_at": _iso(moment),
            "states_day": generation.day.isoformat(),
        }

    def health(self) -> dict:
        generation = self.current
        return {
            "status": "ok",
            "model_version": generation.model.version,
            "states_day": generation.day.isoformat(),
            "profiles": len(generation.states),
            "state_store": "redis" if self._redis is not None else "embedded",
        }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def parse_moment(value: str | None) -> float | None:
    """``?at=``: Unix seconds or an ISO timestamp with a zone."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if moment.tzinfo is None:
            raise ValueError(f"at={value!r} has no time zone; give one (e.g. Z) or Unix seconds") from None
        return moment.timestamp()


def create_app(scorer: OnlineScorer):
    """The FastAPI app over ``scorer`` (started, so that a generation is loaded)."""
    app = FastAPI(title="consumer-assets online scoring")

    # Async handlers: the work is a dictionary look-up and one small LSTM step, cheaper than a hop to the thread pool.
    @app.get("/health")
    async def health() -> dict:
        return scorer.health()

    @app.post("/events")
    async def events(request: Request):
        try:
            payload = parse_json(await request.body())
        except ValueError:
            return JSONResponse({"detail": "the body is not JSON", "errors": [{"index": None, "reason": "malformed_json", "field": None}]}, status_code=400)
        try:
            applied = scorer.post_events(payload)
        except EventRejected as exc:
            return JSONResponse({"detail": str(exc), "errors": exc.errors}, status_code=422)
        except ValueError as exc:  # an event older than its profile's state
            return JSONResponse({"detail": str(exc)}, status_code=409)
        return {"applied": applied, "model_version": scorer.current.model.version}

    @app.get("/profiles/{profile_id}/score")
    async def score(profile_id: str, at: str | None = None) -> dict:
        try:
            moment = parse_moment(at)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return scorer.score(profile_id, moment)

    return app
