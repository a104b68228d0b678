"""Online scores: states from the batch carried forward event by event, over real HTTP, embedded and on a real Redis."""

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import torch
import uvicorn

from consumer_assets.asset_keys import RAW_EVENTS, STATES
from consumer_assets.features.build_snapshot import build_snapshot
from consumer_assets.features.histories import HistoryConfig
from consumer_assets.features.snapshots import read_snapshot
from consumer_assets.features.spark import SparkStorage
from consumer_assets.model.encoding import Vocabulary, VocabularyLimits
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import GateVerdict, ModelStore
from consumer_assets.serving.online import OnlineScorer, create_app
from consumer_assets.serving.states import batch_states, cutoff_seconds
from consumer_assets.simulation import ShopSimulator, SimulationConfig
from consumer_assets.storage import StorageRoot
from local_servers import free_port, port_open, wait_for

pytestmark = (
    pytest.mark.slow
)  # tens of seconds of Spark, training or servers: `make test` runs it, `make test-fast` does not

START = date(2026, 10, 1)
MAX_LENGTH = 24  # short, so that some profiles pass it and the named length approximation shows


@pytest.fixture(scope="module")
def shop(tmp_path_factory, spark):
    """Three simulated days, their snapshots built by Spark, and two saved models (v1, v2)."""
    root = StorageRoot(str(tmp_path_factory.mktemp("realtime")))
    for day in ShopSimulator(SimulationConfig(profiles=2000, seed=5)).simulate(START, 3):
        root.write_partition(RAW_EVENTS, day.day, day.events)
    spark_storage = SparkStorage(root)
    for k in range(3):
        build_snapshot(
            spark,
            spark_storage,
            START + timedelta(days=k),
            HistoryConfig(window_days=30, max_events=MAX_LENGTH),
            files=1,
        )
    first = read_snapshot(root, START)
    vocabulary = Vocabulary.build([first], VocabularyLimits(min_count=1))
    store = ModelStore(root)
    for seed, version in ((1, "v1"), (2, "v2")):
        torch.manual_seed(seed)
        network = ConsumerLSTM.for_vocabulary(
            ModelConfig(targets=("order_any", "order_x"), hidden_size=16, max_length=MAX_LENGTH), vocabulary
        ).eval()
        with torch.no_grad():  # a calibration that is not the identity, so a path that skipped it would show
            network.calibration_scale.copy_(torch.tensor([0.8, 1.2]))
            network.calibration_bias.copy_(torch.tensor([-0.3, 0.1]))
        store.save_candidate(version, network, vocabulary, {})
        store.write_verdict(GateVerdict(version, True))  # as validated_model leaves it
    return root


def _write_states(root: StorageRoot, day: date, version: str) -> None:
    model = ModelStore(root).load(version)
    root.write_partition(
        STATES,
        day,
        [batch_states(model, read_snapshot(root, day), day, batch_size=64)],
        properties={"model_version": version, "cutoff_s": cutoff_seconds(day)},
    )


def _contract_events(root: StorageRoot, day: date) -> list[dict]:
    """The day's raw events as the tracker sends them (landing contract: ts in epoch milliseconds), in the snapshot's
    order."""
    order = (
        "ts",
        "event_type",
        "article_id",
        "category_id",
        "brand_id",
        "price",
        "platform",
    )  # how Spark sorts a history's events
    events = root.read_partition(RAW_EVENTS, day).sort_by([(name, "ascending") for name in order])
    millis = pc.cast(events.column("ts"), pa.int64()).to_pylist()
    rows = events.drop_columns(["ts"]).to_pylist()
    return [{**row, "ts": ms} for row, ms in zip(rows, millis)]


TOKEN = "test-token-0123456789"


class Service:
    """A real uvicorn server on 127.0.0.1 in a thread, and a tiny JSON client that sends the write token."""

    def __init__(self, scorer: OnlineScorer, token: str | None = TOKEN):
        self.port, self.token = free_port(), token
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(scorer, token), host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)

    def request(self, method: str, path: str, body=None, token: str | None = "default") -> tuple[int, dict]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        token = self.token if token == "default" else token
        headers = {"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})}
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def embedded(shop):
    _write_states(shop, START, "v1")
    scorer = OnlineScorer(shop, refresh_s=3600)
    scorer.start()
    service = Service(scorer)
    yield shop, scorer, service
    service.stop()
    scorer.stop()
    for day in shop.list_partitions(STATES):
        shop.delete_dir(shop.partition_key(STATES, day))


def test_streamed_events_reach_the_next_days_batch_score(embedded):
    root, scorer, service = embedded
    day = START + timedelta(days=1)
    events = _contract_events(root, day)
    for begin in range(0, len(events), 200):
        status, body = service.request("POST", "/events", events[begin : begin + 200])
        assert status == 200, body
    snapshot = read_snapshot(root, day)
    batch = score_table(ModelStore(root).load("v1"), snapshot)
    lengths = snapshot.column("length").to_numpy()
    ids = snapshot.column("profile_id").to_pylist()
    at = cutoff_seconds(day)
    online = np.array(
        [[*service.request("GET", f"/profiles/{p}/score?at={at}")[1]["probabilities"].values()] for p in ids]
    )
    gap = np.abs(online - batch).max(axis=1)
    within = lengths < MAX_LENGTH  # the batch read every event of these profiles
    assert within.sum() > 200 and (~within).sum() > 5
    assert gap[within].max() < 1e-4
    # Past the snapshot's length the batch reads the older days as day steps where the carried state read every
    # event (the named approximation): close, not equal.
    assert 0 < gap[~within].max() < 0.05 and np.median(gap[~within]) < 0.01
    status, body = service.request("GET", f"/profiles/{ids[0]}/score?at={at}")
    assert body["model_version"] == "v1" and body["states_day"] == START.isoformat() and body["known"]
    assert body["state_time"] <= body["scored_at"]
    never_seen = service.request("GET", "/profiles/nobody/score")[1]
    assert not never_seen["known"] and never_seen["state_time"] is None
    assert service.request("GET", "/health")[1]["profiles"] >= len(ids)


def test_bad_events_are_refused_naming_the_field_and_nothing_of_the_request_is_applied(embedded):
    root, scorer, service = embedded
    good = next(
        e for e in _contract_events(root, START + timedelta(days=1)) if e["ts"] / 1000 > cutoff_seconds(START) + 7200
    )
    before = service.request("GET", f"/profiles/{good['profile_id']}/score?at={good['ts'] / 1000 + 60}")[1]
    cases = {
        "missing_field:profile_id": {k: v for k, v in good.items() if k != "profile_id"},
        "wrong_type:price": {**good, "price": "12 EUR"},
        "unknown_event_type": {**good, "event_type": "purchase"},
        "bad_timestamp": {**good, "ts": "yesterday"},
    }
    for reason, bad in cases.items():
        status, body = service.request("POST", "/events", [good, bad])
        assert status == 422, body
        assert body["errors"] == [{"index": 1, "reason": reason, "field": reason.partition(":")[2] or None}]
    assert service.request("GET", f"/profiles/{good['profile_id']}/score?at={good['ts'] / 1000 + 60}")[1] == before
    assert service.request("POST", "/events", b"{not json")[0] == 400
    assert service.request("POST", "/events", good)[0] == 200
    assert (
        service.request("POST", "/events", {**good, "event_id": "later-but-older", "ts": good["ts"] - 3_600_000})[0]
        == 409
    )
    assert service.request("GET", "/profiles/x/score?at=2026-10-02T00:00:00")[0] == 422  # a moment without a zone


def test_new_states_of_another_model_switch_over_without_dropping_a_request(embedded):
    root, scorer, service = embedded
    day2, day3 = START + timedelta(days=1), START + timedelta(days=2)
    tomorrow = _contract_events(root, day3)[:300]  # events after day 2's cut-off, streamed before its states land
    assert service.request("POST", "/events", tomorrow)[0] == 200
    profile = tomorrow[0]["profile_id"]
    failures, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            status, body = service.request("GET", f"/profiles/{profile}/score")
            if status != 200:
                failures.append(body)

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    _write_states(root, day2, "v2")
    assert scorer.refresh()
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    at = cutoff_seconds(day3)
    body = service.request("GET", f"/profiles/{profile}/score?at={at}")[1]
    assert body["model_version"] == "v2" and body["states_day"] == day2.isoformat()
    # The same as v2 advancing day 2's states over the replayed events, each once.
    reference = OnlineScorer(root, refresh_s=3600)
    reference.refresh()
    reference.post_events([e for e in tomorrow if e["profile_id"] == profile])
    expected = reference.score(profile, at)["probabilities"]
    assert body["probabilities"] == pytest.approx(expected, abs=1e-6)
    assert not scorer.refresh()  # nothing newer: no second switch


@pytest.fixture
def redis_url(tmp_path):
    binary = shutil.which("redis-server")
    assert binary, "redis-server is not installed: `make test` installs it (apt), or install it by hand"
    port = free_port()
    server = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    wait_for("redis-server started", 10, lambda: port_open(port), every=0.05)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


def test_replicas_on_redis_share_states_and_score_as_the_embedded_store(shop, redis_url):
    _write_states(shop, START, "v1")
    try:
        events = [e for e in _contract_events(shop, START + timedelta(days=1))][:400]
        embedded = OnlineScorer(shop, refresh_s=3600)
        replicas = [OnlineScorer(shop, state_store=redis_url, refresh_s=3600) for _ in range(2)]
        for scorer in (embedded, *replicas):
            scorer.refresh()
        embedded.post_events(events)
        replicas[0].post_events(events[:200])
        replicas[1].post_events(events[200:])
        replicas[1].post_events(events[150:250])  # a retry of events already applied: each applies once
        at = cutoff_seconds(START + timedelta(days=1))
        for profile in sorted({e["profile_id"] for e in events}):
            expected = embedded.score(profile, at)["probabilities"]
            for replica in replicas:
                assert replica.score(profile, at)["probabilities"] == pytest.approx(expected, abs=1e-6)
        assert replicas[0].health() == {**replicas[1].health()} and replicas[0].health()["state_store"] == "redis"
    finally:
        shop.delete_dir(shop.partition_key(STATES, START))


def test_the_service_on_redis_answers_over_http_as_the_embedded_store(shop, redis_url):
    """The HTTP path on Redis awaits it (redis.asyncio) instead of waiting on it: same scores as the embedded store."""
    _write_states(shop, START, "v1")
    scorer = OnlineScorer(shop, state_store=redis_url, refresh_s=3600)
    scorer.start()
    service = Service(scorer)
    try:
        events = _contract_events(shop, START + timedelta(days=1))[:300]
        assert service.request("POST", "/events", events)[1]["applied"] == 300
        assert service.request("POST", "/events", events[:50])[1] == {
            "applied": 0,
            "already_applied": 50,
            "model_version": "v1",
        }
        embedded = OnlineScorer(shop, refresh_s=3600)
        embedded.refresh()
        embedded.post_events(events)
        at = cutoff_seconds(START + timedelta(days=1))
        for profile in sorted({e["profile_id"] for e in events})[:40]:
            body = service.request("GET", f"/profiles/{profile}/score?at={at}")[1]
            assert body["probabilities"] == pytest.approx(embedded.score(profile, at)["probabilities"], abs=1e-6)
        health = service.request("GET", "/health")[1]
        assert health["state_store"] == "redis" and health["profiles"] >= len({e["profile_id"] for e in events})
    finally:
        service.stop()
        scorer.stop()
        shop.delete_dir(shop.partition_key(STATES, START))


# --- hostile requests ------------------------------------------------------------------


def test_writes_need_the_token(embedded):
    root, scorer, service = embedded
    event = _contract_events(root, START + timedelta(days=1))[0]
    for token in (None, "wrong", TOKEN + "x"):
        status, body = service.request("POST", "/events", event, token=token)
        assert status == 401 and "bearer token" in body["detail"]
    assert service.request("GET", f"/profiles/{event['profile_id']}/score", token=None)[0] == 200  # reads need none
    assert service.request("POST", "/events", event)[0] == 200


def test_serve_refuses_to_start_without_a_token_unless_bound_to_loopback_for_development(tmp_path):
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if k != "CONSUMER_ASSETS_ONLINE_TOKEN"}
    for host, flags in (("0.0.0.0", ["--no-token"]), ("127.0.0.1", [])):
        command = [
            sys.executable,
            "-m",
            "consumer_assets.cli",
            "serve",
            "--root",
            str(tmp_path),
            "--host",
            host,
            *flags,
        ]
        refused = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)
        assert (
            refused.returncode == 2 and "POST /events needs a token: set CONSUMER_ASSETS_ONLINE_TOKEN" in refused.stderr
        )


def _send_partly(service: Service, body: bytes, chunked: bool, sent_at_most: int = 2 << 20) -> tuple[int, str]:
    """POST a body over a raw socket, sending at most ``sent_at_most`` of its bytes before reading the answer
    (as curl does with Expect: 100-continue): the status and detail of a service that answered without the rest."""
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = (
        f"POST /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as connection:
        connection.sendall(head.encode())
        try:
            for begin in range(0, sent_at_most, 64 << 10):
                piece = body[begin : begin + (64 << 10)]
                connection.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece)
        except OSError:
            pass  # the service stopped reading: it has answered
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.partition(b"\r\n\r\n")[2]) < 20:
            if not (received := connection.recv(65536)):
                break
            answer += received
    head, _, rest = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), rest.decode(errors="replace")


def test_a_huge_request_is_refused_at_once_and_a_full_one_leaves_health_answering(embedded):
    """The issue's 27 MB request of 100,000 events: 413 before it is read; the largest accepted request (1,000 events)
    runs its LSTM steps in a worker thread while /health keeps answering within 100 ms."""
    root, scorer, service = embedded
    events = _contract_events(root, START + timedelta(days=1))
    huge = json.dumps([{**events[i % len(events)], "event_id": f"huge-{i}"} for i in range(100_000)]).encode()
    assert len(huge) > 15_000_000
    for chunked in (False, True):  # declared by Content-Length, or streamed until it passes the limit
        status, detail = _send_partly(service, huge, chunked)
        assert status == 413 and "1,048,576 bytes" in detail
    assert (
        service.request("POST", "/events", [events[0]] * 1_001)[1]["errors"][0]["reason"]
        == "too_many_events: at most 1,000 per request"
    )

    full = events[:1_000]
    outcome, latencies = {}, []

    def post():
        outcome["response"] = service.request("POST", "/events", full)

    writer = threading.Thread(target=post)
    writer.start()
    while writer.is_alive():
        began = time.perf_counter()
        assert service.request("GET", "/health")[0] == 200
        latencies.append(time.perf_counter() - began)
    writer.join()
    assert outcome["response"] == (200, {"applied": 1_000, "already_applied": 0, "model_version": "v1"})
    assert len(latencies) >= 3 and max(latencies) < 0.1, latencies  # answered while the steps ran
    # A retried batch says that nothing new was applied.
    assert service.request("POST", "/events", full)[1] == {
        "applied": 0,
        "already_applied": 1_000,
        "model_version": "v1",
    }


def test_events_outside_the_time_window_bad_moments_and_deep_bodies_are_refused_not_500(embedded):
    root, scorer, service = embedded
    good = _contract_events(root, START + timedelta(days=1))[0]
    profile = good["profile_id"]
    cases = {
        "ts_in_future": {**good, "event_id": "from-2262", "ts": "2262-01-01T00:00:00Z"},
        "ts_before_cutoff": {**good, "event_id": "in-the-batch", "ts": int(cutoff_seconds(START) * 1000) - 1},
        "too_long:article_id": {**good, "event_id": "long", "article_id": "a" * 300},
        "empty:profile_id": {**good, "event_id": "empty", "profile_id": ""},
        "invalid_unicode:profile_id": {**good, "event_id": "surrogate", "profile_id": "\ud800"},
    }
    for reason, bad in cases.items():
        status, body = service.request("POST", "/events", bad)
        assert (status, body["errors"][0]["reason"]) == (422, reason)
    assert service.request("POST", "/events", good)[1]["applied"] == 1  # the 2262 event left the profile usable
    assert service.request("POST", "/events", b"[" * 100_000)[1]["errors"][0]["reason"] == "nesting_too_deep"
    assert service.request("POST", "/events", b'{"a": "\xff"}')[0] == 400
    big = json.dumps({**good, "article_id": "x" * 20_000_000}).encode()
    assert _send_partly(service, big, chunked=False)[0] == 413
    for at in ("nan", "inf", "-inf", "1e308", "-1e20", "tomorrow", "2262-01-01T00:00:00Z"):
        status, body = service.request("GET", f"/profiles/{profile}/score?at={at}")
        assert status == 422 and "at=" in body["detail"], (at, body)


def test_a_rollback_is_named_in_every_answer_until_its_states_land(embedded):
    root, scorer, service = embedded
    ModelStore(root).promote("v2", promoted_by="test rollback")
    scorer.refresh()
    body = service.request("GET", "/profiles/nobody/score")[1]
    assert (body["model_version"], body["model_in_service"]) == ("v1", "v2")
    assert "v2 is in service" in body["model_note"] and "written by v1" in body["model_note"]
    assert service.request("GET", "/readyz")[1]["model_note"] == body["model_note"]
    _write_states(root, START + timedelta(days=1), "v2")
    assert scorer.refresh()
    body = service.request("GET", "/profiles/nobody/score")[1]
    assert (body["model_version"], body["model_in_service"], body["model_note"]) == ("v2", "v2", None)
    assert service.request("GET", "/livez") == (200, {"status": "alive"})


def test_the_openapi_schema_names_requests_and_responses(embedded):
    root, scorer, service = embedded
    schema = service.request("GET", "/openapi.json")[1]
    events = schema["paths"]["/events"]["post"]
    body = events["requestBody"]["content"]["application/json"]["schema"]["anyOf"]
    assert set(body[0]["properties"]) >= {"event_id", "profile_id", "ts", "event_type", "article_id", "price"}
    assert events["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/EventsApplied")
    assert {"401", "413", "422"} <= set(events["responses"])
    score = schema["paths"]["/profiles/{profile_id}/score"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"
    ]
    assert (
        score["$ref"].endswith("/Score")
        and "model_in_service" in schema["components"]["schemas"]["Score"]["properties"]
    )


def test_the_log_and_the_id_sets_are_bounded():
    from consumer_assets.serving.state_store import CapacityError, EmbeddedEventLog, EmbeddedStates, event_bytes
    from consumer_assets.serving.states import Event, state_schema

    events = [Event(f"e{i:04d}", f"p{i % 50:02d}", 1_000.0 + i, "view", "a" * 200) for i in range(1_000)]
    log = EmbeddedEventLog(limit_bytes=20 * event_bytes(events[0]))
    for event in events:
        log.append(event)
    assert (
        len(log) == 20
        and log.bytes <= log.limit_bytes
        and [e.event_id for e in log.since(0)] == [f"e{i:04d}" for i in range(980, 1_000)]
    )
    log.drop_before(1_990.0)
    assert [e.ts_s for e in log.since(0)] == [1_990.0 + k for k in range(10)]

    states = EmbeddedStates(state_schema(4).empty_table(), applied_limit=100, new_profiles_limit=50)
    for event in events:
        states.apply(event, lambda state: state, None)
    assert states.applied_ids == 100
    with pytest.raises(CapacityError, match="50 profiles beyond its batch"):
        states.apply(Event("x", "p-new", 5_000.0, "view", "a"), lambda state: state, None)
