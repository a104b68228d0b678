"""Helpers of the tests that start real servers on 127.0.0.1: free ports, processes, GraphQL, bounded waits."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
            ["env", "--default-signal=INT,TERM", *command], cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
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
        url, data=json.dumps({"query": query, "variables": variables or {}}).encode(), headers={"Content-Type": "application/json"}
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
