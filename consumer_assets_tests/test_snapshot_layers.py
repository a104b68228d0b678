"""Snapshots stored as a base plus daily layers of changes: every day reads back as if built from scratch."""

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest

from consumer_assets.asset_keys import HISTORIES, RAW_EVENTS
from consumer_assets.features.build_snapshot import Compaction, build_snapshot, snapshot_frame
from consumer_assets.features.histories import HistoryConfig, histories_from_scratch
from consumer_assets.features.snapshots import Layer, iter_snapshot_batches, layers_of, read_snapshot
from consumer_assets.features.spark import SparkStorage
from consumer_assets.ingest.contract import EVENT_SCHEMA
from consumer_assets.simulation import ShopSimulator, SimulationConfig
from consumer_assets.storage import PartitionBusyError, StorageError, StorageRoot
from consumer_assets.storage.lease import partition_lease

pytestmark = (
    pytest.mark.slow
)  # tens of seconds of Spark, training or servers: `make test` runs it, `make test-fast` does not

START = date(2026, 9, 1)
CONFIG = HistoryConfig(window_days=4, max_events=20)


def _land(root: StorageRoot, days: int) -> list[date]:
    simulator = ShopSimulator(SimulationConfig(profiles=300, seed=5))
    landed = []
    for day_events in simulator.simulate(START, days):
        root.write_partition(RAW_EVENTS, day_events.day, day_events.events)
        landed.append(day_events.day)
    return landed


def _from_scratch(spark, spark_storage: SparkStorage, day: date) -> list[dict]:
    days = [
        d for d in spark_storage.root.list_partitions(RAW_EVENTS) if day - timedelta(days=CONFIG.window_days) < d <= day
    ]
    return _by_profile(
        histories_from_scratch(spark.read.parquet(*spark_storage.input_paths(RAW_EVENTS, days)), day, CONFIG)
        .toArrow()
        .to_pylist()
    )


def _by_profile(rows: list[dict]) -> list[dict]:
    return sorted(rows, key=lambda row: row["profile_id"])


def _build_days(spark, spark_storage: SparkStorage, days: list[date], compaction: Compaction) -> list[str]:
    return [build_snapshot(spark, spark_storage, day, CONFIG, files=1, compaction=compaction).mode for day in days]


def test_a_day_is_written_in_full_once_the_layers_reach_the_share_or_the_count():
    base = Layer(START, ("base.parquet",), 100)
    changes = [Layer(START + timedelta(days=k), (f"{k}.parquet",), 45) for k in (1, 2, 3)]
    by_share = Compaction(max_change_share=1.0, max_layers=8)
    assert by_share.why_full([base]) is None
    assert by_share.why_full([base, *changes[:2]]) is None  # 90 < 100
    assert "reached 1 x its 100 rows" in by_share.why_full([base, *changes])  # 135 >= 100
    assert "already has 3 layers" in Compaction(max_change_share=10.0, max_layers=3).why_full([base, *changes[:2]])
    assert Compaction(max_change_share=0).why_full([base]) is not None


def test_every_day_of_a_layered_chain_equals_the_snapshot_from_scratch(spark, tmp_path):
    root = StorageRoot(str(tmp_path))
    spark_storage = SparkStorage(root)
    days = _land(root, 6)
    root.write_partition(
        RAW_EVENTS, days[3], EVENT_SCHEMA.empty_table()
    )  # a quiet day: no event, nothing leaves the window yet
    modes = _build_days(spark, spark_storage, days, Compaction(max_change_share=3.0, max_layers=4))

    assert modes[0] == "from_scratch"
    assert modes[4] == "compacted" and modes.count("incremental") == 4  # day 4: D-1 has max_layers layers
    assert layers_of(root.manifest(HISTORIES, days[3]), days[3])[-1].rows == 0
    assert max(len(layers_of(root.manifest(HISTORIES, d), d)) for d in days) == 4
    for day in days:
        expected = _from_scratch(spark, spark_storage, day)
        assert len(expected) > 25
        assert root.manifest(HISTORIES, day).rows == len(expected), day
        assert _by_profile(read_snapshot(root, day).to_pylist()) == expected, day
        assert _by_profile(snapshot_frame(spark, spark_storage, day).toArrow().to_pylist()) == expected, day
    streamed = [
        row
        for batch in iter_snapshot_batches(root, days[-1], batch_rows=50, columns=["profile_id", "dt_cutoff_s"])
        for row in batch.to_pylist()
    ]
    assert _by_profile(streamed) == [
        {"profile_id": r["profile_id"], "dt_cutoff_s": r["dt_cutoff_s"]}
        for r in _from_scratch(spark, spark_storage, days[-1])
    ]


def test_a_layer_holds_only_the_changed_profiles_and_the_plain_reader_refuses_it(spark, tmp_path):
    root = StorageRoot(str(tmp_path))
    spark_storage = SparkStorage(root)
    first, second = _land(root, 2)
    _build_days(spark, spark_storage, [first, second], Compaction())
    base, changes = layers_of(root.manifest(HISTORIES, second), second)
    active_today = set(root.read_partition(RAW_EVENTS, second, columns=["profile_id"]).column("profile_id").to_pylist())
    assert (base.day, changes.day) == (first, second)
    assert (
        changes.rows == len(active_today) < root.manifest(HISTORIES, second).rows
    )  # nothing leaves a 4-day window yet
    with pytest.raises(StorageError, match="read_snapshot"):
        root.read_partition(HISTORIES, second)


def test_rewriting_an_earlier_day_leaves_later_snapshots_as_they_were(spark, tmp_path):
    root = StorageRoot(str(tmp_path))
    spark_storage = SparkStorage(root)
    days = _land(root, 5)
    _build_days(spark, spark_storage, days, Compaction(max_change_share=10.0, max_layers=10))
    before = _by_profile(read_snapshot(root, days[-1]).to_pylist())
    build_snapshot(
        spark, spark_storage, days[2], CONFIG, files=1, compaction=Compaction(max_change_share=0)
    )  # re-run, now in full
    assert len(layers_of(root.manifest(HISTORIES, days[2]), days[2])) == 1
    assert _by_profile(read_snapshot(root, days[-1]).to_pylist()) == before


def test_max_change_share_zero_writes_every_snapshot_in_full(spark, tmp_path):
    root = StorageRoot(str(tmp_path))
    spark_storage = SparkStorage(root)
    days = _land(root, 3)
    assert _build_days(spark, spark_storage, days, Compaction(max_change_share=0)) == [
        "from_scratch",
        "compacted",
        "compacted",
    ]
    assert _by_profile(root.read_partition(HISTORIES, days[-1]).to_pylist()) == _from_scratch(
        spark, spark_storage, days[-1]
    )


def test_layers_on_s3_are_copied_on_the_server_and_read_back(spark, s3_endpoint, s3_bucket):
    root = StorageRoot(f"s3://{s3_bucket}/layers", endpoint_url=s3_endpoint)
    spark_storage = SparkStorage(root, scratch_dir=None)
    days = _land(root, 3)
    assert _build_days(spark, spark_storage, days, Compaction(max_change_share=10.0)) == [
        "from_scratch",
        "incremental",
        "incremental",
    ]
    manifest = root.manifest(HISTORIES, days[-1])
    assert len(manifest.files) == 3 and all(
        root.exists(f"{HISTORIES}/date={days[-1]}/{name}") for name in manifest.files
    )
    assert _by_profile(read_snapshot(root, days[-1]).to_pylist()) == _from_scratch(spark, spark_storage, days[-1])


def test_a_snapshot_held_by_another_writer_is_refused_and_left_whole(spark, tmp_path):
    """Two runs of one daily_histories partition: the second fails before writing a file, naming the holder."""
    root = StorageRoot(str(tmp_path))
    spark_storage = SparkStorage(root)
    days = _land(root, 2)
    _build_days(spark, spark_storage, days, Compaction())
    manifest, files = root.manifest(HISTORIES, days[1]), root.list_files(root.partition_key(HISTORIES, days[1]))
    with (
        partition_lease(root, root.partition_key(HISTORIES, days[1]), holder="host:1:the-other-run"),
        ThreadPoolExecutor(1) as other_thread,
    ):
        refused = other_thread.submit(build_snapshot, spark, spark_storage, days[1], CONFIG, 1, Compaction())
        with pytest.raises(
            PartitionBusyError, match="daily_histories/date=2026-09-02 .* being written by host:1:the-other-run"
        ):
            refused.result()
    assert (
        root.manifest(HISTORIES, days[1]) == manifest
        and root.list_files(root.partition_key(HISTORIES, days[1])) == files
    )
    assert build_snapshot(spark, spark_storage, days[1], CONFIG, files=1).manifest.rows == manifest.rows  # free again
