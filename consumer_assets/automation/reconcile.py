"""Instance and storage root agree, or the reconcile sensor makes them: derived partitions the instance records but the
root lacks.

The instance remembers what was materialised; the root holds what exists. After the
root is wiped or replaced, or a partition is deleted by hand, automation that decides
from the instance would take snapshots and labels that no longer exist for done, and
training would find no labels. Raw events come back on their own (the landing
sensor's run keys name the root's identity); what is derived from them is found
here: each snapshot and label partition the instance records but the root lacks is
rebuilt as soon as its inputs are in storage, and named while it waits for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

from consumer_assets.asset_keys import HISTORIES, LABELS, RAW_EVENTS
from consumer_assets.labels.targets import label_days
from consumer_assets.storage import StorageRoot

RECONCILED = (HISTORIES, LABELS)


@dataclass(frozen=True)
class LostPartition:
    """A partition the instance records and the root lacks; ``waiting_for`` names inputs not in storage yet (empty:
    rebuild now)."""

    dataset: str
    day: date
    waiting_for: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.dataset} {self.day.isoformat()}"


def inputs_of(dataset: str, day: date, horizon_days: int) -> list[tuple[str, date]]:
    """The stored partitions a rebuild of ``dataset`` for ``day`` reads."""
    if dataset == HISTORIES:
        return [(RAW_EVENTS, day)]
    if dataset == LABELS:
        return [(HISTORIES, day), *[(RAW_EVENTS, d) for d in label_days(day, horizon_days)]]
    raise ValueError(f"{dataset!r} is not reconciled; only {RECONCILED}")


def lost_partitions(
    root: StorageRoot, recorded: Mapping[str, Iterable[date]], horizon_days: int
) -> list[LostPartition]:
    """Of the partitions the instance records, per dataset, those the root lacks, oldest first."""
    lost = []
    for dataset, days in recorded.items():
        for day in sorted(days):
            if root.has_partition(dataset, day):
                continue
            waiting = tuple(
                f"{name} {d.isoformat()}"
                for name, d in inputs_of(dataset, day, horizon_days)
                if not root.has_partition(name, d)
            )
            lost.append(LostPartition(dataset, day, waiting))
    return sorted(lost, key=lambda p: (p.day, RECONCILED.index(p.dataset)))
