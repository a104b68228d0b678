"""StoredPartition: a lazy handle on one stored daily partition, the value an asset's input carries.

The partition IO manager (``io_manager.py``) hands it on, as the IO managers of Dagster's
``project_fully_featured`` hand on handles: the parameter is the edge the UI draws, and the
asset decides how to read (some columns, in chunks, with Spark) instead of having a whole
table loaded for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pyarrow as pa

from consumer_assets.storage.root import Manifest, StorageRoot


@dataclass(frozen=True)
class StoredPartition:
    root: StorageRoot
    dataset: str
    day: date

    def manifest(self) -> Manifest:
        return self.root.manifest(self.dataset, self.day)

    def read(self, columns: list[str] | None = None) -> pa.Table:
        return self.root.read_partition(self.dataset, self.day, columns)
