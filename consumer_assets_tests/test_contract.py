import base64
import gzip
import json
import os
from datetime import date

import pyarrow as pa
import pytest

from consumer_assets.ingest.contract import (
    BOM,
    EVENT_SCHEMA,
    EVENTS,
    MAX_LINE_BYTES,
    MAX_STRING_CHARS,
    QUARANTINE_SCHEMA,
    LandingLines,
    ParsedFile,
    inflate,
    parse_lines,
    parse_stream,
    pieces_of,
)

DAY = date(2026, 10, 5)


def parse_file(data: bytes, day: date, source: str) -> ParsedFile:
    """A whole file's parse in one result, from the chunks ingest streams."""
    chunks = list(parse_stream(pieces_of(data), day, source, EVENTS))
    return ParsedFile(
        rows=pa.concat_tables([EVENT_SCHEMA.empty_table(), *[c.rows for c in chunks]]),
        quarantine=pa.concat_tables([QUARANTINE_SCHEMA.empty_table(), *[c.quarantine for c in chunks]]),
        lines_read=sum(c.lines_read for c in chunks),
    )


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
    parsed = parse_lines([line], DAY, "f.jsonl.gz", EVENTS)
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
        (
            '{"event_id":"e1","profile_id":"p1","ts":"2026-10-05T12:00:00Z","event_type":"view",'
            '"article_id":"a1","price":NaN}',
            "malformed_json",
        ),
        (json.dumps(_event(ts=True)), "wrong_type:ts"),
        (json.dumps(_event(ts="2026-10-05T12:00:00")), "bad_timestamp"),  # no zone: ambiguous
        (json.dumps(_event(ts="yesterday")), "bad_timestamp"),
        (json.dumps(_event(event_type="click")), "unknown_event_type"),
        (json.dumps(_event(price=-3.0)), "negative_price"),
        (json.dumps(_event(ts="2026-10-06T00:00:00Z")), "ts_outside_day"),
        (json.dumps(_event(ts="2026-10-05T23:30:00-01:00")), "ts_outside_day"),
        ("[" * 100_000, "nesting_too_deep"),  # RecursionError in the parser
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nesting_too_deep"),
        (
            json.dumps(_event(profile_id="\ud800")),
            "invalid_unicode:profile_id",
        ),  # a lone surrogate: valid JSON, no UTF-8
        (json.dumps(_event(brand_id="b\udc80")), "invalid_unicode:brand_id"),
        (json.dumps(_event(profile_id="")), "empty:profile_id"),
        (json.dumps(_event(category_id="")), "empty:category_id"),
        (json.dumps(_event(event_id="x" * (MAX_STRING_CHARS + 1))), "too_long:event_id"),
        (json.dumps(_event(article_id="x" * 10_000)), "too_long:article_id"),
        (json.dumps(_event(profile_id="p\u0000")), "unprintable:profile_id"),  # NUL
        (json.dumps(_event(platform="web\n")), "unprintable:platform"),
        (json.dumps(_event(article_id="a\u2028b")), "unprintable:article_id"),
        (json.dumps(_event(profile_id="../../x")), None),  # an id is data; whoever builds a path from one makes it safe
        (json.dumps(_event(profile_id="x" * MAX_STRING_CHARS)), None),
    ],
)
def test_each_contract_rule(line: str, reason: str | None):
    assert _reason(line) == reason


def test_good_rows_are_typed():
    parsed = parse_lines(
        [json.dumps(_event()), json.dumps(_event(event_id="e2", ts=1791201600000, price=...))], DAY, "f", EVENTS
    )
    assert parsed.rows.schema == EVENT_SCHEMA
    rows = parsed.rows.to_pylist()
    assert rows[0]["ts"] == rows[1]["ts"]
    assert rows[1]["price"] is None


def test_quarantine_keeps_raw_line_file_and_line_number():
    lines = [json.dumps(_event()), "", "{broken", json.dumps(_event(event_id="e2"))]
    parsed = parse_lines(lines, DAY, "landing/x.jsonl.gz", EVENTS)
    assert parsed.lines_read == 3  # blank lines are not rows
    assert parsed.quarantine.to_pylist() == [
        {
            "source_file": "landing/x.jsonl.gz",
            "line_number": 3,
            "raw_line": "{broken",
            "reason": "malformed_json",
            "byte_offset": None,
        }
    ]


def test_first_fault_is_the_reason():
    assert _reason(json.dumps(_event(profile_id=..., event_type="click", price=-1))) == "missing_field:profile_id"


def _lines(count: int, **overrides) -> list[bytes]:
    return [json.dumps(_event(event_id=f"e{i}", **overrides)).encode() for i in range(count)]


def test_a_cut_off_gzip_keeps_every_complete_line_and_quarantines_the_rest_with_its_offset():
    text = b"\n".join(_lines(200)) + b"\n"
    data = gzip.compress(text)
    parsed = parse_file(data[: len(data) // 2], DAY, "landing/cut.jsonl.gz")
    *good, last = parsed.quarantine.to_pylist()
    assert good == []
    assert last["reason"] == "truncated_file" and last["source_file"] == "landing/cut.jsonl.gz"
    recovered = last["byte_offset"]
    assert 0 < recovered < len(text)
    complete = text[:recovered].count(b"\n")  # every line whose newline arrived
    assert parsed.kept == complete and last["line_number"] == complete + 1
    assert base64.b64decode(last["raw_line"]) == text[:recovered].rsplit(b"\n", 1)[1]  # the partial line, kept
    assert parsed.lines_read == parsed.kept + parsed.quarantine.num_rows


def test_damaged_bytes_inside_a_gzip_keep_the_lines_before_them():
    text = b"\n".join(_lines(2_000)) + b"\n"
    data = bytearray(gzip.compress(text))
    data[len(data) // 2 : len(data) // 2 + 16] = b"\xff" * 16
    parsed = parse_file(bytes(data), DAY, "landing/damaged.jsonl.gz")
    # zlib decodes on past the damage (garbage lines, quarantined one by one) until the checksum fails at the end.
    [fault] = [r for r in parsed.quarantine.to_pylist() if r["reason"] == "corrupt_file"]
    assert fault["byte_offset"] > 0 and 500 < parsed.kept < 2_000
    assert parsed.lines_read == parsed.kept + parsed.quarantine.num_rows


def test_not_gzip_at_all_is_one_corrupt_file_row():
    parsed = parse_file(b"plain text, not gzip", DAY, "landing/plain.jsonl.gz")
    assert parsed.kept == 0 and parsed.lines_read == 1
    assert [(r["reason"], r["byte_offset"]) for r in parsed.quarantine.to_pylist()] == [("corrupt_file", 0)]


def test_a_line_of_bad_bytes_is_quarantined_alone_with_its_bytes():
    latin1 = json.dumps(_event(event_id="bad", article_id="caf\u00e9"), ensure_ascii=False).encode("latin-1")
    lines = _lines(20)
    data = gzip.compress(b"\n".join([*lines[:10], latin1, *lines[10:]]) + b"\n")
    parsed = parse_file(data, DAY, "f")
    assert parsed.kept == 20
    [row] = parsed.quarantine.to_pylist()
    assert row["reason"] == "bad_encoding" and row["line_number"] == 11
    assert base64.b64decode(row["raw_line"]) == latin1


def test_a_bom_crlf_and_the_separators_json_allows_inside_strings_are_not_line_ends():
    odd = [
        json.dumps(_event(event_id=f"u{i}", note=f"a{sep}b"), ensure_ascii=False).encode()
        for i, sep in enumerate(("\u2028", "\u2029", "\u0085"))
    ]
    data = gzip.compress(BOM + b"\r\n".join([*_lines(3), *odd]) + b"\r\n")
    parsed = parse_file(data, DAY, "f")
    assert parsed.quarantine.num_rows == 0 and parsed.kept == parsed.lines_read == 6
    assert parsed.rows.column("event_id").to_pylist()[3:] == ["u0", "u1", "u2"]


def test_an_over_long_line_is_quarantined_with_its_start_kept():
    huge = json.dumps(
        _event(event_id="huge", article_id=os.urandom(MAX_LINE_BYTES // 2 + 10).hex())
    ).encode()  # not a bomb: hex inflates 2x
    parsed = parse_file(gzip.compress(b"\n".join([*_lines(2), huge])), DAY, "f")
    assert parsed.kept == 2
    [row] = parsed.quarantine.to_pylist()
    assert row["reason"] == "line_too_long" and len(row["raw_line"]) <= 4096


def test_several_gzip_members_are_one_file():
    lines = _lines(30)
    data = gzip.compress(b"\n".join(lines[:10]) + b"\n") + gzip.compress(b"\n".join(lines[10:]) + b"\n")
    assert inflate(data) == (b"\n".join(lines) + b"\n", None)
    assert parse_file(data, DAY, "f").kept == 30


def test_poison_lines_cost_only_themselves():
    """Every line the parser or pyarrow could choke on is quarantined alone; the good lines around it are typed."""
    poison = [
        b"[" * 100_000,
        json.dumps(_event(event_id="s", profile_id="\ud800")).encode(),
        json.dumps(_event(event_id="z", profile_id="")).encode(),
        json.dumps(_event(event_id="n", profile_id="a\u0000b")).encode(),
        json.dumps(_event(event_id="l", profile_id="p" * 10_000)).encode(),
    ]
    good = _lines(10)
    data = gzip.compress(b"\n".join([good[0], *poison, *good[1:]]) + b"\n")
    parsed = parse_file(data, DAY, "f")
    assert parsed.kept == 10 and parsed.rows.column("event_id").to_pylist() == [f"e{i}" for i in range(10)]
    assert parsed.quarantine.column("reason").to_pylist() == [
        "nesting_too_deep",
        "invalid_unicode:profile_id",
        "empty:profile_id",
        "unprintable:profile_id",
        "too_long:profile_id",
    ]
    assert parsed.quarantine.column("line_number").to_pylist() == [2, 3, 4, 5, 6]
    assert parsed.lines_read == parsed.kept + parsed.quarantine.num_rows


def _bomb(lines: int) -> bytes:
    """A small gzip of many short lines: the issue's 67 KB that inflates to 33 M lines, scaled by ``lines``."""
    return gzip.compress(b"1\n" * lines, compresslevel=9)


def test_an_inflation_bomb_stops_after_a_megabyte_and_the_rest_is_one_quarantined_row():
    data = _bomb(33_000_000)
    assert len(data) < 100_000
    parsed = parse_file(gzip.compress(b"\n".join(_lines(5)) + b"\n") + data, DAY, "landing/bomb.jsonl.gz")
    assert parsed.kept == 5  # the good lines before it
    reasons = parsed.quarantine.column("reason").to_pylist()
    assert reasons[-1] == "inflation_bomb" and set(reasons[:-1]) <= {
        "not_an_object"
    }  # its lines inflated before the verdict
    assert parsed.lines_read < 1_500_000  # about a megabyte of its lines, not 33 million
    fault = parsed.quarantine.to_pylist()[-1]
    assert 0 < fault["byte_offset"] < 3 << 20


def test_a_normal_file_inflates_without_tripping_the_ratio():
    text = b"\n".join(_lines(50_000)) + b"\n"
    data = gzip.compress(text, compresslevel=9)
    assert len(text) / len(data) > 10  # repetitive events, as compressible as a real tracker's
    assert inflate(data) == (text, None)


def test_lines_beyond_the_per_file_limit_are_one_quarantined_row():
    text = b"\n".join(_lines(30)) + b"\n"
    reader = LandingLines(pieces_of(gzip.compress(text)), max_lines=12)
    assert len(list(reader)) == 12
    assert reader.fault.reason == "too_many_lines"
    assert reader.fault.byte_offset == len(b"".join(line + b"\n" for line in _lines(12)))
