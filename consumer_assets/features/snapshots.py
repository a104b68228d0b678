"""How a history snapshot is stored, and reading it back without Spark.

Rewriting every profile each day would make one day cost the whole snapshot,
which grows with the window. So a day usually stores only the rows of the
profiles that changed that day (an event today, or an event leaving the window),
on top of the layers of the day before: a *base* snapshot plus one layer of
changes per day since. Each layer is finished at its own day's cut-off; reading the
snapshot of D takes, per profile, the row of the newest layer that has one, moves
its clock to D (``dt_cutoff_s`` and ``recency_s`` grow by the days in between) and
drops profiles whose last event has left the window.

A layer's files are copied into every later partition that uses them (a hard link
on a folder, a server-side copy on S3), so each partition stays self-contained: a
re-run of an earlier day never changes a later snapshot. Once the changes reach a
share of the base (or a number of layers), the day is written in full again and
becomes the next base, so readers never merge more than a bounded number of rows.

A snapshot stored in full has no ``layers`` property and is plain Parquet.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from consumer_assets.asset_keys import HISTORIES
from consumer_assets.storage import LAYERS, Manifest, StorageRoot


def cutoff(day: date) -> datetime:
    """The end of ``day`` in UTC: nothing at or after it may enter the snapshot (plain Python, shared by Spark and
    serving)."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)


READER = f"{__name__}.read_snapshot"
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Layer:
    """Rows finished at the cut-off of ``day``, in ``files`` (names below the partition folder)."""

    day: date
    files: tuple[str, ...]
    rows: int

    def to_json(self) -> dict:
        return {"day": self.day.isoformat(), "files": list(self.files), "rows": self.rows}


def layers_of(manifest: Manifest, day: date) -> list[Layer]:
    """The layers of a snapshot, base first; a snapshot stored in full is its own base."""
    if LAYERS not in manifest.properties:
        return [Layer(day, tuple(manifest.files), manifest.rows)]
    return [
        Layer(date.fromisoformat(raw["day"]), tuple(raw["files"]), raw["rows"]) for raw in manifest.properties[LAYERS]
    ]


def clock_shift_seconds(layer_day: date, day: date) -> float:
    return float((day - layer_day).days * SECONDS_PER_DAY)


def in_window_seconds(window_days: int) -> float:
    """A profile stays while its last event is at most this long before the cut-off."""
    return float(window_days * SECONDS_PER_DAY)


def iter_snapshot_batches(
    root: StorageRoot, day: date, batch_rows: int = 65_536, columns: list[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream the snapshot of ``day`` in record batches, newest layer first, memory bounded by a batch."""
    manifest = root.manifest(HISTORIES, day)
    if LAYERS not in manifest.properties:
        yield from root.iter_partition_batches(HISTORIES, day, batch_rows, columns)
        return
    prefix = root.partition_key(HISTORIES, day)
    window_s = in_window_seconds(manifest.properties["window_days"])
    wanted = columns or pq.read_schema(root.path(prefix, manifest.files[0]), filesystem=root.fs).names
    needed = list(dict.fromkeys([*wanted, "profile_id", "recency_s"]))
    superseded = pa.array([], pa.string())
    for layer in reversed(layers_of(manifest, day)):
        shift = clock_shift_seconds(layer.day, day)
        layer_ids = []
        for name in layer.files:
            with root.fs.open_input_file(root.path(prefix, name)) as f:
                for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=needed):
                    layer_ids.append(batch.column("profile_id"))
                    current = pc.and_(
                        pc.invert(pc.is_in(batch.column("profile_id"), value_set=superseded)),
                        pc.less_equal(pc.add(batch.column("recency_s"), shift), window_s),
                    )
                    kept = _moved_to(batch.filter(current), shift, day)
                    if kept.num_rows:
                        yield kept.select(wanted)
        superseded = pa.concat_arrays([superseded, *[ids.cast(pa.string()) for ids in layer_ids]])


def read_snapshot(root: StorageRoot, day: date, columns: list[str] | None = None) -> pa.Table:
    """The whole snapshot of ``day`` as one table (see :func:`iter_snapshot_batches` to stream it)."""
    manifest = root.manifest(HISTORIES, day)
    if LAYERS not in manifest.properties:
        return root.read_partition(HISTORIES, day, columns)
    batches = list(iter_snapshot_batches(root, day, columns=columns))
    if batches:  # layers written on different days may differ in which fields Spark marked nullable
        return pa.concat_tables(
            [pa.Table.from_batches([batch]) for batch in batches], promote_options="default"
        ).combine_chunks()
    schema = pq.read_schema(root.path(root.partition_key(HISTORIES, day), manifest.files[0]), filesystem=root.fs)
    return schema.empty_table().select(columns or schema.names)


def _moved_to(batch: pa.RecordBatch, shift: float, day: date) -> pa.RecordBatch:
    """Rows finished ``shift`` seconds before the cut-off of ``day``, with their clock moved to it."""
    if shift == 0:
        return batch
    columns = dict(zip(batch.schema.names, batch.columns))
    columns["recency_s"] = pc.add(columns["recency_s"], shift)
    if "dt_cutoff_s" in columns:
        seconds = columns["dt_cutoff_s"]
        columns["dt_cutoff_s"] = pa.ListArray.from_arrays(
            seconds.offsets, pc.add(seconds.values, shift), type=seconds.type, mask=seconds.is_null()
        )
    if "snapshot_date" in columns:
        columns["snapshot_date"] = pa.array([day] * batch.num_rows, columns["snapshot_date"].type)
    return pa.RecordBatch.from_arrays(list(columns.values()), schema=batch.schema)
