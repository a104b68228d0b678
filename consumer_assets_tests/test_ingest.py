"""raw_events end to end: landing files in, typed Parquet and quarantine out, on a folder and on S3."""

import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import boto3
import botocore.exceptions
import dagster as dg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from consumer_assets.asset_keys import RAW_EVENTS
from consumer_assets.ingest import day as ingest_module
from consumer_assets.ingest.assets import ingest_checks, raw_events
from consumer_assets.ingest.contract import EVENT_SCHEMA
from consumer_assets.ingest.day import ingest_day, ingest_report, read_quarantine
from consumer_assets.ingest.resources import DataQualityResource
from consumer_assets.io_manager import PartitionIOManager
from consumer_assets.simulation import ShopSimulator, SimulationConfig, land_day, simulate_to_landing
from consumer_assets.storage import StorageError, StorageRoot
from consumer_assets.storage.resources import StorageResource
from local_servers import SeaweedFS

START = date(2026, 10, 1)


def _resources(uri: str, endpoint: str | None, **quality) -> dict:
    storage = StorageResource(root=uri, endpoint_url=endpoint)
    return {
        "storage": storage,
        "partition_io_manager": PartitionIOManager(storage=storage),
        "quality": DataQualityResource(**quality),
    }


def _materialize(uri, endpoint, day: date, **quality) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [raw_events, *ingest_checks],
        resources=_resources(uri, endpoint, **quality),
        partition_key=day.isoformat(),
        raise_on_error=False,
    )


def test_raw_events_materialise_with_checks_and_exact_bookkeeping(root: StorageRoot, root_uri):
    landed = simulate_to_landing(root, START, 2, SimulationConfig(profiles=600, seed=5), bad_rate=0.01)
    day = START + timedelta(days=1)
    result = _materialize(*root_uri, day)
    assert result.success
    metadata = result.asset_materializations_for_node("raw_events")[0].metadata
    read, kept, quarantined, dups = (
        metadata[k].value for k in ("rows_read", "rows_kept", "rows_quarantined", "duplicates")
    )
    assert read == kept + quarantined + dups
    bad = landed[1].bad_rows
    assert dups == bad["duplicate"]
    # Every injected violation, plus the truncated file as one row, is in quarantine.
    assert quarantined == sum(v for k, v in bad.items() if k != "duplicate")
    stored = root.read_partition(RAW_EVENTS, day)
    assert stored.num_rows == kept
    assert pc.count_distinct(stored.column("event_id")).as_py() == kept
    assert read_quarantine(root, day).num_rows == quarantined
    assert ingest_report(root, day).rows_quarantined == quarantined  # one manifest holds events, quarantine and figures
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert set(checks) == {"check_quarantine_rate", "check_no_null_keys", "check_timestamps_inside_day"}
    assert all(c.passed for c in checks.values())
    assert checks["check_quarantine_rate"].metadata["quarantine_rate"].value == pytest.approx(quarantined / read)


def test_rematerialising_replaces_the_partition(tmp_path: Path):
    uri = str(tmp_path / "root")
    simulate_to_landing(StorageRoot(uri), START, 1, SimulationConfig(profiles=300), bad_rate=0.0)
    first = _materialize(uri, None, START)
    second = _materialize(uri, None, START)
    assert first.success and second.success
    root = StorageRoot(uri)
    assert (
        root.read_partition(RAW_EVENTS, START).num_rows
        == first.asset_materializations_for_node("raw_events")[0].metadata["rows_kept"].value
    )
    assert len(root.list_files(f"{RAW_EVENTS}/date={START}", ".parquet")) == 1


def test_duplicates_of_earlier_days_are_dropped(tmp_path: Path):
    root = StorageRoot(str(tmp_path))
    simulator = ShopSimulator(SimulationConfig(profiles=300))
    first = simulator.simulate_day(START)
    land_day(root, first)
    assert _materialize(str(tmp_path), None, START).success
    second = simulator.simulate_day(START + timedelta(days=1))
    # The tracker re-sends five of yesterday's events with today's timestamps.
    ts_index = first.events.schema.get_field_index("ts")
    resent = first.events.slice(0, 5).set_column(ts_index, "ts", second.events.column("ts").slice(0, 5))
    second.events = pa.concat_tables([second.events, resent])
    land_day(root, second)
    report = ingest_day(root, START + timedelta(days=1), lookback_days=3)
    assert report.duplicates == 5
    assert (
        report.rows_kept
        == second.events.num_rows - 5
        == root.read_partition(RAW_EVENTS, START + timedelta(days=1)).num_rows
    )


def test_chunks_and_files_do_not_change_what_is_kept(tmp_path: Path, monkeypatch):
    """A day read 97 lines at a time into files of 200 rows keeps what one read of the whole day keeps."""
    whole, chunked = StorageRoot(str(tmp_path / "whole")), StorageRoot(str(tmp_path / "chunked"))
    for root in (whole, chunked):
        simulate_to_landing(root, START, 1, SimulationConfig(profiles=800, seed=3), bad_rate=0.02)
    expected = ingest_day(whole, START)
    monkeypatch.setattr(ingest_module, "ROWS_PER_FILE", 200)
    report = ingest_day(chunked, START, chunk_lines=97)
    assert report == expected
    assert report.rows_read == report.rows_kept + report.rows_quarantined + report.duplicates
    assert report.duplicates > 0 and report.rows_quarantined > 0  # duplicates across chunks and files were found
    assert len(chunked.manifest(RAW_EVENTS, START).files) > 2
    ids = lambda root: sorted(root.read_partition(RAW_EVENTS, START).column("event_id").to_pylist())  # noqa: E731
    assert ids(chunked) == ids(whole)

    def line(root):
        return sorted(
            zip(
                *read_quarantine(root, START).select(["source_file", "line_number", "reason"]).to_pydict().values(),
                strict=True,
            )
        )

    assert line(chunked) == line(whole)


def test_a_run_that_fails_part_way_leaves_the_previous_day_whole(tmp_path: Path, monkeypatch):
    """Events and quarantine land together or not at all: a storage fault after the first files changes nothing readers
    see."""
    root = StorageRoot(str(tmp_path))
    simulate_to_landing(root, START, 1, SimulationConfig(profiles=600, seed=4), bad_rate=0.02)
    before = ingest_day(root, START)
    manifest = root.manifest(RAW_EVENTS, START)
    simulate_to_landing(
        root, START, 1, SimulationConfig(profiles=900, seed=8), bad_rate=0.05
    )  # the day is landed again, differently
    written = []
    real_write_tables = StorageRoot.write_tables

    def failing_write_tables(self, *args, **kwargs):
        if written:
            raise OSError("No space left on device")
        written.append(args)
        return real_write_tables(self, *args, **kwargs)

    monkeypatch.setattr(StorageRoot, "write_tables", failing_write_tables)
    with pytest.raises(OSError, match="No space left"):
        ingest_day(root, START, chunk_lines=100)
    monkeypatch.undo()
    assert root.manifest(RAW_EVENTS, START) == manifest
    assert ingest_report(root, START) == before
    assert read_quarantine(root, START).num_rows == before.rows_quarantined
    assert root.read_partition(RAW_EVENTS, START).num_rows == before.rows_kept
    after = ingest_day(root, START)  # the lease was released: the next run writes the day
    assert after.rows_read > before.rows_read


def test_a_high_quarantine_rate_fails_with_error_and_blocks(tmp_path: Path):
    uri = str(tmp_path)
    simulate_to_landing(StorageRoot(uri), START, 1, SimulationConfig(profiles=300), bad_rate=0.2)
    result = _materialize(uri, None, START, quarantine_warn_rate=0.02, quarantine_error_rate=0.10)
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "check_quarantine_rate")
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["quarantine_rate"].value > 0.10


def test_a_moderate_quarantine_rate_warns(tmp_path: Path):
    uri = str(tmp_path)
    simulate_to_landing(StorageRoot(uri), START, 1, SimulationConfig(profiles=300), bad_rate=0.05)
    result = _materialize(uri, None, START)
    check = next(c for c in result.get_asset_check_evaluations() if c.check_name == "check_quarantine_rate")
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN


def test_a_day_without_landing_files_names_the_missing_prefix(tmp_path: Path):
    result = _materialize(str(tmp_path), None, START)
    assert not result.success
    failure = result.failure_data_for_node("raw_events")
    assert f"{tmp_path}/landing/events/date=2026-10-01/" in failure.error.message
    assert not StorageRoot(str(tmp_path)).has_partition(RAW_EVENTS, START)


def test_simulate_command_writes_landing_files_and_truth(tmp_path: Path):
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "consumer_assets.cli",
            "simulate",
            "--root",
            str(tmp_path),
            "--start",
            "2026-10-01",
            "--days",
            "2",
            "--profiles",
            "200",
            "--bad-rate",
            "0.01",
            "--tracking-fault-from",
            "2026-10-02",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "events/s" in completed.stdout
    root = StorageRoot(str(tmp_path))
    assert root.list_files("landing/events/date=2026-10-02", ".jsonl.gz")
    assert root.list_partitions("truth/order_any") == [date(2026, 10, 1), date(2026, 10, 2)]
    drift = root.read_json("truth/simulation.json")["config"]["drift"]
    assert drift["tracking_fault_from"] == "2026-10-02" and drift["season_shift_from"] is None


@pytest.mark.slow
def test_an_s3_server_cut_off_mid_run_leaves_the_previous_day_whole(tmp_path: Path, monkeypatch, s3_endpoint):
    """SeaweedFS stopped after the run's first files: the run fails, the stored day is untouched, and after the
    server is back (and the dead writer's lease has expired) the next run writes the day."""
    server = SeaweedFS(tmp_path / "seaweedfs")  # a server of its own, to stop mid-run
    try:
        boto3.client("s3", endpoint_url=server.endpoint, region_name="us-east-1").create_bucket(Bucket="shop")
        root = StorageRoot("s3://shop/cut", endpoint_url=server.endpoint, lease_seconds=3)
        simulate_to_landing(root, START, 1, SimulationConfig(profiles=600, seed=4), bad_rate=0.02)
        before = ingest_day(root, START)
        manifest = root.manifest(RAW_EVENTS, START)
        simulate_to_landing(
            root, START, 1, SimulationConfig(profiles=900, seed=8), bad_rate=0.05
        )  # landed again, differently
        real_write_tables = StorageRoot.write_tables

        def server_gone_after_first_files(self, *args, **kwargs):
            names = real_write_tables(self, *args, **kwargs)
            if server.process.poll() is None:
                server.stop()
            return names

        monkeypatch.setattr(StorageRoot, "write_tables", server_gone_after_first_files)
        with pytest.raises(Exception) as failure:
            ingest_day(root, START, chunk_lines=100)
        monkeypatch.undo()
        assert isinstance(failure.value, OSError | botocore.exceptions.EndpointConnectionError), failure.value
        server.start()
        assert root.manifest(RAW_EVENTS, START) == manifest
        assert ingest_report(root, START) == before
        assert read_quarantine(root, START).num_rows == before.rows_quarantined
        assert root.read_partition(RAW_EVENTS, START).num_rows == before.rows_kept
        time.sleep(3)  # the failed writer could not release its lease; it expires
        after = ingest_day(root, START)
        assert after.rows_read == after.rows_kept + after.rows_quarantined + after.duplicates
        assert after.rows_read > before.rows_read and read_quarantine(root, START).num_rows == after.rows_quarantined
    finally:
        if server.process.poll() is None:
            server.stop()


def test_a_missing_bucket_is_named(s3_endpoint):
    root = StorageRoot("s3://no-such-bucket/shop", endpoint_url=s3_endpoint)
    with pytest.raises(StorageError, match=r"S3 bucket 'no-such-bucket' at http://127.0.0.1:\d+ does not exist"):
        ingest_day(root, START)


def test_a_day_written_before_the_bookkeeping_moved_says_to_materialise_it_again(tmp_path: Path):
    root = StorageRoot(str(tmp_path))
    root.write_partition(RAW_EVENTS, START, EVENT_SCHEMA.empty_table())  # as the IO manager wrote raw_events before
    with pytest.raises(
        StorageError,
        match="written before its quarantine and bookkeeping moved.*materialise raw_events for that day again",
    ):
        ingest_report(root, START)


def test_poison_lines_and_a_gzip_bomb_do_not_stop_the_day(tmp_path: Path):
    """The issue's reproductions, landed beside a normal day: the day commits, every good line kept, the books add
    up."""
    import gzip
    import json

    from consumer_assets.ingest.landing_zone import landing_prefix

    root = StorageRoot(str(tmp_path))
    landed = simulate_to_landing(root, START, 1, SimulationConfig(profiles=300, seed=2))[0]
    good = {"profile_id": "p-good", "ts": f"{START}T10:00:00Z", "event_type": "view", "article_id": "a1"}
    poison = [
        "[" * 100_000,
        json.dumps({**good, "event_id": "surrogate", "profile_id": "\ud800"}),
        json.dumps({**good, "event_id": "empty", "profile_id": ""}),
        json.dumps({**good, "event_id": "kept"}),
    ]
    root.write_bytes(f"{landing_prefix(START)}/poison.jsonl.gz", gzip.compress("\n".join(poison).encode()))
    root.write_bytes(f"{landing_prefix(START)}/bomb.jsonl.gz", gzip.compress(b"1\n" * 33_000_000, compresslevel=9))
    report = ingest_day(root, START)
    assert report.rows_read == report.rows_kept + report.rows_quarantined + report.duplicates
    assert report.rows_kept == landed.events + 1  # the simulated day and the one good poison-file line
    reasons = report.quarantine_reasons
    assert (
        reasons["nesting_too_deep"]
        == reasons["invalid_unicode:profile_id"]
        == reasons["empty:profile_id"]
        == reasons["inflation_bomb"]
        == 1
    )
    stored = root.read_partition(RAW_EVENTS, START)
    assert "kept" in stored.column("event_id").to_pylist() and "" not in stored.column("profile_id").to_pylist()
