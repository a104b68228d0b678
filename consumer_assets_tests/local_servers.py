"""Helpers of the tests that start real servers on 127.0.0.1: free ports, processes, GraphQL, bounded waits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: the sockets stay bound until all are picked, so none is handed out twice."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port`` (a server started, not necessarily ready)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def wait_for(what: str, seconds: float, condition, every: float = 2.0):
    """``condition()``'s first truthy value, or a test failure naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {seconds:.0f} s")
        time.sleep(every)


def start(command: list[str], env: dict, log: Path | None = None) -> subprocess.Popen:
    """A server process in its own session; ``dagster`` commands ignore SIGTERM unless its default is restored."""
    with open(log or os.devnull, "ab") as output:  # the child keeps its own descriptor
        return subprocess.Popen(
            ["env", "--default-signal=INT,TERM", *command],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen, seconds: float = 60) -> None:
    """SIGTERM to the process group, SIGKILL if it is still there after ``seconds``."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=seconds)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def graphql(url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


REPOSITORIES = "{ repositoriesOrError { ... on RepositoryConnection { nodes { name location { name } } } } }"


def wait_for_webserver(url: str, process: subprocess.Popen, seconds: float = 180) -> dict:
    """The code location's one repository, once the webserver at ``url`` (its /graphql) has loaded it."""

    def loaded():
        if process.poll() is not None:
            pytest.fail(f"the webserver exited with {process.returncode} before answering")
        try:
            return graphql(url, REPOSITORIES)["repositoriesOrError"]["nodes"]
        except OSError:
            return None

    [repository] = wait_for("the webserver answers with the code location loaded", seconds, loaded, every=1.0)
    return repository


S3_KEY, S3_SECRET = "consumer-assets-test", "consumer-assets-test-secret"


class SeaweedFS:
    """A real S3-compatible server, SeaweedFS (``weed server -s3``), on 127.0.0.1, in ``folder``.

    Every listener is on a free port (several servers, CI and a demo, may share the
    machine), kept across :meth:`stop` and :meth:`start`, so a test can cut the server
    off mid-run and bring the same data back. The caller's environment must hold the
    test identity's keys (``S3_KEY``, ``S3_SECRET``).
    """

    NAMES = (
        "master",
        "volume",
        "filer",
        "s3",
        "master.port.grpc",
        "volume.port.grpc",
        "filer.port.grpc",
        "s3.port.grpc",
        "s3.port.iceberg",
        "s3.port.lance",
    )

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        identities = {
            "identities": [
                {
                    "name": "tests",
                    "credentials": [{"accessKey": S3_KEY, "secretKey": S3_SECRET}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        (folder / "s3.json").write_text(json.dumps(identities))
        (folder / "data").mkdir(exist_ok=True)
        self.process: subprocess.Popen | None = None
        for attempt in range(3):  # another process on the machine may take a port between picking and binding
            self.ports = dict(zip(self.NAMES, free_ports(len(self.NAMES))))
            self.endpoint = f"http://127.0.0.1:{self.ports['s3']}"
            try:
                self.start()
                return
            except RuntimeError:
                if attempt == 2 or "address already in use" not in (folder / "weed.log").read_text(errors="replace"):
                    raise

    def start(self) -> None:
        command = [
            str(Path(sys.executable).parent / "weed"),
            "server",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-s3",
            f"-s3.config={self.folder / 's3.json'}",
            "-volume.max=500",
            "-master.volumeSizeLimitMB=32",  # many small volumes: every bucket is a collection with its own
            *[f"-{name}={port}" if "." in name else f"-{name}.port={port}" for name, port in self.ports.items()],
        ]
        with open(self.folder / "weed.log", "ab") as log:  # the server keeps its own descriptor
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1")
        deadline = time.monotonic() + 60
        while True:  # ready when an object can be written: the volume server has registered with the master
            try:
                with contextlib.suppress(
                    client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists
                ):
                    client.create_bucket(Bucket="readiness-probe")  # there already after a restart
                client.put_object(Bucket="readiness-probe", Key="probe", Body=b"ok")
                return
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.process.kill()
                    raise RuntimeError(f"SeaweedFS did not start; see {self.folder / 'weed.log'}") from None
                time.sleep(0.3)

    def stop(self) -> None:
        """Stop at once: nothing of a test server needs a graceful stop (it waits 10 s for volume heartbeats, 15 s for
        its filer)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
