"""The Spark history job on hand-made and simulated events, in real Spark local mode."""

from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from consumer_assets.features.histories import HistoryConfig, histories_from_scratch, histories_incremental
from consumer_assets.ingest.contract import EVENT_SCHEMA
from consumer_assets.labels.spark import label_profiles
from consumer_assets.labels.targets import targets
from consumer_assets.simulation import ShopSimulator, SimulationConfig

D = date(2026, 10, 10)


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def _events(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    """Rows of (profile, ts, type[, category, price]) as raw_events would store them."""
    records = []
    for i, row in enumerate(rows):
        profile, ts, event_type, *rest = row
        category = rest[0] if rest else "c1"
        price = rest[1] if len(rest) > 1 else 10.0
        records.append(
            {
                "event_id": f"e{i}",
                "profile_id": profile,
                "ts": ts,
                "event_type": event_type,
                "article_id": f"a{i}",
                "brand_id": "b1",
                "category_id": category,
                "price": price,
                "platform": "web",
            }
        )
    return spark.createDataFrame(pa.Table.from_pylist(records, schema=EVENT_SCHEMA).to_pandas())


def _rows(frame: DataFrame) -> dict[str, dict]:
    return {row["profile_id"]: row.asDict(recursive=True) for row in frame.collect()}


def test_features_of_a_hand_made_history(spark):
    events = _events(
        spark,
        [
            ("p1", _at(D, 10, 0), "view"),
            ("p1", _at(D, 10, 1), "add_to_cart"),
            ("p1", _at(D - timedelta(days=1), 23, 0), "view"),
            ("p1", _at(D - timedelta(days=2), 8, 0), "order", "c1", 25.0),
        ],
    )
    [row] = _rows(histories_from_scratch(events, D, HistoryConfig(window_days=30, max_events=10))).values()
    assert row["event_type"] == ["order", "view", "view", "add_to_cart"]  # oldest first
    assert row["length"] == 4
    assert row["dt_prev_s"] == [0.0, 39 * 3600.0, 11 * 3600.0, 60.0]
    assert row["dt_cutoff_s"][-1] == 14 * 3600 - 60
    assert row["hour"] == [8, 23, 10, 10]
    assert row["weekday"][-1] == D.weekday()
    assert (row["window_events"], row["window_view"], row["window_order"], row["window_add_to_cart"]) == (4, 2, 1, 1)
    assert row["window_spend"] == 25.0
    assert row["active_days"] == 3
    assert row["recency_s"] == 14 * 3600 - 60


def test_last_l_events_and_exact_window_totals(spark):
    rows = [("p1", _at(D, 0, m), "view") for m in range(30)]
    [row] = _rows(histories_from_scratch(_events(spark, rows), D, HistoryConfig(window_days=5, max_events=8))).values()
    assert row["length"] == 8
    assert row["hour"] == [0] * 8
    assert [int(s) for s in row["dt_prev_s"][1:]] == [60] * 7
    assert row["dt_cutoff_s"][-1] == 24 * 3600 - 29 * 60  # the newest event is kept
    assert row["window_events"] == 30  # totals are not capped by L


def test_window_drops_old_events_and_inactive_profiles(spark):
    events = _events(
        spark,
        [
            ("old", _at(D - timedelta(days=5), 12), "view"),
            ("mixed", _at(D - timedelta(days=5), 12), "view"),
            ("mixed", _at(D - timedelta(days=1), 12), "view"),
        ],
    )
    snapshot = _rows(histories_from_scratch(events, D, HistoryConfig(window_days=3, max_events=10)))
    assert set(snapshot) == {"mixed"}
    assert snapshot["mixed"]["length"] == 1 and snapshot["mixed"]["active_days"] == 1


def test_no_leakage_later_events_leave_the_snapshot_unchanged(spark):
    config = HistoryConfig(window_days=10, max_events=5)
    before = [("p1", _at(D, 9), "view"), ("p2", _at(D - timedelta(days=1), 9), "view")]
    later = [
        ("p1", _at(D + timedelta(days=1), 0), "order"),
        ("p3", _at(D + timedelta(days=1), 5), "view"),
        ("p2", _at(D, 23, 59), "add_to_cart"),
    ]
    snapshot = _rows(histories_from_scratch(_events(spark, before + later[:2]), D, config))
    with_only_before = _rows(histories_from_scratch(_events(spark, before), D, config))
    assert snapshot == with_only_before
    assert "p3" not in snapshot
    assert (
        _rows(histories_from_scratch(_events(spark, before + later), D, config))["p2"]["length"] == 2
    )  # same day still counts


def _sorted(frame: DataFrame) -> list[dict]:
    return sorted((row.asDict(recursive=True) for row in frame.collect()), key=lambda r: r["profile_id"])


def test_incremental_equals_from_scratch_on_simulated_days(spark):
    config = HistoryConfig(window_days=4, max_events=20)
    simulator = ShopSimulator(SimulationConfig(profiles=300, seed=2))
    days = [simulator.simulate_day(D + timedelta(days=k)) for k in range(7)]
    frames = [spark.createDataFrame(day.events.to_pandas()) for day in days]
    snapshot = histories_from_scratch(frames[0], days[0].day, config)
    for k in range(1, len(days)):
        snapshot = spark.createDataFrame(snapshot.toPandas(), schema=snapshot.schema)  # materialise, as storage does
        snapshot = histories_incremental(snapshot, frames[k], days[k].day, config)
    everything = frames[0]
    for frame in frames[1:]:
        everything = everything.unionByName(frame)
    expected = histories_from_scratch(everything, days[-1].day, config)
    incremental, scratch = _sorted(snapshot), _sorted(expected)
    assert len(scratch) > 50
    assert incremental == scratch


def test_labels_count_orders_in_the_horizon_only(spark):
    profiles = (
        _events(
            spark,
            [
                ("p1", _at(D, 1), "view"),
                ("p2", _at(D, 1), "view"),
                ("p3", _at(D, 1), "view"),
                ("p4", _at(D, 1), "view"),
            ],
        )
        .select("profile_id")
        .distinct()
    )
    later = _events(
        spark,
        [
            ("p1", _at(D + timedelta(days=1), 0), "order", "c1"),  # first instant of the window
            ("p2", _at(D + timedelta(days=7), 23), "order", "c2"),  # last day of the window
            ("p3", _at(D + timedelta(days=3), 12), "add_to_cart", "c1"),  # not an order
            ("p9", _at(D + timedelta(days=2), 12), "order", "c1"),  # not in the snapshot
        ],
    )
    groups = {"tops": ["c1"], "shoes": ["c2", "c3"]}
    labels = _rows(label_profiles(profiles, later, D, 7, groups))
    assert targets(groups) == ["order_any", "order_tops", "order_shoes"]
    assert set(labels) == {"p1", "p2", "p3", "p4"}
    assert (labels["p1"]["order_any"], labels["p1"]["order_tops"], labels["p1"]["order_shoes"]) == (1, 1, 0)
    assert (labels["p2"]["order_any"], labels["p2"]["order_tops"], labels["p2"]["order_shoes"]) == (1, 0, 1)
    assert labels["p3"]["order_any"] == labels["p4"]["order_any"] == 0
    assert labels["p1"]["label_window_end"] == D + timedelta(days=7)
