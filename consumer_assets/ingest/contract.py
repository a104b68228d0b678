"""The landing zone's event contract: parse, validate, type, and say why a row is rejected.

A row that breaks the contract is never dropped silently and never stops the day:
it goes to quarantine with its raw line and a reason. A file that cannot be
decompressed is quarantined as a whole. Reasons are stable strings (``kind`` or
``kind:field``) so that dashboards and checks can count them.
"""

from __future__ import annotations

import gzip
import json
import math
import re
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import pyarrow as pa

REQUIRED_STRINGS = ("event_id", "profile_id", "event_type", "article_id")
OPTIONAL_STRINGS = ("brand_id", "category_id", "platform")
EVENT_TYPES = ("view", "wishlist", "add_to_cart", "remove_from_cart", "order")  # ordered: window totals and the simulator follow it
FIELDS = ("event_id", "profile_id", "ts", "event_type", "article_id", "brand_id", "category_id", "price", "platform")

EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("profile_id", pa.string(), nullable=False),
        pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("brand_id", pa.string()),
        pa.field("category_id", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("platform", pa.string()),
    ]
)

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source_file", pa.string(), nullable=False),
        pa.field("line_number", pa.int64()),
        pa.field("raw_line", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
    ]
)

_ZONED_ISO = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$"


@dataclass
class ParsedFile:
    """The rows of one landing file that honour the contract, and those that do not."""

    events: pa.Table
    quarantine: pa.Table
    lines_read: int

    @property
    def kept(self) -> int:
        return self.events.num_rows


def parse_file(data: bytes, day: date, source: str) -> ParsedFile:
    """Parse one gzip JSON-lines file of ``day``'s folder."""
    try:
        text = gzip.decompress(data).decode("utf-8")
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:
        reason = f"corrupt_file:{type(exc).__name__}"
        quarantine = pa.table(
            {"source_file": [source], "line_number": pa.array([None], pa.int64()), "raw_line": pa.array([None], pa.string()), "reason": [reason]},
            schema=QUARANTINE_SCHEMA,
        )
        return ParsedFile(events=EVENT_SCHEMA.empty_table(), quarantine=quarantine, lines_read=1)
    return parse_lines(text.splitlines(), day, source)


def parse_lines(lines: list[str], day: date | None, source: str) -> ParsedFile:
    """Validate JSON lines against the contract; blank lines are not rows. ``day=None``: any day (the online service)."""
    columns: dict[str, list] = {name: [] for name in FIELDS}
    bad: dict[str, list] = {"line_number": [], "raw_line": [], "reason": []}
    read = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        read += 1
        try:
            obj = parse_json(line)
        except ValueError:
            event, reason = None, "malformed_json"
        else:
            event, reason = check_event(obj, day)
        if reason is not None:
            bad["line_number"].append(number)
            bad["raw_line"].append(line)
            bad["reason"].append(reason)
            continue
        for name in FIELDS:
            columns[name].append(event[name])
    arrays = {name: pa.array(columns[name], EVENT_SCHEMA.field(name).type if name != "ts" else pa.int64()) for name in FIELDS}
    arrays["ts"] = arrays["ts"].cast(pa.timestamp("ms", tz="UTC"))
    events = pa.table([arrays[name] for name in EVENT_SCHEMA.names], schema=EVENT_SCHEMA)
    quarantine = pa.table({"source_file": [source] * len(bad["reason"]), **bad}, schema=QUARANTINE_SCHEMA)
    return ParsedFile(events=events, quarantine=quarantine, lines_read=read)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str | bytes):
    """``json.loads`` without NaN and Infinity, which are not JSON though Python's parser accepts them."""
    return json.loads(text, parse_constant=_reject_constant)


def _is(value, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and not isinstance(value, bool)


_MILLIS_RANGE = (-9_223_372_036_854, 9_223_372_036_854)  # what a timestamp in milliseconds can hold (Arrow, pandas)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _millis(ts) -> int | None:
    """Epoch milliseconds of a contract timestamp (int milliseconds or zoned ISO 8601 text), None when it is not one."""
    if _is(ts, (int,)):
        return ts if _MILLIS_RANGE[0] <= ts <= _MILLIS_RANGE[1] else None
    if not re.match(_ZONED_ISO, ts):
        return None
    try:
        moment = datetime.fromisoformat(ts)
    except ValueError:  # a 30th of February, an hour 25
        return None
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def check_event(obj, day: date | None = None) -> tuple[dict | None, str | None]:
    """One parsed JSON value against the contract: (the typed event, None) or (None, the first fault's reason).

    The one place the rules live: landing files (``parse_lines``) and the online
    service (``POST /events``) both call it. ``ts`` comes back in epoch milliseconds.
    """
    if not isinstance(obj, dict):
        return None, "not_an_object"
    for name in ("event_id", "profile_id", "ts", "event_type", "article_id"):
        if obj.get(name) is None:
            return None, f"missing_field:{name}"
    for name in REQUIRED_STRINGS:
        if not _is(obj[name], (str,)):
            return None, f"wrong_type:{name}"
    for name in OPTIONAL_STRINGS:
        if obj.get(name) is not None and not _is(obj[name], (str,)):
            return None, f"wrong_type:{name}"
    ts = obj["ts"]
    if not _is(ts, (int, str)):
        return None, "wrong_type:ts"
    millis = _millis(ts)
    if millis is None:
        return None, "bad_timestamp"
    if day is not None:
        start = (datetime(day.year, day.month, day.day, tzinfo=timezone.utc) - _EPOCH) // timedelta(milliseconds=1)
        if not start <= millis < start + 86_400_000:
            return None, "ts_outside_day"
    if obj["event_type"] not in EVENT_TYPES:
        return None, "unknown_event_type"
    price = obj.get("price")
    if price is not None:
        try:
            price = float(price) if _is(price, (int, float)) else math.nan
        except OverflowError:  # an integer beyond any float
            price = math.nan
        if not math.isfinite(price):
            return None, "wrong_type:price"
        if price < 0:
            return None, "negative_price"
    event = {name: obj.get(name) for name in FIELDS}
    event.update(ts=millis, price=price)
    return event, None
