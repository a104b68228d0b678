"""The article catalogue: its export validated like the events, joined into the histories as of each event's day,
its gaps and late arrivals handled."""

import gzip
import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pyarrow.compute as pc
import pytest

from consumer_assets.asset_keys import ARTICLE_CATALOGUE, ARTICLE_GROUPS_KEY, HISTORIES, LABELS
from consumer_assets.automation.resources import LandingSensorResource
from consumer_assets.automation.sensors import catalogue_sensor
from consumer_assets.definitions import defs
from consumer_assets.features.assets import feature_assets, feature_checks
from consumer_assets.features.build_snapshot import CatalogueJoin
from consumer_assets.features.resources import FeatureResource, SparkResource
from consumer_assets.features.snapshots import read_snapshot
from consumer_assets.ingest.assets import article_catalogue, ingest_assets, ingest_checks, raw_events
from consumer_assets.ingest.catalogue import (
    MissingCatalogueError,
    catalogue_as_of,
    catalogue_prefix,
    check_article,
    ingest_catalogue,
)
from consumer_assets.ingest.day import read_quarantine
from consumer_assets.ingest.landing_zone import COMPLETE_MARKER
from consumer_assets.ingest.resources import DataQualityResource
from consumer_assets.io_manager import PartitionIOManager
from consumer_assets.labels.assets import labels_asset
from consumer_assets.labels.targets import group_rule
from consumer_assets.simulation import ShopSimulator, SimulationConfig, land_day
from consumer_assets.storage import StorageRoot
from consumer_assets.storage.resources import StorageResource
from consumer_assets.timeline import Timeline

DAY = date(2026, 10, 5)
ARTICLE = {
    "article_id": "a1",
    "brand_id": "b1",
    "category_id": "c1",
    "price": 19.9,
    "launch_date": "2026-10-01",
    "colour": "navy",
    "material": "wool",
}


def _export(root: StorageRoot, day: date, lines: list[str], name: str = "catalogue-0000.jsonl.gz") -> None:
    root.write_bytes(f"{catalogue_prefix(day)}/{name}", gzip.compress(("\n".join(lines) + "\n").encode()))
    root.write_bytes(f"{catalogue_prefix(day)}/{COMPLETE_MARKER}", b"")


# --- the contract and one day's export ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"article_id": None}, "missing_field:article_id"),
        ({"article_id": ""}, "empty:article_id"),
        ({"brand_id": 7}, "wrong_type:brand_id"),
        ({"colour": "x" * 300}, "too_long:colour"),
        ({"price": -1}, "negative_price"),
        ({"price": "12,50"}, "wrong_type:price"),
        ({"launch_date": "2026-02-30"}, "bad_date:launch_date"),
        ({"launch_date": "1 Oct 2026"}, "bad_date:launch_date"),
    ],
)
def test_a_bad_article_line_gets_its_reason(change, reason):
    assert check_article({**ARTICLE, **change}) == (None, reason)


def test_an_article_needs_only_its_id():
    article, reason = check_article({"article_id": "a9"})
    assert reason is None and article == dict.fromkeys(ARTICLE, None) | {"article_id": "a9"}


def test_the_export_is_kept_once_per_article_with_its_quarantine_and_exact_bookkeeping(tmp_path):
    root = StorageRoot(str(tmp_path))
    lines = [
        json.dumps(ARTICLE),
        json.dumps({**ARTICLE, "article_id": "a2", "launch_date": DAY.isoformat()}),
        json.dumps(ARTICLE),  # the same line again
        json.dumps({**ARTICLE, "price": 25.0}),  # the same id, another price: the first line wins
        json.dumps({**ARTICLE, "article_id": "a3", "price": -2}),
        "{not json",
    ]
    _export(root, DAY, lines)
    whole = gzip.compress(
        ("\n".join(json.dumps({**ARTICLE, "article_id": f"x{i}"}) for i in range(50)) + "\n").encode()
    )
    root.write_bytes(f"{catalogue_prefix(DAY)}/catalogue-0001.jsonl.gz", whole[: len(whole) // 2])  # cut off
    report = ingest_catalogue(root, DAY)
    assert report.files == 2
    assert report.rows_read == report.articles + report.rows_quarantined + report.duplicates
    assert (report.duplicates, report.conflicting, report.launched_today) == (2, 1, 1)
    assert report.quarantine_reasons == {"malformed_json": 1, "negative_price": 1, "truncated_file": 1}
    stored = root.read_partition(ARTICLE_CATALOGUE, DAY)
    assert stored.num_rows == report.articles and len(set(stored.column("article_id").to_pylist())) == stored.num_rows
    assert stored.filter(pc.equal(stored.column("article_id"), "a1")).column("price").to_pylist() == [19.9]
    quarantine = read_quarantine(root, DAY, ARTICLE_CATALOGUE)
    assert sorted(quarantine.column("reason").to_pylist()) == ["malformed_json", "negative_price", "truncated_file"]


def test_a_missing_export_is_named_and_a_day_without_one_stands_on_the_latest_before(tmp_path):
    root = StorageRoot(str(tmp_path))
    with pytest.raises(MissingCatalogueError, match=f"No catalogue export for {DAY}.*latest earlier catalogue"):
        ingest_catalogue(root, DAY)
    stored = [DAY - timedelta(days=3), DAY - timedelta(days=1)]
    assert catalogue_as_of(stored, DAY, max_age_days=7) == DAY - timedelta(days=1)
    assert catalogue_as_of(stored, DAY, max_age_days=0) is None
    assert catalogue_as_of([*stored, DAY + timedelta(days=1)], DAY, 7) == DAY - timedelta(days=1)  # never a later one


def test_the_catalogue_sensor_requests_a_complete_export_once(tmp_path):
    root = StorageRoot(str(tmp_path))
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    _export(root, yesterday, [json.dumps(ARTICLE)])
    resources = {"storage": StorageResource(root=root.uri), "landing": LandingSensorResource()}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources, definitions=defs)
        [request] = catalogue_sensor(context)
        assert request.partition_key == yesterday.isoformat()
        again = dg.build_sensor_context(instance=instance, cursor=context.cursor, resources=resources, definitions=defs)
        assert isinstance(catalogue_sensor(again), dg.SkipReason)


def test_a_late_export_has_its_days_histories_rebuilt():
    """histories D built while D's export was missing are rebuilt once it lands; the snapshots after follow in turn."""
    histories, catalogue = dg.AssetKey(HISTORIES), dg.AssetKey(ARTICLE_CATALOGUE)
    with dg.instance_for_test() as instance:
        for key in ("raw_events", HISTORIES):
            instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=DAY.isoformat()))
        when, cursor = datetime(2026, 10, 6, 3, tzinfo=UTC), None
        for _ in range(2):  # the steady state
            when += timedelta(minutes=1)
            result = dg.evaluate_automation_conditions(
                defs=defs, instance=instance, asset_selection=dg.AssetSelection.assets(histories), evaluation_time=when
            )
            cursor = result.cursor
        instance.report_runless_asset_event(dg.AssetMaterialization(catalogue, partition=DAY.isoformat()))
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            asset_selection=dg.AssetSelection.assets(histories),
            evaluation_time=when + timedelta(minutes=1),
            cursor=cursor,
        )
        assert sorted(result.get_requested_partitions(histories)) == [DAY.isoformat()]


# --- joined into the histories (Spark) ----------------------------------------------------------------------------


def _resources(root: StorageRoot, tmp_path) -> dict:
    storage = StorageResource(root=root.uri)
    return {
        "storage": storage,
        "partition_io_manager": PartitionIOManager(storage=storage),
        "quality": DataQualityResource(),
        "spark": SparkResource(master="local[2]", shuffle_partitions=4, scratch_dir=str(tmp_path)),
        "features": FeatureResource(window_days=3, max_events=20, output_files=1, catalogue_max_age_days=1),
    }


def _materialise(assets, resources, day: date) -> dg.ExecuteInProcessResult:
    return dg.materialize(assets, resources=resources, partition_key=day.isoformat(), raise_on_error=False)


@pytest.mark.slow
def test_events_with_the_article_id_alone_get_their_attributes_from_the_catalogue(spark, tmp_path):
    root = StorageRoot(str(tmp_path / "root"))
    shop = ShopSimulator(SimulationConfig(profiles=1500, seed=5))  # enough orders in two days for every group
    days = list(shop.simulate(DAY, 4))
    for day_events in days:
        land_day(root, day_events, article_attributes=False, catalogue=day_events.day != DAY + timedelta(days=2))
    resources = _resources(root, tmp_path)
    everything = [*ingest_assets, *ingest_checks, *feature_assets, *feature_checks]
    first = _materialise(everything, resources, DAY)
    assert first.success
    assert root.read_partition("raw_events", DAY).column("brand_id").null_count == root.manifest("raw_events", DAY).rows
    snapshot = read_snapshot(root, DAY, columns=["article_id", "brand_id", "category_id", "price"])
    truth = days[0].catalogue
    brand_of = dict(zip(truth.column("article_id").to_pylist(), truth.column("brand_id").to_pylist(), strict=True))
    articles = pc.list_flatten(snapshot.column("article_id")).to_pylist()
    assert pc.list_flatten(snapshot.column("brand_id")).to_pylist() == [brand_of[a] for a in articles]
    assert pc.list_flatten(snapshot.column("price")).null_count == 0
    checks = {c.check_name: c for c in first.get_asset_check_evaluations()}
    assert checks["check_catalogue_coverage"].passed
    assert checks["check_catalogue_coverage"].metadata["coverage"].value == 1.0

    # Day 3 has no export: its article_catalogue run fails and names it, the histories stand on day 2's catalogue.
    for k in (1, 2):
        result = _materialise(
            [raw_events, *feature_assets, *feature_checks] + ([article_catalogue] if k == 1 else []),
            resources,
            DAY + timedelta(days=k),
        )
        assert result.success
    missing = _materialise([article_catalogue], resources, DAY + timedelta(days=2))
    assert "No catalogue export for 2026-10-07" in missing.failure_data_for_node(ARTICLE_CATALOGUE).error.message
    joined = CatalogueJoin.from_json(root.manifest(HISTORIES, DAY + timedelta(days=2)).properties["catalogue"])
    assert joined.catalogue_day == (DAY + timedelta(days=1)).isoformat()
    assert 0.5 < joined.in_catalogue / joined.events < 0.95  # yesterday's catalogue lacks today's new arrivals

    # Targets from the catalogue: orders of events that carried the article id alone, labelled by brand, price band
    # and new arrivals, as the simulator's own events (which carry the attributes) say they should be.
    brands = sorted(set(days[1].events.column("brand_id").to_pylist()))[:30]
    cheap_categories = [f"c{k}" for k in range(10)]
    groups = {
        "some brands": {"brand_id": brands},
        "premium": {"price": [45, None]},
        "new arrivals": {"launched_within_days": 30},
        "cheap basics": {"category_id": cheap_categories, "price": [None, 35]},
    }
    root.write_json(ARTICLE_GROUPS_KEY, {"groups": groups})
    labelled = _materialise([labels_asset(Timeline(label_horizon_days=2))], resources, DAY)
    assert labelled.success
    labels = root.read_partition(LABELS, DAY).to_pylist()
    expected = {name: set() for name in groups}
    standing = {days[1].day: days[1].catalogue, days[2].day: days[1].catalogue}  # day 3's export never came
    for later in days[1:3]:
        articles = {row["article_id"]: row for row in standing[later.day].to_pylist()}
        for event in later.events.filter(pc.equal(later.events.column("event_type"), "order")).to_pylist():
            article = articles.get(event["article_id"])
            if article is None:
                continue  # launched after the catalogue that stood for its day: no attributes, no group
            age = (event["ts"].date() - article["launch_date"]).days
            chosen = {
                "some brands": article["brand_id"] in brands,
                "premium": article["price"] >= 45,
                "new arrivals": 0 <= age < 30,
                "cheap basics": article["category_id"] in cheap_categories and article["price"] < 35,
            }
            for name, yes in chosen.items():
                if yes:
                    expected[name].add(event["profile_id"])
    for name in groups:
        column = "order_" + name.replace(" ", "_")
        assert {row["profile_id"] for row in labels if row[column]} == expected[name] & {
            r["profile_id"] for r in labels
        }
    assert all(expected[name] for name in groups)  # every group has orders: the comparison is not vacuous

    # Day 4 with its export but day 3's never came: day 4 joins its own; with neither, the events keep what they have.
    result = _materialise(everything, resources, DAY + timedelta(days=3))
    assert result.success
    assert CatalogueJoin.from_json(root.manifest(HISTORIES, DAY + timedelta(days=3)).properties["catalogue"]) == (
        CatalogueJoin((DAY + timedelta(days=3)).isoformat(), days[3].events.num_rows, days[3].events.num_rows)
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"colour": ["navy"]}, "unknown conditions \\['colour'\\]"),
        ({"brand_id": "b1"}, "brand_id must be a list of ids"),
        ({"price": [10]}, "price must be \\[low, high\\]"),
        ({"launched_within_days": 0}, "launched_within_days must be a positive"),
        ({}, "expected a list of category ids or a dict"),
    ],
)
def test_an_article_group_rule_that_cannot_work_is_refused_with_its_name(spec, message):
    with pytest.raises(ValueError, match=f"article group 'g': {message}"):
        group_rule("g", spec)


def test_a_list_of_categories_stays_a_group_rule():
    assert group_rule("g", ["c1", "c2"]) == {"category_id": ["c1", "c2"]}
