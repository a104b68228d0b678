"""One storage root, a local folder or ``s3://bucket/prefix``, behind one interface.

Everything the platform reads or writes goes through :class:`StorageRoot`, so the
same code runs on a laptop folder and on S3 (or any S3-compatible server reached
through ``AWS_ENDPOINT_URL``). Credentials come only from the standard AWS chain.

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
import fcntl
import functools
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from consumer_assets import environment
from consumer_assets.storage.errors import PartitionNotFoundError, StorageError
from consumer_assets.storage.lease import LEASE_SECONDS, PartitionLease, partition_lease

MANIFEST = "_manifest.json"
ROOT_IDENTITY = "_root.json"
LAYERS = "layers"

DEFAULT_ROOT = environment.ROOT.default  # the embedded default: a folder beside the code


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


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the root
    size: int
    modified: float  # seconds since the epoch


class StorageRoot:
    """A filesystem and a base path; every key below it uses ``/`` separators."""

    def __init__(
        self,
        uri: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        lease_seconds: float = LEASE_SECONDS,
        s3_client_factory=None,
    ):
        """``s3_client_factory``: makes the boto3 client for the object requests (conditional writes, listings), called
        once, when the first such request is made; the Dagster layer passes dagster-aws's ``S3Resource.get_client``
        (endpoint, credential chain, retries), plain callers get boto3's own."""
        self.lease_seconds = lease_seconds  # how long a dead writer can block a partition (see .lease)
        self._s3_client_factory = s3_client_factory
        self.is_s3 = uri.startswith("s3://")
        self.uri = uri.rstrip("/")
        if self.is_s3:
            parsed = urlparse(uri)
            if not parsed.netloc:
                raise StorageError(f"S3 root {uri!r} names no bucket; use s3://BUCKET/PREFIX")
            self.endpoint_url = endpoint_url or environment.S3_ENDPOINT.value()
            self.region = s3_region(region)
            self.fs = _s3_filesystem(self.endpoint_url, self.region)
            self.base = f"{parsed.netloc}{parsed.path}".rstrip("/")
        elif "://" in self.uri and not self.uri.startswith("file://"):
            raise StorageError(f"Unsupported storage root {uri!r}: use a local folder or s3://BUCKET/PREFIX")
        else:
            self.fs = pafs.LocalFileSystem()
            self.base = os.path.abspath(self.uri.removeprefix("file://"))

    def __repr__(self) -> str:
        return f"StorageRoot({self.uri!r})"

    def path(self, *parts: str) -> str:
        """The filesystem path of a key below the root."""
        return "/".join([self.base, *[p.strip("/") for p in parts if p]])

    # --- plain objects -------------------------------------------------------------

    def exists(self, key: str) -> bool:
        return self.fs.get_file_info(self.path(key)).type != pafs.FileType.NotFound

    def read_bytes(self, key: str) -> bytes:
        try:
            with self.fs.open_input_stream(self.path(key), compression=None) as f:
                return f.read()
        except FileNotFoundError as exc:
            raise StorageError(f"{self.uri}/{key} does not exist") from exc

    def read_pieces(self, key: str, piece_bytes: int = 64 * 1024) -> Iterator[bytes]:
        """An object's bytes a piece at a time, so that memory holds a piece, not the object."""
        try:
            with self.fs.open_input_stream(self.path(key), compression=None) as f:
                while piece := f.read(piece_bytes):
                    yield piece
        except FileNotFoundError as exc:
            raise StorageError(f"{self.uri}/{key} does not exist") from exc

    def read_parquet(self, key: str) -> pa.Table:
        """One Parquet object below the root (an attachment; partitions are read through their manifest)."""
        return pq.read_table(self.path(key), filesystem=self.fs)

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write an object in one visible step (temporary name + rename on a folder)."""
        target = self.path(key)
        self._ensure_parent(target)
        if self.is_s3:
            with self.fs.open_output_stream(target, compression=None) as f:
                f.write(data)
            return
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, target)

    def read_json(self, key: str) -> dict:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, value: dict) -> None:
        self.write_bytes(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def list_files(self, prefix: str, suffix: str = "") -> list[str]:
        """Keys (relative to the root) of the files below ``prefix``, sorted."""
        selector = pafs.FileSelector(self.path(prefix), recursive=True, allow_not_found=True)
        base_len = len(self.base) + 1
        return sorted(
            info.path[base_len:]
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.File and info.path.endswith(suffix)
        )

    def list_after(self, prefix: str, start_after: str = "", page_size: int = 1000) -> Iterator[ObjectInfo]:
        """Objects below ``prefix`` whose keys sort after ``start_after``, in key order.

        On S3 this is ListObjectsV2 with ``StartAfter``, page by page: a caller that
        remembers the last key it saw lists only what is new, however many keys the
        prefix already holds.
        """
        if self.is_s3:
            yield from self._s3_list_after(prefix, start_after, page_size)
            return
        folder = self.path(prefix)
        found = []
        for directory, _, names in os.walk(folder):
            for name in names:
                key = os.path.relpath(os.path.join(directory, name), self.base).replace(os.sep, "/")
                if key > start_after and ".tmp-" not in name:
                    found.append(key)
        for key in sorted(found):
            stat = os.stat(self.path(key))
            yield ObjectInfo(key, stat.st_size, stat.st_mtime)

    @functools.cached_property
    def _s3(self):
        """One boto3 client per root (clients are thread-safe: the lease renewer shares it)."""
        if self._s3_client_factory is not None:
            return self._s3_client_factory()
        import boto3  # only S3 roots need it; a local root works where boto3 is not installed (the GPU machine)

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region)

    def _s3_bucket_and_base(self) -> tuple[str, str]:
        bucket, _, base_prefix = self.base.partition("/")
        return bucket, f"{base_prefix}/" if base_prefix else ""

    def _s3_list_after(self, prefix: str, start_after: str, page_size: int) -> Iterator[ObjectInfo]:
        bucket, base = self._s3_bucket_and_base()
        arguments = {"Bucket": bucket, "Prefix": f"{base}{prefix.strip('/')}/", "MaxKeys": page_size}
        if start_after:
            arguments["StartAfter"] = f"{base}{start_after}"
        for page in self._s3.get_paginator("list_objects_v2").paginate(**arguments):
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"][len(base) :], item["Size"], item["LastModified"].timestamp())

    def check_bucket(self) -> None:
        """Raise a StorageError naming the bucket when it does not exist: an empty listing of a missing bucket is not
        "no files"."""
        if not self.is_s3:
            return
        bucket, _ = self._s3_bucket_and_base()
        client = self._s3
        try:
            client.head_bucket(Bucket=bucket)
        except client.exceptions.ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (403, 404):
                where = self.endpoint_url or "AWS"
                raise StorageError(
                    f"S3 bucket {bucket!r} at {where} "
                    + ("does not exist" if status == 404 else "refuses these credentials (403)")
                    + f": create it or fix CONSUMER_ASSETS_ROOT ({self.uri})"
                ) from exc
            raise

    # --- conditional objects: what one-writer leases are built on --------------------

    def read_tagged(self, key: str) -> tuple[bytes, str] | None:
        """An object and its tag (the ETag on S3, a content hash on a folder), or None when absent."""
        if self.is_s3:
            bucket, base = self._s3_bucket_and_base()
            client = self._s3
            try:
                found = client.get_object(Bucket=bucket, Key=f"{base}{key}")
            except client.exceptions.NoSuchKey:
                return None
            return found["Body"].read(), found["ETag"]
        try:
            with open(self.path(key), "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        return data, hashlib.sha256(data).hexdigest()

    def put_if(self, key: str, data: bytes, tag: str | None) -> str | None:
        """Write ``key`` only if it is absent (``tag=None``) or still has ``tag``; the new tag, or None when refused.

        On S3 this is a conditional PUT (``If-None-Match: *`` / ``If-Match``), decided by
        the server; on a folder the check and the write happen under an exclusive
        ``flock``, so two processes on the machine cannot both win.
        """
        if self.is_s3:
            response = self._s3_conditional(
                "put_object", key, Body=data, **({"IfNoneMatch": "*"} if tag is None else {"IfMatch": tag})
            )
            return None if response is None else response["ETag"]
        with self._local_lock():
            current = self.read_tagged(key)
            if (current is None) != (tag is None) or (current is not None and current[1] != tag):
                return None
            self.write_bytes(key, data)
            return hashlib.sha256(data).hexdigest()

    def delete_if(self, key: str, tag: str) -> bool:
        """Delete ``key`` only if it still has ``tag``."""
        if self.is_s3:
            return self._s3_conditional("delete_object", key, IfMatch=tag) is not None
        with self._local_lock():
            current = self.read_tagged(key)
            if current is None or current[1] != tag:
                return False
            self.delete(key)
            return True

    def _s3_conditional(self, operation: str, key: str, **arguments) -> dict | None:
        """An S3 request with a precondition, decided by the server: its response, or None when refused."""
        bucket, base = self._s3_bucket_and_base()
        try:
            return getattr(self._s3, operation)(Bucket=bucket, Key=f"{base}{key}", **arguments)
        except Exception as exc:
            if _precondition_failed(exc):
                return None
            raise

    @contextlib.contextmanager
    def _local_lock(self) -> Iterator[None]:
        os.makedirs(self.base, exist_ok=True)
        with open(os.path.join(self.base, ".conditional.lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def list_dirs(self, prefix: str) -> list[str]:
        selector = pafs.FileSelector(self.path(prefix), recursive=False, allow_not_found=True)
        return sorted(
            info.base_name for info in self.fs.get_file_info(selector) if info.type == pafs.FileType.Directory
        )

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path(key))

    def delete_dir(self, prefix: str) -> None:
        if self.exists(prefix):
            self.fs.delete_dir(self.path(prefix))

    def _ensure_parent(self, path: str) -> None:
        if not self.is_s3:
            os.makedirs(os.path.dirname(path), exist_ok=True)

    def identity(self) -> str:
        """This root's identity: a random id written once into ``_root.json``, made again if the root is wiped.

        Sensors put it into their run keys and cursors, so that a wiped or replaced
        root is seen as new and its days are requested again instead of skipped as done.
        """
        for _ in range(2):
            found = self.read_tagged(ROOT_IDENTITY)
            if found is not None:
                return json.loads(found[0])["id"]
            record = {"id": uuid.uuid4().hex[:12], "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
            if self.put_if(ROOT_IDENTITY, json.dumps(record).encode(), None) is not None:
                return record["id"]
        raise StorageError(f"could not read or write {self.uri}/{ROOT_IDENTITY}")

    # --- daily Parquet partitions --------------------------------------------------

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
        return partition_lease(self, dataset, day, seconds=self.lease_seconds)

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


def s3_region(region: str | None) -> str:
    """The one rule for the region, for boto3 and pyarrow alike: given, else the AWS variables, else us-east-1."""
    return region or environment.S3_REGION.value() or environment.S3_DEFAULT_REGION.value() or "us-east-1"


def _s3_filesystem(endpoint_url: str | None, region: str) -> pafs.S3FileSystem:
    kwargs: dict = {"region": region}
    if endpoint_url:
        parsed = urlparse(endpoint_url)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "https"
    return pafs.S3FileSystem(**kwargs)


def _precondition_failed(exc: Exception) -> bool:
    """An S3 refusal of a conditional request (412, or 409 when another conditional write raced it)."""
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") in (
        "PreconditionFailed",
        "ConditionalRequestConflict",
    ) or response.get("ResponseMetadata", {}).get("HTTPStatusCode") in (409, 412)
