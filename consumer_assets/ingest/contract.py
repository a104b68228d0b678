"""The landing zone's event contract: parse, validate, type, and say why a row is rejected.

A row that breaks the contract is never dropped silently and never stops the day:
it goes to quarantine with its raw line and a reason. A file that cannot be
decompressed is quarantined as a whole. Reasons are stable strings (``kind`` or
``kind:field``) so that dashboards and checks can count them.
"""

from __future__ import annotations

import gzip
import json
import zlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
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
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    line_numbers = np.array([n for n, _ in numbered], dtype=np.int64)
    raw = [line for _, line in numbered]
    objects: list[dict] = []
    reasons = np.full(len(raw), None, dtype=object)
    for i, line in enumerate(raw):
        try:
            obj = json.loads(line, parse_constant=_reject_constant)
        except ValueError:
            reasons[i] = "malformed_json"
            objects.append({})
            continue
        if not isinstance(obj, dict):
            reasons[i] = "not_an_object"
            obj = {}
        objects.append(obj)

    frame = pd.DataFrame.from_records(objects, columns=list(FIELDS)) if objects else pd.DataFrame(columns=list(FIELDS))
    ts = _validate(frame, reasons, day)
    good = pd.isna(reasons)
    events = _typed_events(frame[good], ts[good])
    bad = ~good
    quarantine = pa.table(
        {
            "source_file": pa.array([source] * int(bad.sum()), pa.string()),
            "line_number": pa.array(line_numbers[bad], pa.int64()),
            "raw_line": pa.array([raw[i] for i in np.flatnonzero(bad)], pa.string()),
            "reason": pa.array(reasons[bad].tolist(), pa.string()),
        },
        schema=QUARANTINE_SCHEMA,
    )
    return ParsedFile(events=events, quarantine=quarantine, lines_read=len(raw))


def _reject_constant(name: str) -> None:
    """NaN and Infinity are not JSON, though Python's parser accepts them."""
    raise ValueError(f"{name} is not valid JSON")


def _reject(reasons: np.ndarray, mask: np.ndarray | pd.Series, reason: str) -> None:
    """Give ``reason`` to the rows in ``mask`` that have none yet: the first fault found is reported."""
    mask = np.asarray(mask, dtype=bool) & pd.isna(reasons)
    reasons[mask] = reason


def _is_type(column: pd.Series, kinds: tuple[type, ...]) -> np.ndarray:
    return column.map(lambda v: isinstance(v, kinds) and not isinstance(v, bool)).to_numpy(dtype=bool)


def _validate(frame: pd.DataFrame, reasons: np.ndarray, day: date | None) -> pd.Series:
    """Set a reason on every row that breaks the contract; returns the parsed timestamps."""
    for name in ("event_id", "profile_id", "ts", "event_type", "article_id"):
        _reject(reasons, frame[name].isna(), f"missing_field:{name}")
    for name in REQUIRED_STRINGS:
        _reject(reasons, ~_is_type(frame[name], (str,)), f"wrong_type:{name}")
    for name in OPTIONAL_STRINGS:
        _reject(reasons, frame[name].notna() & ~_is_type(frame[name], (str,)), f"wrong_type:{name}")

    ts_raw = frame["ts"]
    is_millis = _is_type(ts_raw, (int,))
    is_text = _is_type(ts_raw, (str,))
    _reject(reasons, ~(is_millis | is_text), "wrong_type:ts")
    text = ts_raw.where(is_text).astype("string")
    _reject(reasons, is_text & ~text.str.match(_ZONED_ISO).fillna(False).to_numpy(dtype=bool), "bad_timestamp")
    parsed_text = pd.to_datetime(text.where(pd.isna(reasons)), utc=True, format="ISO8601", errors="coerce")
    millis = pd.to_numeric(ts_raw.where(is_millis), errors="coerce")
    parsed_millis = pd.to_datetime(millis, unit="ms", utc=True, errors="coerce")
    ts = parsed_text.where(is_text, parsed_millis)
    _reject(reasons, ts.isna(), "bad_timestamp")
    if day is not None:
        start = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
        _reject(reasons, (ts < start) | (ts >= start + timedelta(days=1)), "ts_outside_day")

    _reject(reasons, ~frame["event_type"].isin(list(EVENT_TYPES)), "unknown_event_type")

    price = frame["price"]
    has_price = price.notna().to_numpy(dtype=bool)
    numeric = _is_type(price, (int, float))
    _reject(reasons, has_price & ~numeric, "wrong_type:price")
    values = pd.to_numeric(price.where(numeric), errors="coerce").to_numpy(dtype=float)
    _reject(reasons, has_price & numeric & ~np.isfinite(values), "wrong_type:price")
    _reject(reasons, has_price & numeric & (values < 0), "negative_price")
    return ts


def _typed_events(frame: pd.DataFrame, ts: pd.Series) -> pa.Table:
    columns = {name: pa.array(frame[name].astype(object), pa.string(), from_pandas=True) for name in (*REQUIRED_STRINGS, *OPTIONAL_STRINGS)}
    columns["ts"] = pa.Array.from_pandas(ts.dt.as_unit("ms")).cast(pa.timestamp("ms", tz="UTC"))
    columns["price"] = pa.array(pd.to_numeric(frame["price"], errors="coerce"), pa.float64(), from_pandas=True)
    return pa.table({name: columns[name] for name in EVENT_SCHEMA.names}, schema=EVENT_SCHEMA)
