"""Online scoring (``consumer-assets serve``): start-up with many states, latency at a fixed rate, throughput at
saturation.

    .venv/bin/python benchmarks/realtime.py [--profiles 1000000] [--rate 500] [--seconds 20] [--clients 8] [--redis]

Writes a states partition of ``--profiles`` random profiles and a model (hidden 64)
to a temporary root, starts the service as its own process on 127.0.0.1 and times
its start-up until ``/health`` answers, with the process's peak RSS. Then a bounded
client on the same machine (``--clients`` threads, one keep-alive connection each;
writes with the bearer token, the service's request limits at their defaults) sends ``GET /profiles/{id}/score`` and,
separately, ``POST /events`` (one event each)
at ``--rate`` requests/s for ``--seconds`` seconds: latency counts from the moment a
request was due, so a slow server cannot hide its queue. Last, the same client sends
as fast as it can: throughput at saturation. ``--redis`` runs everything again with a
redis-server started here as the state store.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import torch

from consumer_assets.asset_keys import STATES
from consumer_assets.model.encoding import OOV, PAD, Vocabulary
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.store import GateVerdict, ModelStore
from consumer_assets.serving.states import CARRIED, cutoff_seconds, state_schema
from consumer_assets.storage import StorageRoot

DAY = date.today() - timedelta(days=1)
VERSION = "bench-online"
TOKEN = "benchmark-token"
HIDDEN = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_root(folder: str, profiles: int) -> None:
    root = StorageRoot(folder)
    tokens = {
        "event_type": [PAD, OOV, "view", "wishlist", "add_to_cart", "remove_from_cart", "order"],
        "article_id": [PAD, OOV, *[f"a{i}" for i in range(5_000)]],
        "category_id": [PAD, OOV, *[f"c{i}" for i in range(50)]],
        "brand_id": [PAD, OOV, *[f"b{i}" for i in range(300)]],
    }
    vocabulary = Vocabulary(tokens)
    torch.manual_seed(0)
    store = ModelStore(root)
    store.save_candidate(
        VERSION, ConsumerLSTM.for_vocabulary(ModelConfig(hidden_size=HIDDEN), vocabulary).eval(), vocabulary, {}
    )
    store.write_verdict(GateVerdict(VERSION, True))  # as validated_model leaves a passed candidate
    store.promote(VERSION, promoted_by="benchmarks/realtime.py")
    rng = np.random.default_rng(0)

    def chunks(size: int = 100_000):
        for begin in range(0, profiles, size):
            n = min(size, profiles - begin)

            def state(n=n):
                return pa.FixedSizeListArray.from_arrays(
                    pa.array(rng.normal(0, 0.2, n * HIDDEN).astype(np.float32)), HIDDEN
                )

            yield pa.table(
                {
                    "profile_id": [f"p{i}" for i in range(begin, begin + n)],
                    "h": state(),
                    "c": state(),
                    "last_event_s": cutoff_seconds(DAY) - rng.uniform(0, 20 * 86_400, n),
                    **{name: rng.integers(1, 30, n).astype(float) for name in CARRIED},
                },
                schema=state_schema(HIDDEN),
            )

    root.write_partition(STATES, DAY, chunks(), properties={"model_version": VERSION, "cutoff_s": cutoff_seconds(DAY)})


def peak_rss_gib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def start_service(folder: str, port: int, state_store: str) -> tuple[subprocess.Popen, float]:
    command = [
        sys.executable,
        "-m",
        "consumer_assets.cli",
        "serve",
        "--root",
        folder,
        "--port",
        str(port),
        "--state-store",
        state_store,
    ]
    started = time.perf_counter()
    environment = {
        **os.environ,
        "CONSUMER_ASSETS_ONLINE_TOKEN": TOKEN,
    }  # writes authenticated, limits at their defaults
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment)
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the service exited: {process.stderr.read()[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return process, time.perf_counter() - started
        except OSError:
            time.sleep(0.1)


class Load:
    """Requests from ``clients`` threads with one keep-alive connection each; latencies from when each was due."""

    def __init__(self, port: int, profiles: int, clients: int):
        self.port, self.profiles, self.clients = port, profiles, clients
        self.counter = 0
        self.lock = threading.Lock()

    def _request(self, connection: http.client.HTTPConnection, kind: str, rng: np.random.Generator, client: int) -> int:
        # Each client its own profiles: a profile's events arrive in order, as from one tracker session.
        profile = f"p{rng.integers(0, self.profiles // self.clients) * self.clients + client}"
        if kind == "score":
            connection.request("GET", f"/profiles/{profile}/score")
        else:
            with self.lock:
                self.counter += 1
                number = self.counter
            event = {
                "event_id": f"bench-{number}",
                "profile_id": profile,
                "ts": int(time.time() * 1000),
                "event_type": "view",
                "article_id": f"a{number % 5000}",
                "category_id": "c1",
                "brand_id": "b2",
                "price": 20.0,
            }
            headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
            connection.request("POST", "/events", body=json.dumps(event), headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status

    def run(self, kind: str, rate: float | None, seconds: float) -> dict:
        """At ``rate`` requests/s (None: as fast as the clients go) for ``seconds``."""
        latencies, failures = [], [0]
        start = time.perf_counter() + 0.2
        due = iter(start + k / rate for k in range(int(rate * seconds))) if rate else None
        end = start + seconds

        def client(seed: int) -> None:
            rng = np.random.default_rng(seed)
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            while True:
                if due is not None:
                    with self.lock:
                        moment = next(due, None)
                    if moment is None:
                        return
                    time.sleep(max(0.0, moment - time.perf_counter()))
                else:
                    moment = time.perf_counter()
                    if moment >= end:
                        return
                status = self._request(connection, kind, rng, seed)
                done = time.perf_counter()
                with self.lock:
                    latencies.append(done - moment)
                    failures[0] += status != 200

        threads = [threading.Thread(target=client, args=(k,)) for k in range(self.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = max(time.perf_counter() - start, 1e-9)
        ms = np.array(latencies) * 1000
        return {
            "requests": len(ms),
            "per_second": len(ms) / elapsed,
            "p50": np.percentile(ms, 50),
            "p99": np.percentile(ms, 99),
            "max": ms.max(),
            "failures": failures[0],
        }


def report(name: str, figures: dict) -> None:
    print(
        f"  {name:<34} {figures['requests']:>7,} requests {figures['per_second']:>8,.0f}/s   p50 {figures['p50']:6.2f} "
        "ms   "
        f"p99 {figures['p99']:6.2f} ms   max {figures['max']:7.2f} ms   failures {figures['failures']}"
    )


def measure(folder: str, profiles: int, state_store: str, args: argparse.Namespace) -> None:
    port = free_port()
    process, startup = start_service(folder, port, state_store)
    try:
        print(
            f"\nstate store {state_store.split('//')[0].rstrip(':')}: start-up with {profiles:,} states {startup:.1f} "
            f"s, peak RSS of the service {peak_rss_gib(process.pid):.2f} GiB"
        )
        load = Load(port, profiles, args.clients)
        load.run("score", args.rate, 2)  # warm-up
        report(f"GET /score at {args.rate:.0f}/s", load.run("score", args.rate, args.seconds))
        report(f"POST /events at {args.rate:.0f}/s", load.run("events", args.rate, args.seconds))
        report("GET /score, saturated", load.run("score", None, args.seconds / 2))
        report("POST /events, saturated", load.run("events", None, args.seconds / 2))
        print(f"  peak RSS of the service after the load: {peak_rss_gib(process.pid):.2f} GiB")
    finally:
        process.terminate()
        process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--redis", action="store_true", help="also with a redis-server started here as the state store")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        write_root(folder, args.profiles)
        print(
            f"wrote {args.profiles:,} states and a model (hidden {HIDDEN}) in {time.perf_counter() - started:.0f} s; "
            f"{os.cpu_count()} cores, client and server on one machine"
        )
        measure(folder, args.profiles, "embedded", args)
        if args.redis:
            binary = shutil.which("redis-server")
            if binary is None:
                raise SystemExit("redis-server is not installed (make redis installs it)")
            port = free_port()
            redis = subprocess.Popen(
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
                    folder,
                ],
                stdout=subprocess.DEVNULL,
            )
            try:
                time.sleep(0.5)
                measure(folder, args.profiles, f"redis://127.0.0.1:{port}/0", args)
            finally:
                redis.terminate()
                redis.wait(10)


if __name__ == "__main__":
    main()
