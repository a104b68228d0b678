"""One writer per partition: a lease object that a writer holds from its first file to its commit.

Two runs of the same partition at once would otherwise each tidy away the other's
files at commit and leave a manifest naming files that no longer exist. The lease is
``_leases/<dataset>/date=D.json``, created only if absent (a conditional PUT on S3, an
exclusive ``flock`` on a folder). The holder renews it in the background every third
of its term; a holder that dies (SIGKILL, a lost machine) stops renewing, and its
lease may be taken over once expired, again conditionally, so only one taker wins.
A writer that finds the lease held fails at once with :class:`PartitionBusyError`
naming the holder; a holder that lost its lease (it was taken over after it stalled
for a whole term) is refused its commit with :class:`LeaseLostError`.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from consumer_assets.storage.errors import LeaseLostError, PartitionBusyError
from consumer_assets.storage.objects import ObjectStore

log = logging.getLogger(__name__)

LEASE_PREFIX = "_leases"
LEASE_SECONDS = 120.0  # how long a dead writer blocks its partition; renewed every third of it while alive


@dataclass(frozen=True)
class LeaseTerms:
    holder: str  # who writes: a run id, or host:pid:token
    expires_at: float  # seconds since the epoch

    def to_bytes(self) -> bytes:
        return json.dumps({"holder": self.holder, "expires_at": self.expires_at}).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseTerms:
        raw = json.loads(data)
        return cls(holder=raw["holder"], expires_at=float(raw["expires_at"]))


def lease_key(partition: str) -> str:
    """Where the lease of the partition stored under ``partition`` (``<dataset>/date=D``) lives."""
    return f"{LEASE_PREFIX}/{partition}.json"


class PartitionLease:
    """A held lease; renewed by a daemon thread until released."""

    def __init__(self, root: ObjectStore, partition: str, holder: str, seconds: float):
        self.root, self.key, self.holder, self.seconds = root, lease_key(partition), holder, seconds
        self.what = f"{partition} under {root.uri}"
        self._tag: str | None = None
        self._lost = False
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew_until_released, name=f"lease {self.key}", daemon=True)

    def acquire(self) -> None:
        terms = LeaseTerms(self.holder, time.time() + self.seconds).to_bytes()
        self._tag = self.root.put_if(self.key, terms, None)
        if self._tag is None:
            current = self.root.read_tagged(self.key)
            if current is None:  # released between our PUT and our read: try once more
                self._tag = self.root.put_if(self.key, terms, None)
            else:
                held = LeaseTerms.from_bytes(current[0])
                if held.expires_at > time.time():
                    until = datetime.fromtimestamp(held.expires_at, UTC).isoformat(timespec="seconds")
                    raise PartitionBusyError(
                        f"{self.what} is being written by {held.holder} (lease renewed until {until}): one writer per "
                        "partition. "
                        "Let that run finish and materialise again; a writer that died frees the partition within "
                        f"{self.seconds:.0f} s."
                    )
                log.warning("taking over %s from %s, whose lease expired", self.what, held.holder)
                self._tag = self.root.put_if(self.key, terms, current[1])
        if self._tag is None:
            raise PartitionBusyError(
                f"{self.what} was claimed by another writer at the same moment: one writer per partition. Materialise "
                "it again."
            )
        self._renewer.start()

    def _renew_until_released(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                tag = self.root.put_if(
                    self.key, LeaseTerms(self.holder, time.time() + self.seconds).to_bytes(), self._tag
                )
            except Exception as exc:  # the store is unreachable for now: try again next time, the term has slack
                log.warning("could not renew the lease on %s (%s); retrying", self.what, exc)
                continue
            if tag is None:
                self._lost = True
                log.error("lost the lease on %s: another writer took it over", self.what)
                return
            self._tag = tag

    def check(self) -> None:
        """Raise :class:`LeaseLostError` unless this writer still holds the lease: call it just before committing."""
        current = self.root.read_tagged(self.key)
        if self._lost or current is None or current[1] != self._tag:
            raise LeaseLostError(
                f"{self.what}: this writer ({self.holder}) lost its lease to another writer, so it does not commit. "
                "Materialise it again."
            )

    def release(self) -> None:
        self._stop.set()
        if self._renewer.is_alive():
            self._renewer.join()
        if self._tag is not None and not self._lost:
            try:
                self.root.delete_if(self.key, self._tag)
            except Exception as exc:  # never hide the error that ended the write; the lease expires on its own
                log.warning(
                    "could not release the lease on %s (%s); it expires within %.0f s", self.what, exc, self.seconds
                )


_held: dict[tuple[str, str, int], PartitionLease] = {}
_held_lock = threading.Lock()


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@contextmanager
def partition_lease(
    root: ObjectStore, partition: str, holder: str | None = None, seconds: float = LEASE_SECONDS
) -> Iterator[PartitionLease]:
    """Hold the lease of the partition stored under ``partition`` for the block; re-entrant within a thread (a writer
    that commits through a helper)."""
    slot = (root.uri, lease_key(partition), threading.get_ident())
    with _held_lock:
        outer = _held.get(slot)
    if outer is not None:
        yield outer
        return
    lease = PartitionLease(root, partition, holder or default_holder(), seconds)
    lease.acquire()
    with _held_lock:
        _held[slot] = lease
    try:
        yield lease
    finally:
        with _held_lock:
            _held.pop(slot, None)
        lease.release()
