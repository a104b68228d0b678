import gzip
import json
from datetime import date

import pytest

from consumer_assets.ingest.contract import EVENT_SCHEMA, parse_file, parse_lines

DAY = date(2026, 10, 5)


def _event(**overrides) -> dict:
    event = {
        "event_id": "e1",
        "profile_id": "p1",
        "ts": "2026-10-05T12:00:00.000+00:00",
        "event_type": "view",
        "article_id": "a1",
        "brand_id": "b1",
        "category_id": "c1",
        "price": 19.9,
        "platform": "web",
    }
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not ...}


def _reason(line: str) -> str | None:
    parsed = parse_lines([line], DAY, "f.jsonl.gz")
    assert parsed.lines_read == parsed.kept + parsed.quarantine.num_rows == 1
    return parsed.quarantine.column("reason").to_pylist()[0] if parsed.quarantine.num_rows else None


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (json.dumps(_event()), None),
        (json.dumps(_event(ts=1791201600000)), None),  # epoch milliseconds, 2026-10-05T12:00Z
        (json.dumps(_event(ts="2026-10-05T14:00:00+02:00")), None),
        (json.dumps(_event(ts="2026-10-05T12:00:00Z", unknown_field=[1, 2])), None),
        (json.dumps(_event(brand_id=..., category_id=..., price=..., platform=...)), None),
        ('{"event_id": "e1", "profile_id"', "malformed_json"),
        ("[1, 2, 3]", "not_an_object"),
        (json.dumps(_event(profile_id=...)), "missing_field:profile_id"),
        (json.dumps(_event(event_id=None)), "missing_field:event_id"),
        (json.dumps(_event(ts=...)), "missing_field:ts"),
        (json.dumps(_event(profile_id=12345)), "wrong_type:profile_id"),
        (json.dumps(_event(brand_id=7)), "wrong_type:brand_id"),
        (json.dumps(_event(price="12,50 EUR")), "wrong_type:price"),
        (json.dumps(_event(price=True)), "wrong_type:price"),
        ('{"event_id":"e1","profile_id":"p1","ts":"2026-10-05T12:00:00Z","event_type":"view","article_id":"a1","price":NaN}', "malformed_json"),
        (json.dumps(_event(ts=True)), "wrong_type:ts"),
        (json.dumps(_event(ts="2026-10-05T12:00:00")), "bad_timestamp"),  # no zone: ambiguous
        (json.dumps(_event(ts="yesterday")), "bad_timestamp"),
        (json.dumps(_event(event_type="click")), "unknown_event_type"),
        (json.dumps(_event(price=-3.0)), "negative_price"),
        (json.dumps(_event(ts="2026-10-06T00:00:00Z")), "ts_outside_day"),
        (json.dumps(_event(ts="2026-10-05T23:30:00-01:00")), "ts_outside_day"),
    ],
)
def test_each_contract_rule(line: str, reason: str | None):
    assert _reason(line) == reason


def test_good_rows_are_typed():
    parsed = parse_lines([json.dumps(_event()), json.dumps(_event(event_id="e2", ts=1791201600000, price=...))], DAY, "f")
    assert parsed.events.schema == EVENT_SCHEMA
    rows = parsed.events.to_pylist()
    assert rows[0]["ts"] == rows[1]["ts"]
    assert rows[1]["price"] is None


def test_quarantine_keeps_raw_line_file_and_line_number():
    lines = [json.dumps(_event()), "", "{broken", json.dumps(_event(event_id="e2"))]
    parsed = parse_lines(lines, DAY, "landing/x.jsonl.gz")
    assert parsed.lines_read == 3  # blank lines are not rows
    assert parsed.quarantine.to_pylist() == [
        {"source_file": "landing/x.jsonl.gz", "line_number": 3, "raw_line": "{broken", "reason": "malformed_json"}
    ]


def test_first_fault_is_the_reason():
    assert _reason(json.dumps(_event(profile_id=..., event_type="click", price=-1))) == "missing_field:profile_id"


def test_truncated_gzip_file_is_quarantined_whole():
    data = gzip.compress(("\n".join(json.dumps(_event(event_id=f"e{i}")) for i in range(200)) + "\n").encode())
    parsed = parse_file(data[: len(data) // 2], DAY, "landing/cut.jsonl.gz")
    assert parsed.kept == 0
    assert parsed.lines_read == 1
    [row] = parsed.quarantine.to_pylist()
    assert row["source_file"] == "landing/cut.jsonl.gz"
    assert row["reason"].startswith("corrupt_file:")


def test_not_gzip_at_all_is_quarantined_whole():
    parsed = parse_file(b"plain text, not gzip", DAY, "landing/plain.jsonl.gz")
    assert parsed.quarantine.column("reason").to_pylist() == ["corrupt_file:BadGzipFile"]
