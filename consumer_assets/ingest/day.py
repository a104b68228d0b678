"""One day of ingestion: landing files in, typed unique events and their quarantine out, in one commit.

Memory follows a chunk of lines, not the day: each file is inflated piece by piece,
parsed ``CHUNK_LINES`` lines at a time, and the kept events are written out as they
come; what the day remembers is a 16-byte digest per event id (for de-duplication)
and per profile (for the count). The quarantined rows are files of the same
``raw_events`` partition, named by its manifest, so the events and the quarantine
land together or not at all.

The bookkeeping is exact: ``rows_read = kept + quarantined + duplicates`` for every
day, where the unreadable rest of a cut-off or damaged file counts as one
quarantined row.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.asset_keys import RAW_EVENTS
from consumer_assets.ingest.contract import CHUNK_LINES, EVENT_SCHEMA, EVENTS, QUARANTINE_SCHEMA, parse_stream
from consumer_assets.ingest.landing_zone import landing_prefix
from consumer_assets.records import JsonRecord
from consumer_assets.storage import StorageError, StorageRoot

log = logging.getLogger(__name__)

ROWS_PER_FILE = 500_000  # kept events gathered before a Parquet file is written
QUARANTINE_STEM = "quarantine"  # quarantine files of a raw_events partition: quarantine-<token>-<i>.parquet
SORT_KEYS = [("profile_id", "ascending"), ("ts", "ascending"), ("event_id", "ascending")]


class MissingLandingDataError(StorageError):
    """The landing zone has no files for the day asked for."""


@dataclass(frozen=True)
class IngestReport(JsonRecord):
    """A day's bookkeeping, stored in the raw_events manifest and shown in the UI."""

    files: int
    rows_read: int
    rows_kept: int
    rows_quarantined: int
    duplicates: int
    profiles: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)
    event_types: dict[str, int] = field(default_factory=dict)


class DigestSet:
    """A set of strings kept as 16-byte BLAKE2b digests in sorted runs: 16 bytes a member, whatever the strings' length.

    BLAKE2b is collision-resistant, so two different ids share a digest with
    probability about n²/2¹²⁹ (10⁻²⁵ for 40 million ids): an id is never taken for
    another's duplicate in practice, crafted or not. New members come in runs that are
    merged when a run is no larger than the next one, so a day costs O(n log n).
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray] = []

    @staticmethod
    def digests(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
        blake2b = hashlib.blake2b
        return np.frombuffer(
            b"".join([blake2b(v.encode(), digest_size=16).digest() for v in values.to_pylist()]), dtype="V16"
        )

    def __len__(self) -> int:
        return sum(len(run) for run in self._runs)

    def contains(self, digests: np.ndarray) -> np.ndarray:
        found = np.zeros(len(digests), dtype=bool)
        for run in self._runs:
            at = np.minimum(np.searchsorted(run, digests), len(run) - 1)
            found |= run[at] == digests
        return found

    def add_new(self, digests: np.ndarray) -> np.ndarray:
        """Add ``digests``; True where one is new (not a member yet, and its first appearance here)."""
        _, first = np.unique(digests, return_index=True)
        new = np.zeros(len(digests), dtype=bool)
        new[first] = True
        new &= ~self.contains(digests)
        if new.any():
            self._runs.append(np.sort(digests[new]))
            while len(self._runs) > 1 and len(self._runs[-2]) <= len(self._runs[-1]):
                last = self._runs.pop()
                self._runs[-1] = np.sort(np.concatenate([self._runs[-1], last]))
        return new


def landing_files(root: StorageRoot, day: date) -> list[str]:
    prefix = landing_prefix(day)
    files = [key for key in root.list_files(prefix) if key.endswith(".jsonl.gz")]
    if not files:
        root.check_bucket()
        raise MissingLandingDataError(
            f"No landing files for {day} under {root.uri}/{prefix}/ (expected *.jsonl.gz). "
            "Has the tracking export for that day arrived? Simulate one with `consumer-assets simulate`."
        )
    return files


def seen_event_ids(root: StorageRoot, day: date, lookback_days: int) -> DigestSet:
    """Event ids already stored in the ``lookback_days`` days before ``day``, read a batch at a time."""
    seen = DigestSet()
    for earlier in [day - timedelta(days=k) for k in range(lookback_days, 0, -1)]:
        if root.has_partition(RAW_EVENTS, earlier):
            for batch in root.iter_partition_batches(RAW_EVENTS, earlier, columns=["event_id"]):
                seen.add_new(DigestSet.digests(batch.column("event_id")))
    return seen


def ingest_day(root: StorageRoot, day: date, lookback_days: int = 3, chunk_lines: int = CHUNK_LINES) -> IngestReport:
    """Read, validate and de-duplicate the day's landing files and commit them as the raw_events partition.

    The kept events and the quarantined rows are written as they come and named by
    one manifest, under the partition's one-writer lease: a run that fails part-way
    leaves the previous partition whole.
    """
    files = landing_files(root, day)
    seen = seen_event_ids(root, day, lookback_days)
    profiles = DigestSet()
    reasons: Counter[str] = Counter()
    event_types: Counter[str] = Counter()
    rows_read = duplicates = kept = quarantined = 0
    with root.writing(RAW_EVENTS, day):
        event_files: list[str] = []
        quarantine_files: list[str] = []
        pending: list[pa.Table] = []

        def flush() -> None:
            nonlocal pending
            if pending:
                event_files.extend(root.write_tables(RAW_EVENTS, day, pa.concat_tables(pending).sort_by(SORT_KEYS))[0])
                pending = []

        for key in files:
            file_kept = file_bad = file_read = 0
            for parsed in parse_stream(root.read_pieces(key), day, key, EVENTS, chunk_lines):
                new = seen.add_new(DigestSet.digests(parsed.rows.column("event_id")))
                events = parsed.rows.filter(pa.array(new))
                duplicates += len(new) - events.num_rows
                if events.num_rows:
                    pending.append(events)
                    profiles.add_new(DigestSet.digests(pc.unique(events.column("profile_id"))))
                    event_types.update(dict(zip(*_value_counts(events.column("event_type")), strict=True)))
                if sum(t.num_rows for t in pending) >= ROWS_PER_FILE:
                    flush()
                if parsed.quarantine.num_rows:
                    quarantine_files.extend(
                        root.write_tables(RAW_EVENTS, day, parsed.quarantine, stem=QUARANTINE_STEM)[0]
                    )
                    reasons.update(parsed.quarantine.column("reason").to_pylist())
                file_read += parsed.lines_read
                file_kept += events.num_rows
                file_bad += parsed.quarantine.num_rows
            log.info("%s: %d lines, %d kept, %d quarantined", key, file_read, file_kept, file_bad)
            rows_read, kept, quarantined = rows_read + file_read, kept + file_kept, quarantined + file_bad
        flush()
        if not event_files:
            event_files = root.write_tables(RAW_EVENTS, day, [], schema=EVENT_SCHEMA)[0]
        report = IngestReport(
            files=len(files),
            rows_read=rows_read,
            rows_kept=kept,
            rows_quarantined=quarantined,
            duplicates=duplicates,
            profiles=len(profiles),
            quarantine_reasons=dict(sorted(reasons.items())),
            event_types=dict(sorted(event_types.items())),
        )
        root.commit_partition(
            RAW_EVENTS, day, event_files, kept, report.to_json(), attachments=sorted(quarantine_files)
        )
    return report


def ingest_report(root: StorageRoot, day: date | str) -> IngestReport:
    """The day's bookkeeping from its raw_events manifest."""
    properties = root.manifest(RAW_EVENTS, day).properties
    if "rows_read" not in properties:
        raise StorageError(
            f"raw_events {day} under {root.uri} was written before its quarantine and bookkeeping moved into its "
            "partition: "
            "materialise raw_events for that day again"
        )
    return IngestReport.from_json(properties)


def read_quarantine(root: StorageRoot, day: date | str, dataset: str = RAW_EVENTS) -> pa.Table:
    """The day's quarantined rows of a landing feed (raw_events, article_catalogue): source file, line number, raw
    line, reason, byte offset."""
    manifest = root.manifest(dataset, day)
    prefix = root.partition_key(dataset, day)
    tables = [
        root.read_parquet(f"{prefix}/{name}") for name in manifest.attachments if name.startswith(f"{QUARANTINE_STEM}-")
    ]
    return pa.concat_tables([QUARANTINE_SCHEMA.empty_table(), *tables])


def _value_counts(column: pa.ChunkedArray) -> tuple[list[str], list[int]]:
    counts = pc.value_counts(column)
    return counts.field("values").to_pylist(), counts.field("counts").to_pylist()
