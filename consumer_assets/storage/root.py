"""The storage root: the objects of ``objects.py`` plus daily partitions, each written by one writer at a time.

Partitions are made visible atomically with a manifest: data files get unique
names, and ``_manifest.json`` (a single object PUT on S3, an ``os.replace`` on a
folder) is written last and names the files that make up the partition. Readers
read only the files the manifest names, so a writer that dies half-way leaves the
previous partition readable and at most some unreferenced files behind, which the
next successful write of that partition removes.

A partition may also be stored in *layers* (``properties["layers"]``): files whose
rows supersede each other, which only the dataset's own reader can merge. The
plain readers here refuse such a partition, naming that reader, rather than return
rows that are no longer true.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from consumer_assets.storage.errors import PartitionNotFoundError, StorageError
from consumer_assets.storage.lease import LEASE_SECONDS, PartitionLease, partition_lease
from consumer_assets.storage.objects import ObjectStore

MANIFEST = "_manifest.json"
LAYERS = "layers"


def partition_dir(day: date | str) -> str:
    return f"date={day if isinstance(day, str) else day.isoformat()}"


@dataclass(frozen=True)
class Manifest:
    """What makes a partition: its files, row count and any properties the writer kept.

    ``attachments`` are other files of the partition (a report, a JSON summary) that
    readers of the table ignore and that a re-write replaces with the rest.
    """

    files: list[str]
    rows: int
    written_at: str
    properties: dict
    attachments: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "files": self.files,
            "rows": self.rows,
            "written_at": self.written_at,
            "properties": self.properties,
            "attachments": self.attachments,
        }

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        return cls(
            files=raw["files"],
            rows=raw["rows"],
            written_at=raw["written_at"],
            properties=raw.get("properties", {}),
            attachments=raw.get("attachments", []),
        )


class StorageRoot(ObjectStore):
    """The objects below a root, and the daily partitions among them."""

    def __init__(
        self,
        uri: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        s3_client_factory=None,
    ):
        super().__init__(uri, endpoint_url, region, s3_client_factory)
        self.lease_seconds = lease_seconds  # how long a dead writer can block a partition (see .lease)

    def partition_key(self, dataset: str, day: date | str) -> str:
        return f"{dataset}/{partition_dir(day)}"

    def list_partitions(self, dataset: str) -> list[date]:
        """Days of ``dataset`` that have a committed partition (a manifest)."""
        days = []
        for name in self.list_dirs(dataset):
            if name.startswith("date=") and self.exists(f"{dataset}/{name}/{MANIFEST}"):
                days.append(date.fromisoformat(name.removeprefix("date=")))
        return sorted(days)

    def has_partition(self, dataset: str, day: date | str) -> bool:
        return self.exists(f"{self.partition_key(dataset, day)}/{MANIFEST}")

    def manifest(self, dataset: str, day: date | str) -> Manifest:
        key = f"{self.partition_key(dataset, day)}/{MANIFEST}"
        try:
            return Manifest.from_json(self.read_bytes(key).decode())
        except StorageError as exc:
            raise PartitionNotFoundError(
                f"No partition {partition_dir(day)} of {dataset!r} under {self.uri}: materialise it first"
            ) from exc

    def partition_files(self, dataset: str, day: date | str) -> list[str]:
        """Filesystem paths of the files that make up a committed partition."""
        return self._paths(dataset, day, self.manifest(dataset, day))

    def _paths(self, dataset: str, day: date | str, manifest: Manifest) -> list[str]:
        prefix = self.partition_key(dataset, day)
        return [self.path(prefix, name) for name in manifest.files]

    def write_partition(
        self,
        dataset: str,
        day: date | str,
        tables: pa.Table | Iterable[pa.Table],
        properties: dict | None = None,
        schema: pa.Schema | None = None,
        attachments: dict[str, bytes] | None = None,
    ) -> Manifest:
        """Replace a partition with ``tables`` (one file each) and ``attachments``, visible in one step.

        An iterable lets a writer stream a large partition chunk by chunk without
        holding it in memory.
        """
        with self.writing(dataset, day):
            files, rows = self.write_tables(dataset, day, tables, schema)
            for name, data in (attachments or {}).items():
                self.write_bytes(f"{self.partition_key(dataset, day)}/{name}", data)
            return self.commit_partition(dataset, day, files, rows, properties, attachments=sorted(attachments or {}))

    def write_tables(
        self,
        dataset: str,
        day: date | str,
        tables: pa.Table | Iterable[pa.Table],
        schema: pa.Schema | None = None,
        stem: str = "part",
    ) -> tuple[list[str], int]:
        """Write ``tables`` (one file each, at least one file) into the partition's folder without committing: (names,
        rows)."""
        prefix = self.partition_key(dataset, day)
        token = uuid.uuid4().hex[:12]
        files, rows = [], 0
        for i, table in enumerate([tables] if isinstance(tables, pa.Table) else tables):
            name = f"{stem}-{token}-{i:05d}.parquet"
            path = self.path(prefix, name)
            self._ensure_parent(path)
            pq.write_table(table, path, filesystem=self.fs, compression="zstd")
            files.append(name)
            rows += table.num_rows
        if not files:
            if schema is None:
                raise StorageError(f"Writing an empty partition of {dataset!r} needs a schema")
            name = f"{stem}-{token}-00000.parquet"
            path = self.path(prefix, name)
            self._ensure_parent(path)
            pq.write_table(schema.empty_table(), path, filesystem=self.fs)
            files.append(name)
        return files, rows

    def writing(self, dataset: str, day: date | str) -> contextlib.AbstractContextManager[PartitionLease]:
        """Hold the partition's one-writer lease from the first file to the commit (see :mod:`.lease`)."""
        return partition_lease(self, self.partition_key(dataset, day), seconds=self.lease_seconds)

    def commit_partition(
        self,
        dataset: str,
        day: date | str,
        files: list[str],
        rows: int,
        properties: dict | None = None,
        attachments: list[str] = (),
    ) -> Manifest:
        """Make ``files`` (already below the partition folder) the partition, then tidy up.

        Under the partition's lease: a writer that did not take it first takes it for
        the commit, and one that lost it is refused rather than overwrite another's.
        """
        prefix = self.partition_key(dataset, day)
        manifest = Manifest(
            files=sorted(files),
            rows=rows,
            written_at=datetime.now(UTC).isoformat(timespec="seconds"),
            properties=properties or {},
            attachments=list(attachments),
        )
        with self.writing(dataset, day) as lease:
            lease.check()
            self.write_bytes(f"{prefix}/{MANIFEST}", json.dumps(manifest.to_json(), indent=2, sort_keys=True).encode())
            keep = {f"{prefix}/{name}" for name in [*files, *attachments, MANIFEST]}
            for key in self.list_files(prefix):
                if key not in keep:
                    self.delete(key)
        return manifest

    def copy_partition_files(self, dataset: str, from_day: date | str, names: list[str], to_day: date | str) -> None:
        """Copy files of one partition into another's folder under the same names, for a later commit to name.

        Files are never changed once written and their names are unique, so a file
        already there is the same file. On a folder a hard link copies no bytes; on S3
        the copy happens on the server.
        """
        for name in names:
            source = self.path(self.partition_key(dataset, from_day), name)
            target = self.path(self.partition_key(dataset, to_day), name)
            if self.is_s3:
                self.fs.copy_file(source, target)
                continue
            if os.path.exists(target):
                continue
            self._ensure_parent(target)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)

    def _plain_files(self, dataset: str, day: date | str) -> list[str]:
        """Paths of a partition whose files hold its rows as they are (not layers that supersede each other)."""
        manifest = self.manifest(dataset, day)
        if LAYERS in manifest.properties:
            raise StorageError(
                f"{dataset} {partition_dir(day)} under {self.uri} is stored in layers whose rows supersede each other: "
                f"read it with {manifest.properties.get('reader', 'the reader that wrote it')}"
            )
        return self._paths(dataset, day, manifest)

    def read_partition(self, dataset: str, day: date | str, columns: list[str] | None = None) -> pa.Table:
        paths = self._plain_files(dataset, day)
        return pq.ParquetDataset(paths, filesystem=self.fs, partitioning=None).read(columns=columns)

    def iter_partition_batches(
        self, dataset: str, day: date | str, batch_rows: int = 65_536, columns: list[str] | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Stream a partition in record batches so memory stays bounded by the batch."""
        for path in self._plain_files(dataset, day):
            with self.fs.open_input_file(path) as f:
                yield from pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=columns)
