"""How far in days the stages look: labels forward from a snapshot, training back over the matured snapshots.

One value per code location. Dagster fixes partition mappings and automation conditions
when it loads the definitions, so these are deployment settings that ``definitions.py``
reads once and hands to the assets, checks and sensors that depend on them, not launchpad
settings a single run could change (the lineage would then show other days than it read).
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Timeline:
    label_horizon_days: int = 7  # H: orders in (D, D+H] label the snapshot of D
    training_days: int = 14  # at most this many matured snapshots train a candidate ...
    held_out_days: int = 3  # ... all earlier than these latest matured ones, whose held-out profiles judge it

    def __post_init__(self) -> None:
        for f in fields(self):
            if not isinstance(getattr(self, f.name), int) or getattr(self, f.name) < 1:
                raise ValueError(f"{f.name} must be a whole number of days >= 1, not {getattr(self, f.name)!r}")

    @property
    def training_span_days(self) -> int:
        """How many snapshots before the newest matured one training at T may read (lineage: T-H-span .. T-H)."""
        return self.training_days + self.held_out_days - 1
