import threading
import time
from datetime import date

import boto3
import pyarrow as pa
import pytest

from consumer_assets.storage import (
    MANIFEST,
    LeaseLostError,
    PartitionBusyError,
    PartitionNotFoundError,
    StorageError,
    StorageRoot,
)
from consumer_assets.storage.lease import LeaseTerms, lease_key, partition_lease

DAY = date(2026, 10, 5)


def _table(n: int, offset: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(offset, offset + n)), "value": pa.array([float(i) for i in range(n)])})


def test_partition_round_trip_and_listing(root: StorageRoot):
    root.write_partition("things", DAY, _table(5), properties={"source": "test"})
    root.write_partition("things", date(2026, 10, 3), _table(2))
    assert root.read_partition("things", DAY).column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert root.manifest("things", DAY).properties == {"source": "test"}
    assert root.list_partitions("things") == [date(2026, 10, 3), DAY]


def test_rewrite_replaces_the_partition(root: StorageRoot):
    root.write_partition("things", DAY, _table(5))
    root.write_partition("things", DAY, [_table(3, offset=100), _table(2, offset=200)])
    assert sorted(root.read_partition("things", DAY).column("id").to_pylist()) == [100, 101, 102, 200, 201]
    files = root.list_files("things/date=2026-10-05")
    assert len(files) == 3 and files[0].endswith(MANIFEST)


def test_attachments_live_and_go_with_their_partition(root: StorageRoot):
    root.write_partition("things", DAY, _table(2), attachments={"report.html": b"<p>one</p>"})
    assert root.manifest("things", DAY).attachments == ["report.html"]
    assert root.read_bytes("things/date=2026-10-05/report.html") == b"<p>one</p>"
    assert root.read_partition("things", DAY).num_rows == 2  # readers of the table ignore it
    root.write_partition("things", DAY, _table(3))
    assert not root.exists("things/date=2026-10-05/report.html")


def test_a_write_that_dies_half_way_leaves_the_previous_partition(root: StorageRoot):
    root.write_partition("things", DAY, _table(4))

    def dying_writer():
        yield _table(10, offset=1000)
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed"):
        root.write_partition("things", DAY, dying_writer())
    # The orphaned file is on disk, but readers only see what the manifest names.
    assert len(root.list_files("things/date=2026-10-05", ".parquet")) == 2
    assert root.read_partition("things", DAY).column("id").to_pylist() == [0, 1, 2, 3]
    # The next successful write tidies the orphan away.
    root.write_partition("things", DAY, _table(1))
    assert len(root.list_files("things/date=2026-10-05", ".parquet")) == 1


def test_missing_partition_names_what_to_do(root: StorageRoot):
    with pytest.raises(PartitionNotFoundError, match=r"date=2026-10-05 of 'things'.*materialise it first"):
        root.read_partition("things", DAY)
    assert not root.has_partition("things", DAY)


def test_empty_partition_needs_a_schema(root: StorageRoot):
    with pytest.raises(StorageError, match="needs a schema"):
        root.write_partition("things", DAY, [])
    root.write_partition("things", DAY, [], schema=_table(0).schema)
    assert root.read_partition("things", DAY).num_rows == 0


def test_objects_and_json(root: StorageRoot):
    root.write_json("models/serving.json", {"version": "v1"})
    assert root.read_json("models/serving.json") == {"version": "v1"}
    assert root.exists("models/serving.json")
    with pytest.raises(StorageError, match="does not exist"):
        root.read_bytes("models/nothing.json")


def test_s3_objects_are_real_objects_on_the_server(s3_endpoint: str, s3_bucket: str):
    root = StorageRoot(f"s3://{s3_bucket}/prefix", endpoint_url=s3_endpoint)
    root.write_partition("things", DAY, _table(3))
    keys = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket=s3_bucket)["Contents"]
    names = sorted(obj["Key"] for obj in keys)
    assert names[0] == "prefix/things/date=2026-10-05/_manifest.json"
    assert names[1].startswith("prefix/things/date=2026-10-05/part-") and names[1].endswith(".parquet")


def test_unsupported_roots_are_refused():
    with pytest.raises(StorageError, match="names no bucket"):
        StorageRoot("s3://")
    with pytest.raises(StorageError, match="Unsupported storage root"):
        StorageRoot("gs://bucket/prefix")


def _held_writer(root: StorageRoot, ready: threading.Event, go: threading.Event, outcome: dict) -> None:
    """A writer held just before its commit, as a run paused there would be."""

    def tables():
        yield _table(4, offset=500)
        ready.set()
        go.wait(30)

    try:
        outcome["manifest"] = root.write_partition("things", DAY, tables())
    except Exception as exc:  # reported to the test thread
        outcome["error"] = exc


def test_one_writer_per_partition(root: StorageRoot):
    root.write_partition("things", DAY, _table(2))
    ready, go, outcome = threading.Event(), threading.Event(), {}
    first = threading.Thread(target=_held_writer, args=(root, ready, go, outcome))
    first.start()
    assert ready.wait(30)
    other = StorageRoot(root.uri, endpoint_url=getattr(root, "endpoint_url", None))  # another run's own root
    with pytest.raises(
        PartitionBusyError, match=r"things/date=2026-10-05 .* is being written by .*one writer per partition"
    ):
        other.write_partition("things", DAY, _table(9, offset=900))
    go.set()
    first.join(30)
    assert "error" not in outcome
    # The partition is the held writer's, whole: the loser wrote nothing it could tidy away.
    assert sorted(root.read_partition("things", DAY).column("id").to_pylist()) == [500, 501, 502, 503]
    assert len(root.list_files("things/date=2026-10-05", ".parquet")) == 1
    assert not root.exists(lease_key(root.partition_key("things", DAY)))  # released
    other.write_partition("things", DAY, _table(1))  # and the next writer gets it
    assert root.read_partition("things", DAY).num_rows == 1


def test_a_dead_writers_lease_expires_and_is_taken_over(root: StorageRoot):
    dead = LeaseTerms(holder="host:4242:dead", expires_at=time.time() - 1).to_bytes()
    assert root.put_if(lease_key(root.partition_key("things", DAY)), dead, None) is not None
    root.write_partition("things", DAY, _table(3))
    assert root.read_partition("things", DAY).num_rows == 3
    live = LeaseTerms(holder="host:4242:alive", expires_at=time.time() + 60).to_bytes()
    assert root.put_if(lease_key(root.partition_key("things", DAY)), live, None) is not None
    with pytest.raises(PartitionBusyError, match="host:4242:alive"):
        root.write_partition("things", DAY, _table(1))
    assert root.read_partition("things", DAY).num_rows == 3


def test_a_writer_that_lost_its_lease_does_not_commit(root: StorageRoot):
    root.write_partition("things", DAY, _table(2))
    with (
        pytest.raises(LeaseLostError, match="lost its lease"),
        partition_lease(root, root.partition_key("things", DAY), seconds=60),
    ):
        key = lease_key(root.partition_key("things", DAY))
        _, tag = root.read_tagged(key)
        root.put_if(
            key, LeaseTerms("host:1:usurper", time.time() + 60).to_bytes(), tag
        )  # taken over while this writer stalled
        root.write_partition("things", DAY, _table(7))
    assert root.read_partition("things", DAY).num_rows == 2


def test_conditional_puts_let_one_of_two_win(root: StorageRoot):
    first = root.put_if("claims/x.json", b"a", None)
    assert first is not None
    assert root.put_if("claims/x.json", b"b", None) is None
    assert root.put_if("claims/x.json", b"c", "not-the-tag") is None
    second = root.put_if("claims/x.json", b"d", first)
    assert second is not None and root.read_tagged("claims/x.json") == (b"d", second)
    assert not root.delete_if("claims/x.json", first)
    assert root.delete_if("claims/x.json", second) and root.read_tagged("claims/x.json") is None


def test_the_dagster_layer_reaches_s3_through_dagster_aws(s3_endpoint, s3_bucket):
    """StorageResource opens the root with dagster-aws's S3Resource client (its endpoint and retries), used by every
    object request; the region is one rule for boto3 and pyarrow."""
    from consumer_assets.storage.resources import StorageResource

    root = StorageResource(root=f"s3://{s3_bucket}/via-dagster-aws", endpoint_url=s3_endpoint, max_attempts=7).open()
    assert (
        root._s3.meta.config.retries == {"mode": "standard", "total_max_attempts": 8}
        and root._s3.meta.endpoint_url == s3_endpoint
    )
    assert root._s3.meta.region_name == root.region == root.fs.region
    root.write_json("probe.json", {"ok": True})
    assert root.read_json("probe.json") == {"ok": True}
