"""The online scoring service: the model in service and each profile's carried state, one LSTM step per event.

    consumer-assets serve --host 127.0.0.1 --port 8080 [--state-store redis://HOST:PORT/0]

``POST /events`` takes events in the landing contract (one object or a list), checked
by the same rules as ``raw_events`` (a bad event is a 422 naming its field; nothing of
that request is applied), and advances each profile's state. ``GET
/profiles/{id}/score`` answers the calibrated probabilities at a moment (``?at=``,
default now), with the model version and the time of the state; a profile never
seen gets the empty-history score. ``GET /health`` says what is loaded, ``/livez``
that the process answers, ``/readyz`` whether it has a generation to serve.

Every request is bounded (``OnlineLimits``): writes need the bearer token (off only on
a loopback bind for development), a body of at most ``max_body_bytes`` (413), at most
``max_events`` events (422), each inside the time window between the states' cut-off
and the server clock plus ``max_clock_skew_s``. No request holds the event loop: with
the embedded store the LSTM steps run in a worker thread, with Redis every round trip is
awaited (``redis.asyncio``), so reads and ``/health`` answer while a batch is applied.

The service serves one generation: the newest ``profile_states`` partition and the
model that wrote it. A watcher thread looks for a newer one every ``refresh_s``
seconds, loads it beside the current one, replays the logged events after its
cut-off, switches, and replays once more (events that arrived meanwhile); requests
are served throughout by whichever generation is current, never by a model with
another model's states. A new model in service therefore goes online when its
first states land (the same daily run that scores with it); until then (a rollback, a
promotion between runs) every answer names both the model it serves and the model in
service (``models/serving.json``), and says why they differ.
"""

from __future__ import annotations

import gc
import hmac
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from consumer_assets.asset_keys import STATES
from consumer_assets.ingest.contract import check_event, parse_json
from consumer_assets.model.store import ModelStore
from consumer_assets.serving.state_store import (
    CapacityError,
    EmbeddedEventLog,
    EmbeddedStates,
    RedisEventLog,
    RedisStates,
)
from consumer_assets.serving.states import Event, OnlineModel, cutoff_seconds
from consumer_assets.storage import StorageRoot

log = logging.getLogger(__name__)


class NoStatesError(RuntimeError):
    """No profile_states partition to serve from yet."""


@dataclass(frozen=True)
class OnlineLimits:
    """What one request may cost; beyond each, a 413 or 422 that names the limit."""

    max_body_bytes: int = 1 << 20  # a request body (413 beyond)
    max_events: int = 1_000  # events in one request (422 too_many_events beyond): ~0.3 s of LSTM steps on one core
    max_clock_skew_s: float = 300.0  # how far past the server clock an event's ts may be (ts_in_future beyond)
    latest_moment_s: float = 4_102_444_800.0  # 2100-01-01: the latest ?at= (Unix seconds) a score is asked for


LOOPBACK = ("127.0.0.1", "::1", "localhost")


class EventRejected(ValueError):
    def __init__(self, errors: list[dict]):
        super().__init__(
            "; ".join(e["reason"] if e["index"] is None else f"event {e['index']}: {e['reason']}" for e in errors)
        )
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


def parse_events(payload: Any, window_s: tuple[float, float] = (-math.inf, math.inf)) -> list[Event]:
    """Events from a request body (an object or a list of objects), checked by the landing contract's rules and
    inside ``window_s`` (Unix seconds: from the states' cut-off to the server clock plus the allowed skew)."""
    items = payload if isinstance(payload, list) else [payload]
    checked = [_in_window(*check_event(item), window_s) for item in items]
    errors = [
        {"index": i, "reason": reason, "field": reason.partition(":")[2] or None}
        for i, (_, reason) in enumerate(checked)
        if reason is not None
    ]
    if errors:
        raise EventRejected(errors)
    return [
        Event(
            e["event_id"],
            e["profile_id"],
            e["ts"] / 1000,
            e["event_type"],
            e["article_id"],
            e["category_id"],
            e["brand_id"],
            e["price"],
        )
        for e, _ in checked
    ]


def _in_window(event: dict | None, reason: str | None, window_s: tuple[float, float]) -> tuple[dict | None, str | None]:
    if event is None:
        return event, reason
    if event["ts"] / 1000 < window_s[0]:
        return (
            None,
            "ts_before_cutoff",
        )  # the daily batch's: applied online, it would count twice and vanish at the next switch
    if event["ts"] / 1000 > window_s[1]:
        return None, "ts_in_future"
    return event, None


class OnlineScorer:
    """Generations, switching and event application; the HTTP layer (``create_app``) only translates."""

    def __init__(
        self,
        root: StorageRoot,
        state_store: str = "embedded",
        refresh_s: float = 30.0,
        redis_prefix: str = "consumer-assets",
        limits: OnlineLimits = OnlineLimits(),
    ):
        self.root, self.refresh_s, self.limits = root, refresh_s, limits
        self._redis = self._aredis = None
        if state_store.startswith("redis://"):
            import redis
            import redis.asyncio

            self._redis = redis.Redis.from_url(state_store)  # loading generations and replays, in the watcher thread
            self._redis.ping()
            self._aredis = redis.asyncio.Redis.from_url(state_store)  # requests, awaited on the event loop
            self._prefix = redis_prefix
            self.events_log = RedisEventLog(self._redis, f"{redis_prefix}:events")
        elif state_store == "embedded":
            self.events_log = EmbeddedEventLog()
        else:
            raise ValueError(f"state store must be 'embedded' or a redis:// URL, not {state_store!r}")
        self.store = ModelStore(root)
        self.current: Generation | None = None
        self.in_service: str | None = None  # what models/serving.json names, read at every refresh
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
            states = RedisStates.load(
                self._redis, f"{self._prefix}:{version}:{day}", table, log.info, aclient=self._aredis
            )
        else:
            states = EmbeddedStates(table)
        log.info(
            "loaded %d states of %s (model %s) in %.1f s", table.num_rows, day, version, time.perf_counter() - started
        )
        return Generation(day=day, model=model, states=states, loaded_at=time.time())

    def refresh(self) -> bool:
        """Switch to a newer generation when one has landed; whether it switched. Reads the serving pointer too."""
        with self._switch_lock:
            self._read_pointer()
            newest = self.newest()
            if newest is None:
                if self.current is None:
                    raise NoStatesError(
                        f"no {STATES} partition under {self.root.uri}: run batch scoring (daily_data_job) first"
                    )
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
            self.events_log.drop_before(generation.cutoff_s)  # no later generation replays from before this cut-off
            gc.collect()
            # the loaded states live until the next switch: keep the collector from walking them on every full pass
            gc.freeze()
            log.info("now serving %s states with model %s", generation.day, generation.model.version)
            return True

    def _read_pointer(self) -> None:
        try:
            record = self.store.serving()
        except Exception:  # a pointer being rewritten or broken: say so, keep the last one read
            log.exception("reading the serving pointer failed; keeping %s", self.in_service)
            return
        self.in_service = record.version if record else None

    def model_note(self) -> str | None:
        """Why the model answering is not the model in service, or None when they agree."""
        generation = self.current
        if self.in_service is None or generation is None or self.in_service == generation.model.version:
            return None
        return (
            f"{self.in_service} is in service (models/serving.json) but the newest profile_states ({generation.day}) "
            "were written by "
            f"{generation.model.version}; {self.in_service} answers here once batch scoring writes its first states"
        )

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

    def _apply(self, generation: Generation, event: Event, logged: bool) -> bool:
        """Advance the event's profile in ``generation`` (once per event id), logging it for later replays when
        ``logged``;
        whether it was new here."""
        return generation.states.apply(
            event, lambda state: generation.model.advance(state, event), self.events_log if logged else None
        )

    def _checked(self, payload: Any) -> tuple[Generation, list[Event]]:
        """The generation that takes a request's events, and the events, every one checked before any is applied."""
        generation = self.current
        items = payload if isinstance(payload, list) else [payload]
        if len(items) > self.limits.max_events:
            raise EventRejected(
                [
                    {
                        "index": None,
                        "reason": f"too_many_events: at most {self.limits.max_events:,} per request",
                        "field": None,
                    }
                ]
            )
        return generation, parse_events(items, (generation.cutoff_s, time.time() + self.limits.max_clock_skew_s))

    @staticmethod
    def _older(index: int, exc: ValueError) -> ValueError:
        return ValueError(f"event {index}: {exc}; the {index} event(s) before it were applied")

    def post_events(self, payload: Any) -> dict:
        """Apply a request's events (checked first, all or none); how many were new and how many this generation had
        seen."""
        generation, events = self._checked(payload)
        applied = 0
        for index, event in enumerate(events):
            try:
                applied += self._apply(generation, event, logged=True)
            except ValueError as exc:
                raise self._older(index, exc) from exc
        return {"applied": applied, "already_applied": len(events) - applied}

    async def post(self, payload: Any) -> dict:
        """``post_events`` for the event loop: in a worker thread (embedded: the LSTM steps would hold the loop), or
        awaiting Redis between the steps (each step alone is a fraction of a millisecond)."""
        if self._aredis is None:
            return await run_in_threadpool(self.post_events, payload)
        generation, events = self._checked(payload)
        applied = 0
        for index, event in enumerate(events):
            try:
                applied += await generation.states.aapply(
                    event, lambda state, e=event: generation.model.advance(state, e), self.events_log
                )
            except ValueError as exc:
                raise self._older(index, exc) from exc
        return {"applied": applied, "already_applied": len(events) - applied}

    def _model(self, generation: Generation) -> dict:
        return {
            "model_version": generation.model.version,
            "model_in_service": self.in_service,
            "model_note": self.model_note(),
        }

    def score(self, profile_id: str, at_s: float | None = None) -> dict:
        generation = self.current
        return self._answer(generation, profile_id, generation.states.get(profile_id), at_s)

    async def ascore(self, profile_id: str, at_s: float | None = None) -> dict:
        """``score`` for the event loop: Redis awaited, never waited on."""
        generation = self.current
        state = (
            await generation.states.aget(profile_id) if self._aredis is not None else generation.states.get(profile_id)
        )
        return self._answer(generation, profile_id, state, at_s)

    def _answer(self, generation: Generation, profile_id: str, state, at_s: float | None) -> dict:
        moment = time.time() if at_s is None else at_s
        probabilities = generation.model.score(state, moment)
        return {
            "profile_id": profile_id,
            "known": state is not None,
            "probabilities": {
                t: float(p) for t, p in zip(generation.model.model.config.targets, np.asarray(probabilities))
            },
            **self._model(generation),
            "state_time": None if state is None else _iso(state.last_event_s),
            "scored_at": _iso(moment),
            "states_day": generation.day.isoformat(),
        }

    def health(self, profiles: int | None = None) -> dict:
        generation = self.current
        return {
            "status": "ok",
            **self._model(generation),
            "states_day": generation.day.isoformat(),
            "profiles": len(generation.states) if profiles is None else profiles,
            "state_store": "redis" if self._redis is not None else "embedded",
            "limits": asdict(self.limits),
        }

    async def ahealth(self) -> dict:
        generation = self.current
        return self.health(await generation.states.alen() if self._aredis is not None else None)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat()


def parse_moment(value: str | None, latest_s: float = OnlineLimits.latest_moment_s) -> float | None:
    """``?at=``: Unix seconds or an ISO timestamp with a zone, from 1970 to ``latest_s``; a ValueError that says why
    not."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"at={value[:64]!r} is neither Unix seconds nor an ISO timestamp") from None
        if moment.tzinfo is None:
            raise ValueError(f"at={value!r} has no time zone; give one (e.g. Z) or Unix seconds") from None
        seconds = moment.timestamp()
    if not 0 <= seconds <= latest_s:  # also NaN, inf
        raise ValueError(f"at={value[:64]!r} is not a moment from 1970 to {_iso(latest_s)[:10]}")
    return seconds


class BodyTooLarge(ValueError):
    pass


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (``BodyTooLarge``) as soon as it is known to exceed ``limit`` bytes: never read
    whole."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _body_json(body: bytes) -> tuple[Any, str | None]:
    try:
        return parse_json(body), None
    except RecursionError:
        return None, "nesting_too_deep"
    except ValueError:  # UnicodeDecodeError included
        return None, "malformed_json"


class ContractEvent(BaseModel):
    """One event of the landing contract (README, "The event contract"); checked by the same rules as raw_events."""

    event_id: str = Field(max_length=256, description="Unique; an id applied once, whatever the retries")
    profile_id: str = Field(max_length=256)
    ts: str | int = Field(
        description="ISO 8601 with a zone, or epoch milliseconds; from the states' cut-off to now + 5 min"
    )
    event_type: str = Field(description="view, wishlist, add_to_cart, remove_from_cart or order")
    article_id: str = Field(max_length=256)
    brand_id: str | None = Field(default=None, max_length=256)
    category_id: str | None = Field(default=None, max_length=256)
    price: float | None = Field(default=None, ge=0)
    platform: str | None = Field(default=None, max_length=256)


class EventsApplied(BaseModel):
    applied: int = Field(description="Events new to this generation, applied now")
    already_applied: int = Field(description="Events this generation had applied before (a retried request)")
    model_version: str


class ModelInService(BaseModel):
    model_version: str = Field(description="The model answering: the one that wrote the loaded profile_states")
    model_in_service: str | None = Field(description="What models/serving.json names")
    model_note: str | None = Field(
        description="Why the two differ (a rollback or promotion whose states have not landed), or null"
    )


class Score(ModelInService):
    profile_id: str
    known: bool = Field(description="False: never seen; the empty-history score")
    probabilities: dict[str, float] = Field(description="Calibrated probability per target")
    state_time: str | None = Field(description="The time of the profile's last event")
    scored_at: str
    states_day: str


class Health(ModelInService):
    status: str
    states_day: str
    profiles: int
    state_store: str
    limits: dict[str, float]


class Problem(BaseModel):
    detail: str | list
    errors: list[dict] | None = None


EVENTS_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "anyOf": [
                    ContractEvent.model_json_schema(),
                    {"type": "array", "items": ContractEvent.model_json_schema()},
                ]
            }
        }
    },
}


def create_app(scorer: OnlineScorer, token: str | None):
    """The FastAPI app over ``scorer`` (started, so that a generation is loaded). ``token``: the bearer token writes
    need; None only for a development service on a loopback address (``consumer-assets serve --no-token``)."""
    app = FastAPI(title="consumer-assets online scoring")
    limits = scorer.limits
    expected = f"Bearer {token}".encode() if token else None

    # Reads stay async: a dictionary look-up and one small head, cheaper than a hop to the thread pool.
    @app.get("/livez")
    async def livez() -> dict:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz():
        if scorer.current is None:
            return JSONResponse(
                {"status": "not ready", "detail": "no generation of profile_states loaded yet"}, status_code=503
            )
        return {"status": "ready", "model_version": scorer.current.model.version, "model_note": scorer.model_note()}

    @app.get("/health", response_model=Health)
    async def health() -> dict:
        return await scorer.ahealth()

    @app.post(
        "/events",
        response_model=EventsApplied,
        openapi_extra={"requestBody": EVENTS_BODY},
        responses={
            400: {"model": Problem, "description": "not JSON, or nested too deep"},
            401: {"model": Problem, "description": "no or a wrong bearer token"},
            409: {"model": Problem, "description": "an event older than its profile's state"},
            413: {"model": Problem, "description": "a body over max_body_bytes"},
            422: {
                "model": Problem,
                "description": "an event that breaks the contract or the time window, or too many events",
            },
            503: {"model": Problem, "description": "the generation holds as many new profiles as it may"},
        },
    )
    async def events(request: Request):
        if expected is not None and not hmac.compare_digest(
            request.headers.get("authorization", "").encode(), expected
        ):
            return JSONResponse(
                {"detail": "POST /events needs the bearer token (Authorization: Bearer ...)"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            body = await read_body(request, limits.max_body_bytes)
        except BodyTooLarge:
            return JSONResponse(
                {"detail": f"the body is over the limit of {limits.max_body_bytes:,} bytes (max_body_bytes)"},
                status_code=413,
            )
        payload, reason = _body_json(body)
        if reason is not None:
            return JSONResponse(
                {
                    "detail": f"the body is not usable JSON ({reason})",
                    "errors": [{"index": None, "reason": reason, "field": None}],
                },
                status_code=400,
            )
        try:
            outcome = await scorer.post(payload)  # never holding the event loop: reads keep answering
        except EventRejected as exc:
            return JSONResponse({"detail": str(exc), "errors": exc.errors}, status_code=422)
        except ValueError as exc:  # an event older than its profile's state
            return JSONResponse({"detail": str(exc)}, status_code=409)
        except CapacityError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=503)
        return {**outcome, "model_version": scorer.current.model.version}

    @app.get(
        "/profiles/{profile_id}/score",
        response_model=Score,
        responses={422: {"model": Problem, "description": "a bad ?at="}},
    )
    async def score(profile_id: str, at: str | None = None) -> dict:
        try:
            moment = parse_moment(at, limits.latest_moment_s)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return await scorer.ascore(profile_id, moment)

    return app
