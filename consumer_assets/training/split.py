"""Which snapshots train, validate and test a model, and their labelled rows streamed from Parquet.

Profiles fall into fixed hash buckets: 20 % test, 20 % validation, the rest train.
Test data is independent twice over: its profiles never train, and its snapshot
days are later than every training day. Validation (early stopping, calibration)
likewise: its own profiles, on the same later days as the test. Held-out profiles
matter: the same profile appears in many daily snapshots, and a network that
memorises it would look good on a later snapshot of the very profiles it trained on.

Validation and test pool the last few matured days (``held_out_days``, default 3),
so that a verdict rests on several hundred positives rather than one day's few
dozen; the bootstrap resamples profiles, not rows, because one profile gives a row
on each pooled day.

Rows stream from the partitions chunk by chunk, so memory is bounded by the chunk;
training encodes them once (``training/dataset.py``), evaluation scores them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.asset_keys import HISTORIES, LABELS
from consumer_assets.features.snapshots import iter_snapshot_batches
from consumer_assets.model.encoding import HISTORY_COLUMNS
from consumer_assets.storage import StorageRoot
from consumer_assets.timeline import Timeline

TEST_PERCENT = 20
VALIDATION_PERCENT = 20
ROLES = ("train", "validation", "test")


class NotEnoughDataError(RuntimeError):
    """Too few matured snapshots to train, validate and test a model."""


def profile_roles(profile_ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """ "train", "validation" or "test" per profile: a fixed hash of the id, the same on every day and run."""
    buckets = np.array([zlib.crc32(p.encode()) % 100 for p in profile_ids.to_pylist()], dtype=np.int64)
    return np.where(
        buckets < TEST_PERCENT, "test", np.where(buckets < TEST_PERCENT + VALIDATION_PERCENT, "validation", "train")
    )


@dataclass(frozen=True)
class SnapshotSplit:
    """Training days, and the later days whose validation and test profiles are held out."""

    train_days: tuple[date, ...]
    held_out_days: tuple[date, ...]

    def to_json(self) -> dict:
        return {
            "train_days": [d.isoformat() for d in self.train_days],
            "held_out_days": [d.isoformat() for d in self.held_out_days],
        }

    @classmethod
    def from_json(cls, data: dict) -> SnapshotSplit:
        return cls(
            tuple(map(date.fromisoformat, data["train_days"])), tuple(map(date.fromisoformat, data["held_out_days"]))
        )


def plan_split(labelled_days: list[date], timeline: Timeline) -> SnapshotSplit:
    """The latest ``held_out_days`` labelled snapshots validate and test; up to ``training_days`` before them train."""
    days, held_out_days = sorted(labelled_days), timeline.held_out_days
    if len(days) < held_out_days + 1:
        raise NotEnoughDataError(
            f"Training needs at least {held_out_days + 1} matured snapshots ({held_out_days} held out for validation "
            "and test, "
            f"one or more earlier to train on); found {len(days)}: {', '.join(map(str, days)) or 'none'}. "
            "Materialise daily_histories and order_labels for more days."
        )
    return SnapshotSplit(
        train_days=tuple(days[:-held_out_days][-timeline.training_days :]), held_out_days=tuple(days[-held_out_days:])
    )


def matured_days(root: StorageRoot, until: date) -> list[date]:
    """Snapshot days up to ``until`` that have both histories and labels."""
    labelled = set(root.list_partitions(LABELS))
    return [d for d in root.list_partitions(HISTORIES) if d in labelled and d <= until]


@dataclass(frozen=True)
class SnapshotRows:
    """The labelled history rows of one role's profiles on some snapshot days, chunk by chunk (re-iterable)."""

    root: StorageRoot
    days: tuple[date, ...]
    targets: tuple[str, ...]
    role: str  # which profiles: "train", "validation" or "test"
    chunk_rows: int = 16_384

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {self.role!r}")

    def labels(self, day: date) -> pa.Table:
        return self.root.read_partition(LABELS, day, columns=["profile_id", *self.targets])

    def __iter__(self) -> Iterator[tuple[date, pa.Table, np.ndarray]]:
        """Chunks of (day, history rows, labels) for the chosen profiles."""
        for day in self.days:
            labels = self.labels(day)
            for batch in iter_snapshot_batches(self.root, day, self.chunk_rows, columns=list(HISTORY_COLUMNS)):
                chunk = pa.Table.from_batches([batch])
                chunk = chunk.filter(pa.array(profile_roles(chunk.column("profile_id")) == self.role))
                position = pc.index_in(chunk.column("profile_id"), value_set=labels.column("profile_id"))
                chunk = chunk.filter(pc.is_valid(position))
                position = pc.drop_null(position).to_numpy(zero_copy_only=False)
                y = np.stack([labels.column(t).to_numpy()[position] for t in self.targets], axis=1).astype(np.float32)
                if chunk.num_rows:
                    yield day, chunk, y
