"""Objects below one storage root, a local folder or ``s3://bucket/prefix``, behind one interface.

Everything the platform reads or writes goes through it (through :class:`StorageRoot`,
which adds the daily partitions on top), so the same code runs on a laptop folder and on
S3 (or any S3-compatible server reached through ``AWS_ENDPOINT_URL``). Credentials come
only from the standard AWS chain. Besides bytes, JSON and listings it offers conditional
writes (a PUT only if absent or unchanged), on which the one-writer leases (``lease.py``)
and the root's identity are built.

The layers import one way: ``objects`` -> ``lease`` -> ``root`` (partitions).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from consumer_assets import environment
from consumer_assets.storage.errors import StorageError

ROOT_IDENTITY = "_root.json"
DEFAULT_ROOT = environment.ROOT.default  # the embedded default: a folder beside the code


@dataclass(frozen=True)
class ObjectInfo:
    key: str  # relative to the root
    size: int
    modified: float  # seconds since the epoch


class ObjectStore:
    """A filesystem and a base path; every key below it uses ``/`` separators."""

    def __init__(
        self,
        uri: str,
        endpoint_url: str | None = None,
        region: str | None = None,
        s3_client_factory=None,
    ):
        """``s3_client_factory``: makes the boto3 client for the object requests (conditional writes, listings), called
        once, when the first such request is made; the Dagster layer passes dagster-aws's ``S3Resource.get_client``
        (endpoint, credential chain, retries), plain callers get boto3's own."""
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
        return f"{type(self).__name__}({self.uri!r})"

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
