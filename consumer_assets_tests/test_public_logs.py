"""Published event logs in: each format's rows land in the contract and ingest with nothing lost."""

import gzip
import json
from collections import Counter
from datetime import date
from pathlib import Path

import pyarrow.compute as pc
import pytest

from consumer_assets.cli import main
from consumer_assets.ingest.day import ingest_day, read_quarantine
from consumer_assets.ingest.public_logs import ImportFormatError, import_log
from consumer_assets.storage import StorageRoot

# 2015-06-01 22:00 UTC and the next day; RetailRocket's timestamps are milliseconds
RETAILROCKET = """timestamp,visitorid,event,itemid,transactionid
1433196000000,257597,view,355908,
1433196060000,257597,addtocart,355908,
1433196120000,257597,transaction,355908,4000
1433282400000,992329,view,248676,
1433282460000,992329,click,248676,
oops,2,view,3,
1,2,3
"""

REES46 = """event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde
2019-10-01 00:00:01 UTC,cart,3900821,2053013552326770905,appliances.heater,aqua,33.20,554748717,9333dfbd
2019-10-01 00:00:02 UTC,remove_from_cart,3900821,2053013552326770905,appliances.heater,aqua,33.20,554748717,9333dfbd
2019-10-01 00:00:03 UTC,purchase,17200506,2053013559792632471,furniture.bedroom,,543.10,519107250,566511c2
2019-10-02 10:00:00 UTC,view,1307067,2053013558920217191,computers.notebook,lenovo,12,50 EUR,550050854,7c90fc70
2019-10-02 10:00:01 UTC,view,1307067,2053013558920217191,computers.notebook,lenovo,-5.0,550050854,7c90fc70
2019-10-02 10:00:02 UTC,view,1307067,2053013558920217191,computers.notebook,lenovo,inf,550050854,7c90fc70
2019-13-02 10:00:03 UTC,view,1307067,2053013558920217191,computers.notebook,lenovo,1.0,550050854,7c90fc70
"""

# Taobao has no header; its timestamps are seconds (2017-11-25 and 2017-11-26 UTC)
TAOBAO = """1,2268318,2520377,pv,1511568000
1,2333346,2520771,fav,1511568060
1,2576651,149192,cart,1511568120
1,3830808,4181361,buy,1511568180
100,2268318,2520377,pv,1511654400
100,,2520377,pv,1511654460
100,2268318,2520377,pv,99999999999999
"""

OTTO = [
    {
        "session": 0,
        "events": [
            {"aid": 1517085, "ts": 1659304800025, "type": "clicks"},
            {"aid": 1563459, "ts": 1659304904511, "type": "carts"},
            {"aid": 1563459, "ts": 1659304904, "type": "orders"},  # seconds, as re-exports write them
        ],
    },
    {"session": 1, "events": [{"aid": 424964, "ts": 1659391200000, "type": "clicks"}, {"aid": 5, "type": "clicks"}]},
    {"session": 2, "events": [{"aid": 7, "ts": 1659391200001, "type": "scrolls"}]},
]


def _write(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _ingest_all(root: StorageRoot, days: list[str]):
    reports = [ingest_day(root, date.fromisoformat(day)) for day in days]
    for report in reports:
        assert report.rows_read == report.rows_kept + report.rows_quarantined + report.duplicates
    return reports


def _kept_types(root: StorageRoot, days: list[str]) -> Counter:
    types = Counter()
    for day in days:
        types.update(root.read_partition("raw_events", day).column("event_type").to_pylist())
    return types


def _quarantined(root: StorageRoot, days: list[str]) -> Counter:
    reasons = Counter()
    for day in days:
        reasons.update(read_quarantine(root, date.fromisoformat(day)).column("reason").to_pylist())
    return reasons


def test_retailrocket_events_land_per_utc_day_and_ingest_with_nothing_lost(tmp_path: Path):
    root = StorageRoot(str(tmp_path / "root"))
    report = import_log(root, _write(tmp_path / "events.csv", RETAILROCKET), "retailrocket")
    assert (report.rows, report.landed, report.rejected) == (7, 5, 2)
    assert report.rejected_reasons == {"unreadable_timestamp": 1, "column_count:3": 1}
    assert report.days == ["2015-06-01", "2015-06-02"]
    reports = _ingest_all(root, report.days)
    assert sum(r.rows_read for r in reports) == report.landed
    assert _kept_types(root, report.days) == {"view": 2, "add_to_cart": 1, "order": 1}
    assert _quarantined(root, report.days) == {"unknown_event_type": 1}  # "click" reaches the contract as it was
    rejected = [
        json.loads(line)
        for key in root.list_files("imports/retailrocket/events", ".jsonl.gz")
        for line in gzip.decompress(root.read_bytes(key)).decode().splitlines()
    ]
    assert sorted(r["text"] for r in rejected) == ["1,2,3", "oops,2,view,3,"]


def test_rees46_keeps_brand_category_and_price_and_hands_bad_prices_to_the_contract(tmp_path: Path):
    root = StorageRoot(str(tmp_path / "root"))
    report = import_log(root, _write(tmp_path / "2019-Oct.csv.gz", REES46), "rees46")
    assert report.days == ["2019-10-01", "2019-10-02"]
    # "12,50 EUR" splits into one column too many; a 13th month has no timestamp
    assert report.rejected_reasons == {"column_count:10": 1, "unreadable_timestamp": 1}
    _ingest_all(root, report.days)
    assert _kept_types(root, report.days) == {"view": 1, "add_to_cart": 1, "remove_from_cart": 1, "order": 1}
    assert _quarantined(root, report.days) == {"negative_price": 1, "wrong_type:price": 1}
    first = root.read_partition("raw_events", "2019-10-01").sort_by("ts")
    assert first.column("brand_id").to_pylist() == ["shiseido", "aqua", "aqua", None]  # an empty brand is absent
    assert first.column("category_id")[0].as_py() == "2103807459595387724"
    assert pc.sum(first.column("price")).as_py() == pytest.approx(35.79 + 33.20 + 33.20 + 543.10)


def test_taobao_seconds_and_behaviours_map_to_the_contract(tmp_path: Path):
    root = StorageRoot(str(tmp_path / "root"))
    report = import_log(root, _write(tmp_path / "UserBehavior.csv", TAOBAO), "taobao")
    assert report.days == ["2017-11-25", "2017-11-26"]
    assert report.rejected_reasons == {"timestamp_out_of_range": 1}
    _ingest_all(root, report.days)
    assert _kept_types(root, report.days) == {"view": 2, "wishlist": 1, "add_to_cart": 1, "order": 1}
    assert _quarantined(root, report.days) == {"empty:article_id": 1}


def test_otto_sessions_become_profiles_and_each_event_lands_once(tmp_path: Path):
    root = StorageRoot(str(tmp_path / "root"))
    text = "\n".join(json.dumps(session) for session in OTTO) + "\n{not json\n"
    report = import_log(root, _write(tmp_path / "train.jsonl", text), "otto")
    assert report.days == ["2022-07-31", "2022-08-01"]
    assert report.rejected_reasons == {"unreadable_timestamp": 1, "malformed_json": 1}
    _ingest_all(root, report.days)
    assert _kept_types(root, report.days) == {"view": 2, "add_to_cart": 1, "order": 1}
    assert _quarantined(root, report.days) == {"unknown_event_type": 1}
    session = root.read_partition("raw_events", "2022-07-31").sort_by("ts")
    assert session.column("event_id").to_pylist() == ["otto:train:0:0", "otto:train:0:2", "otto:train:0:1"]
    assert session.column("profile_id").unique().to_pylist() == ["0"]
    assert session.column("ts")[1].value == 1659304904000  # the order given in seconds, in milliseconds


def test_importing_again_writes_the_same_files_and_ingest_keeps_each_event_once(tmp_path: Path):
    root = StorageRoot(str(tmp_path / "root"))
    source = _write(tmp_path / "events.csv", RETAILROCKET)
    first = import_log(root, source, "retailrocket")
    files = {key: root.read_bytes(key) for key in root.list_files("landing")}
    assert import_log(root, source, "retailrocket") == first
    assert {key: root.read_bytes(key) for key in root.list_files("landing")} == files
    assert sum(r.rows_kept for r in _ingest_all(root, first.days)) == 4


def test_a_file_of_another_format_is_refused_before_anything_lands(tmp_path: Path):
    root = StorageRoot(str(tmp_path / "root"))
    with pytest.raises(ImportFormatError, match="not a rees46 file: its header is 'timestamp,visitorid"):
        import_log(root, _write(tmp_path / "events.csv", RETAILROCKET), "rees46")
    with pytest.raises(ImportFormatError, match="not an otto file"):
        import_log(root, _write(tmp_path / "UserBehavior.csv", TAOBAO), "otto")
    assert root.list_files("landing") == []


def test_import_command_prints_the_days_and_the_start_date_to_set(tmp_path: Path, capsys):
    source = _write(tmp_path / "UserBehavior.csv", TAOBAO)
    assert main(["import", "taobao", str(source), "--root", str(tmp_path / "root")]) == 0
    out = capsys.readouterr().out
    assert "6 events over 2 days (2017-11-25 to 2017-11-26), 1 row rejected (timestamp_out_of_range 1)" in out
    assert "CONSUMER_ASSETS_START_DATE=2017-11-25" in out
    assert main(["import", "otto", str(source), "--root", str(tmp_path / "root")]) == 1
    assert "not an otto file" in capsys.readouterr().err


# RetailRocket's item properties: a category logged on 2015-06-01, changed for item 7 on 2015-06-08 (in part 2)
ITEM_PROPERTIES_1 = """timestamp,itemid,property,value
1433116800000,7,categoryid,1338
1433116800000,9,categoryid,491
1433116800000,7,790,n5880.000
1433116800000,9,available,1
oops,11,categoryid,5
"""
ITEM_PROPERTIES_2 = """timestamp,itemid,property,value
1433721600000,7,categoryid,1277
1433721600000,12,categoryid
"""


def test_retailrocket_item_properties_become_catalogue_exports_as_of_each_logged_day(tmp_path: Path):
    from consumer_assets.asset_keys import ARTICLE_CATALOGUE
    from consumer_assets.ingest.catalogue import ingest_catalogue
    from consumer_assets.ingest.public_logs import import_catalogue

    root = StorageRoot(str(tmp_path / "root"))
    parts = [_write(tmp_path / "item_properties_part1.csv", ITEM_PROPERTIES_1)]
    parts.append(_write(tmp_path / "item_properties_part2.csv.gz", ITEM_PROPERTIES_2))
    report = import_catalogue(root, parts, "retailrocket-items")
    assert report.days == ["2015-06-01", "2015-06-08"]
    assert (report.rows, report.unmapped, report.rejected) == (7, 2, 2)
    assert report.rejected_reasons == {"unreadable_timestamp": 1, "column_count:3": 1}
    assert report.landed == 2 + 2  # both items in each export
    categories = {}
    for day in report.days:
        assert ingest_catalogue(root, date.fromisoformat(day)).rows_quarantined == 0
        stored = root.read_partition(ARTICLE_CATALOGUE, day)
        categories[day] = dict(zip(stored.column("article_id").to_pylist(), stored.column("category_id").to_pylist()))
    assert categories == {"2015-06-01": {"7": "1338", "9": "491"}, "2015-06-08": {"7": "1277", "9": "491"}}
    with pytest.raises(ImportFormatError, match="not a retailrocket-items file"):
        import_catalogue(root, [_write(tmp_path / "events.csv", RETAILROCKET)], "retailrocket-items")
