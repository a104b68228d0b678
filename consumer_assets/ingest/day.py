"""One day of ingestion: landing files in, typed unique events and a quarantine out.

The bookkeeping is exact: ``rows_read = kept + quarantined + duplicates`` for every
day, where a file that cannot be decompressed counts as one quarantined row.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.datasets import QUARANTINE, RAW_EVENTS
from consumer_assets.ingest.contract import EVENT_SCHEMA, QUARANTINE_SCHEMA, parse_file
from consumer_assets.ingest.landing import landing_prefix
from consumer_assets.storage import StorageError, StorageRoot

log = logging.getLogger(__name__)


class MissingLandingDataError(StorageError):
    """The landing zone has no files for the day asked for."""


@dataclass
class IngestedDay:
    day: date
    events: pa.Table
    quarantine: pa.Table
    files: int
    rows_read: int
    duplicates: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def stats(self) -> dict:
        """The day's bookkeeping, stored with the quarantine partition and shown in the UI."""
        return {
            "files": self.files,
            "rows_read": self.rows_read,
            "rows_kept": self.events.num_rows,
            "rows_quarantined": self.quarantine.num_rows,
            "duplicates": self.duplicates,
            "quarantine_reasons": self.quarantine_reasons,
        }


def landing_files(root: StorageRoot, day: date) -> list[str]:
    prefix = landing_prefix(day)
    files = [key for key in root.list_files(prefix) if key.endswith(".jsonl.gz")]
    if not files:
        raise MissingLandingDataError(
            f"No landing files for {day} under {root.uri}/{prefix}/ (expected *.jsonl.gz). "
            "Has the tracking export for that day arrived? Simulate one with `consumer-assets simulate`."
        )
    return files


def seen_event_ids(root: StorageRoot, day: date, lookback_days: int) -> pa.Array:
    """Event ids already stored in the ``lookback_days`` days before ``day``."""
    days = [day - timedelta(days=k) for k in range(1, lookback_days + 1)]
    stored = [d for d in days if root.has_partition(RAW_EVENTS, d)]
    if not stored:
        return pa.array([], pa.string())
    return root.read_partitions(RAW_EVENTS, stored, columns=["event_id"]).column("event_id").combine_chunks()


def drop_duplicates(events: pa.Table, seen: pa.Array) -> tuple[pa.Table, int]:
    """Keep the first row of each ``event_id`` not already in ``seen``."""
    ids = events.column("event_id").to_numpy(zero_copy_only=False)
    _, first = np.unique(ids, return_index=True)
    keep = np.zeros(len(ids), dtype=bool)
    keep[first] = True
    if len(seen):
        keep &= ~pc.is_in(events.column("event_id"), value_set=seen).to_numpy(zero_copy_only=False)
    return events.filter(pa.array(keep)), int((~keep).sum())


def ingest_day(root: StorageRoot, day: date, lookback_days: int = 3) -> IngestedDay:
    """Read, validate and de-duplicate the day's landing files; writes nothing."""
    files = landing_files(root, day)
    parsed = []
    for key in files:
        result = parse_file(root.read_bytes(key), day, key)
        log.info("%s: %d lines, %d kept, %d quarantined", key, result.lines_read, result.kept, result.quarantine.num_rows)
        parsed.append(result)
    events = pa.concat_tables([p.events for p in parsed]) if parsed else EVENT_SCHEMA.empty_table()
    quarantine = pa.concat_tables([p.quarantine for p in parsed]) if parsed else QUARANTINE_SCHEMA.empty_table()
    unique, duplicates = drop_duplicates(events, seen_event_ids(root, day, lookback_days))
    unique = unique.sort_by([("profile_id", "ascending"), ("ts", "ascending"), ("event_id", "ascending")])
    reasons = Counter(quarantine.column("reason").to_pylist())
    return IngestedDay(
        day=day,
        events=unique,
        quarantine=quarantine,
        files=len(files),
        rows_read=sum(p.lines_read for p in parsed),
        duplicates=duplicates,
        quarantine_reasons=dict(sorted(reasons.items())),
    )


def write_quarantine(root: StorageRoot, ingested: IngestedDay) -> None:
    """Store rejected rows with the day's bookkeeping; written even when empty, so the stats are always there."""
    root.write_partition(QUARANTINE, ingested.day, ingested.quarantine, properties=ingested.stats, schema=QUARANTINE_SCHEMA)
