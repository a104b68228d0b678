"""The Parquet IO manager: one atomic partition per asset and day, on a folder or S3.

dagster-aws ships only a pickling S3 IO manager; this one stores Arrow tables as
Parquet through :mod:`consumer_assets.storage`, so the files are readable by any
tool and nothing is ever unpickled.

Outputs: a ``pyarrow.Table`` or ``pandas.DataFrame`` is written to
``<asset path>/date=YYYY-MM-DD/``; ``None`` means the asset wrote its partition
itself (a Spark job does), and nothing is written.

Inputs are given in the form the consuming function annotates:
``pyarrow.Table`` or ``pandas.DataFrame`` (a window of partitions comes as one
table with a ``date`` column), or :class:`StoredPartitions`, a handle that reads
nothing until asked (for streaming, or to give Spark the files).
"""

from dataclasses import dataclass
from datetime import date

import dagster as dg
import pandas as pd
import pyarrow as pa

from consumer_assets.storage import StorageRoot
from consumer_assets.storage.resources import StorageResource


@dataclass(frozen=True)
class StoredPartitions:
    """Committed partitions of one dataset, read only on demand."""

    root: StorageRoot
    dataset: str
    days: tuple[date, ...]

    def present(self) -> tuple[date, ...]:
        return tuple(day for day in self.days if self.root.has_partition(self.dataset, day))

    def missing(self) -> tuple[date, ...]:
        return tuple(day for day in self.days if not self.root.has_partition(self.dataset, day))

    def read(self, columns: list[str] | None = None) -> pa.Table:
        return self.root.read_partitions(self.dataset, self.days, columns=columns)

    def files(self) -> list[str]:
        return [path for day in self.days for path in self.root.partition_files(self.dataset, day)]


def dataset_name(asset_key: dg.AssetKey) -> str:
    return "/".join(asset_key.path)


class PartitionedParquetIOManager(dg.ConfigurableIOManager):
    """Daily-partitioned Parquet on the storage root; see the module docstring."""

    storage: dg.ResourceDependency[StorageResource]

    def handle_output(self, context: dg.OutputContext, obj: pa.Table | pd.DataFrame | None) -> None:
        if obj is None:
            return
        if not context.has_asset_partitions:
            raise dg.DagsterInvariantViolationError(f"{context.asset_key.to_user_string()} is not partitioned; this IO manager stores daily partitions only.")
        table = pa.Table.from_pandas(obj, preserve_index=False) if isinstance(obj, pd.DataFrame) else obj
        day = date.fromisoformat(context.asset_partition_key)
        manifest = self.storage.open().write_partition(dataset_name(context.asset_key), day, table, schema=table.schema)
        context.add_output_metadata({"rows": manifest.rows, "files": len(manifest.files)})

    def load_input(self, context: dg.InputContext) -> pa.Table | pd.DataFrame | StoredPartitions:
        days = tuple(sorted(date.fromisoformat(key) for key in context.asset_partition_keys))
        stored = StoredPartitions(self.storage.open(), dataset_name(context.asset_key), days)
        if context.dagster_type.typing_type is StoredPartitions:
            return stored
        missing = stored.missing()
        if missing:
            raise dg.Failure(
                f"{stored.dataset} has no stored partition for {', '.join(map(str, missing))} under {stored.root.uri}: materialise those partitions first."
            )
        table = stored.root.read_partition(stored.dataset, days[0]) if len(days) == 1 else stored.read()
        return table.to_pandas() if context.dagster_type.typing_type is pd.DataFrame else table
