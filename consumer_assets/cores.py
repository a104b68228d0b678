"""Torch threads sized to this process's share of the cores, among the runs that share a machine.

Dagster lets several runs share a machine (``dagster.yaml``: four at a time) and
Spark's JVM shares it too. Torch's OpenMP threads spin while they wait for work, so
two processes each running two threads on two cores starve each other: measured on
the 2-core CI machine (training steps, ``benchmarks/training.py --contention``), one
process alone 3,451 sequences/s, two at once 54 + 54. One thread per process never
spins: two at once reached 2,519 + 2,378, more than one alone with two threads.

So each compute-heavy step (training, scoring, a Spark build) holds a claim on the
cores while it runs (a locked file in a folder every process of the machine sees,
``$CONSUMER_ASSETS_CORE_CLAIMS`` or the temp folder's ``consumer-assets-core-claims``). A torch step sizes its intra-op
threads to its share, ``cores // claims``, and looks again every few seconds: a run
alone keeps all its threads, two runs drop to one each and back when one ends. The
kernel drops a dead process's lock, so a killed run frees its claim.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import torch

from consumer_assets import environment

T = TypeVar("T")


def claims_folder() -> Path:
    return Path(environment.CORE_CLAIMS.value() or Path(tempfile.gettempdir()) / "consumer-assets-core-claims")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0))


def live_claims(folder: Path) -> int:
    """Claims held by live processes; stale ones (their process died) are removed."""
    live = 0
    for path in folder.glob("*.claim"):
        try:
            with open(path, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)  # nobody holds it: its process is gone
        except BlockingIOError:
            live += 1
        except FileNotFoundError:
            pass
    return live


class CoreShare:
    """A claim on the machine's cores for the duration of a ``with`` block, and the torch threads it allows.

    ``max_threads`` caps the threads (the run's setting); ``rebalance()``, called
    between steps, re-reads the claims at most every ``interval_s`` seconds and
    resizes torch's intra-op threads.
    """

    def __init__(self, max_threads: int, folder: Path | None = None, interval_s: float = 2.0):
        if max_threads < 1:
            raise ValueError(f"max_threads must be at least 1, not {max_threads}")
        self.max_threads = max_threads
        self.folder = folder or claims_folder()
        self.interval_s = interval_s
        self._handle = None
        self._checked = -float("inf")

    def __enter__(self) -> CoreShare:
        self.folder.mkdir(parents=True, exist_ok=True)
        while True:  # a claim removed as stale by another process between our open and lock is taken again
            path = self.folder / f"{os.getpid()}-{id(self)}.claim"
            handle = open(path, "wb")
            fcntl.flock(handle, fcntl.LOCK_EX)
            if path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
            handle.close()
        self._handle, self._path = handle, path
        self.rebalance(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self._path.unlink(missing_ok=True)
        self._handle.close()
        self._handle = None

    def threads(self) -> int:
        """This claim's share of the cores: all of them (up to ``max_threads``) when alone."""
        return max(1, min(self.max_threads, available_cores() // max(live_claims(self.folder), 1)))

    def rebalancing(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, rebalancing the threads before each: for loops that run a torch step per item."""
        for item in items:
            self.rebalance()
            yield item

    def rebalance(self, force: bool = False) -> int:
        """Set torch's intra-op threads to this claim's share; returns them."""
        now = time.monotonic()
        if force or now - self._checked >= self.interval_s:
            self._checked = now
            threads = self.threads()
            if threads != torch.get_num_threads():
                torch.set_num_threads(threads)
        return torch.get_num_threads()
