"""The landing zone's event contract: parse, validate, type, and say why a row is rejected.

A row that breaks the contract is never dropped silently and never stops the day:
it goes to quarantine with its raw line and a reason. Files are read line by line: a
line ends at ``\n`` (or ``\r\n``) only, so the separators JSON allows inside strings
(U+2028, U+2029, U+0085) stay inside their line; a UTF-8 byte-order mark is dropped; a
line that is not UTF-8 is quarantined alone (``bad_encoding``, its bytes kept as
base64); a line over ``MAX_LINE_BYTES`` is quarantined (``line_too_long``, its first
``MAX_KEPT_BYTES`` kept). A gzip stream cut off (``truncated_file``) or damaged
(``corrupt_file``) keeps every complete line before the fault; what follows is one
quarantined row with the decompressed byte offset where it stopped. So does a file that
inflates beyond ``MAX_INFLATION_RATIO`` times its compressed bytes (``inflation_bomb``) or
holds more than ``MAX_LINES_PER_FILE`` lines (``too_many_lines``): no file costs more than
a bounded share of the day. Ids and the other strings are bounded too (``string_fault``).
Whatever a single line does to the parser, it is quarantined alone: a failure no rule
names becomes ``unparseable:<exception>``. Reasons are stable strings (``kind`` or
``kind:field``) so that dashboards and checks can count them.
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa

REQUIRED_STRINGS = ("event_id", "profile_id", "event_type", "article_id")
OPTIONAL_STRINGS = ("brand_id", "category_id", "platform")
EVENT_TYPES = (
    "view",
    "wishlist",
    "add_to_cart",
    "remove_from_cart",
    "order",
)  # ordered: window totals and the simulator follow it
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
        pa.field(
            "raw_line", pa.string()
        ),  # the line as text; base64 of its bytes for bad_encoding and the cut-off tail of a file
        pa.field("reason", pa.string(), nullable=False),
        pa.field("byte_offset", pa.int64()),  # truncated_file, corrupt_file: decompressed bytes read before the fault
    ]
)
MAX_LINE_BYTES = 1 << 20  # longer lines are quarantined (line_too_long): no event needs a megabyte
MAX_STRING_CHARS = 256  # ids and other string fields: longer ones are quarantined (too_long:<field>)
MAX_LINES_PER_FILE = (
    20_000_000  # a file's lines beyond this are quarantined as one row (too_many_lines): split bigger exports
)
MAX_INFLATION_RATIO = 200  # inflated / compressed bytes; JSON lines of events inflate 5-20x, a gzip bomb ~1,000x
INFLATION_GRACE_BYTES = 1 << 20  # the ratio is judged once this much is inflated: small files of repeated lines pass
MAX_KEPT_BYTES = 4096  # what a quarantined over-long line or cut-off tail keeps
BOM = b"\xef\xbb\xbf"
GZIP_PIECE = 64 * 1024  # compressed bytes read at a time
INFLATED_PIECE = 1 << 20  # most bytes one inflate step yields, so a bomb is caught after a megabyte, not a gigabyte
CHUNK_LINES = 100_000  # lines parsed, checked and handed on at a time: memory follows the chunk, not the day

_ZONED_ISO = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$"


@dataclass
class ParsedFile:
    """The rows of one landing file that honour the contract, and those that do not."""

    rows: pa.Table
    quarantine: pa.Table
    lines_read: int

    @property
    def kept(self) -> int:
        return self.rows.num_rows


@dataclass(frozen=True)
class LineContract:
    """What each line of one kind of landing file must be: its typed columns, and the check of one parsed line that
    returns (the typed row, None) or (None, the first fault's reason). Events and the catalogue export each have one."""

    schema: pa.Schema
    check: Callable[[object, date | None], tuple[dict | None, str | None]]


@dataclass(frozen=True)
class StreamFault:
    """Where a gzip stream stopped making sense."""

    reason: str  # truncated_file (it ends early), corrupt_file (not gzip), inflation_bomb, too_many_lines
    byte_offset: int  # decompressed bytes recovered before it


class LandingLines:
    """The lines of one gzip JSON-lines file, inflated piece by piece: memory holds a piece and a line, never the file.

    Iterating yields each line's bytes without its ``\n`` (a line over
    ``MAX_LINE_BYTES`` is cut to ``MAX_LINE_BYTES + 1`` bytes, enough for the parser to
    say it is too long). Afterwards ``fault`` says how the stream ended (None: whole)
    and ``tail`` holds the cut-off bytes after the last complete line.
    """

    def __init__(self, pieces: Iterable[bytes], max_lines: int = MAX_LINES_PER_FILE):
        self._pieces = pieces
        self.max_lines = max_lines
        self.fault: StreamFault | None = None
        self.tail = b""

    def __iter__(self) -> Iterator[bytes]:
        buffer, started, lines, consumed = b"", False, 0, 0
        for out in self.inflated():
            buffer += out
            if not started:
                if len(buffer) < len(BOM):
                    continue
                buffer, started = buffer.removeprefix(BOM), True
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                if lines == self.max_lines:
                    self.fault, self.tail = StreamFault("too_many_lines", consumed), line[:MAX_KEPT_BYTES]
                    return
                lines, consumed = lines + 1, consumed + len(line) + 1
                yield line[: MAX_LINE_BYTES + 1]
            buffer = buffer[: MAX_LINE_BYTES + 1]
        buffer = buffer if started else buffer.removeprefix(BOM)
        if self.fault is None:
            if buffer:
                yield buffer  # a last line without its newline is still a whole line
        else:
            self.tail = buffer

    def inflated(self) -> Iterator[bytes]:
        """Every byte the gzip stream (one member or several) yields before a fault; sets ``fault``.

        Damaged bytes make zlib fail for a whole piece; that piece is inflated again byte
        by byte from the state before it, so nothing decodable before the damage is lost.
        A stream that inflates past ``MAX_INFLATION_RATIO`` stops there (``inflation_bomb``).
        """
        inflater, produced, consumed, between_members = zlib.decompressobj(wbits=31), 0, 0, False
        for piece in self._pieces:
            data = piece
            while data:
                if between_members and not data.strip(b"\x00"):
                    break  # padding after the last member
                before = inflater.copy()
                try:
                    out = inflater.decompress(data, INFLATED_PIECE)
                    rest = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                except zlib.error:
                    inflater, parts, rest = before, [], b""
                    for k in range(len(data)):
                        try:
                            parts.append(inflater.decompress(data[k : k + 1]))
                        except zlib.error:
                            recovered = b"".join(parts)
                            yield recovered
                            self.fault = StreamFault("corrupt_file", produced + len(recovered))
                            return
                    out = b"".join(parts)
                    rest = inflater.unused_data if inflater.eof else b""
                consumed += len(data) - len(rest)
                produced += len(out)
                if produced > INFLATION_GRACE_BYTES and produced > MAX_INFLATION_RATIO * consumed:
                    self.fault = StreamFault("inflation_bomb", produced - len(out))
                    return
                yield out
                between_members = inflater.eof
                data = rest
                if inflater.eof:
                    inflater = zlib.decompressobj(wbits=31)
        if not between_members:
            self.fault = StreamFault("truncated_file", produced)


def pieces_of(data: bytes) -> Iterator[bytes]:
    return (data[i : i + GZIP_PIECE] for i in range(0, len(data), GZIP_PIECE))


def inflate(data: bytes) -> tuple[bytes, StreamFault | None]:
    """A whole gzip file's bytes before any fault, and the fault: for files small enough to hold."""
    lines = LandingLines(pieces_of(data))
    return b"".join(lines.inflated()), lines.fault


def parse_stream(
    pieces: Iterable[bytes], day: date, source: str, contract: LineContract, chunk_lines: int = CHUNK_LINES
) -> Iterator[ParsedFile]:
    """Parse one gzip JSON-lines file of ``day``'s folder against ``contract``, ``chunk_lines`` lines at a time.

    A stream cut off or damaged ends with one more chunk: the quarantined row that says
    where it stopped, with the cut-off bytes (base64, at most ``MAX_KEPT_BYTES``).
    """
    reader = LandingLines(pieces)
    lines, number = iter(reader), 1
    while chunk := list(itertools.islice(lines, chunk_lines)):
        yield parse_lines(chunk, day, source, contract, first_line=number)
        number += len(chunk)
    if reader.fault is not None:
        row = {
            "source_file": [source],
            "line_number": [number],
            "raw_line": [base64.b64encode(reader.tail[:MAX_KEPT_BYTES]).decode()],
            "reason": [reader.fault.reason],
            "byte_offset": [reader.fault.byte_offset],
        }
        yield ParsedFile(
            rows=contract.schema.empty_table(), quarantine=pa.table(row, schema=QUARANTINE_SCHEMA), lines_read=1
        )


def _decoded(line: str | bytes) -> tuple[str | None, str | None, str]:
    """(text, None, text) for a usable line; (None, reason, what quarantine keeps) for an undecodable or over-long
    one."""
    if isinstance(line, str):
        return line, None, line
    if len(line) > MAX_LINE_BYTES:
        return None, "line_too_long", line[:MAX_KEPT_BYTES].decode("utf-8", errors="replace")
    try:
        text = line.removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError:
        return None, "bad_encoding", base64.b64encode(line).decode()
    return text, None, text


def parse_lines(
    lines: list[str] | list[bytes], day: date | None, source: str, contract: LineContract, first_line: int = 1
) -> ParsedFile:
    """Validate JSON lines (text, or bytes still to decode) against ``contract``; blank lines are not rows.

    ``day=None``: any day (the online service). ``first_line`` numbers the first line
    (a chunk of a longer file).
    """
    columns: dict[str, list] = {name: [] for name in contract.schema.names}
    bad: dict[str, list] = {"line_number": [], "raw_line": [], "reason": []}
    read = 0
    for number, line in enumerate(lines, start=first_line):
        text, reason, kept = _decoded(line)
        if text is not None and not text.strip():
            continue
        read += 1
        row = None
        if reason is None:
            row, reason = _checked_line(text, day, contract)
        if reason is not None:
            bad["line_number"].append(number)
            bad["raw_line"].append(kept)
            bad["reason"].append(reason)
            continue
        for name, values in columns.items():
            values.append(row[name])
    rows = pa.table([pa.array(columns[f.name], f.type) for f in contract.schema], schema=contract.schema)
    bad["byte_offset"] = [None] * len(bad["reason"])
    quarantine = pa.table({"source_file": [source] * len(bad["reason"]), **bad}, schema=QUARANTINE_SCHEMA)
    return ParsedFile(rows=rows, quarantine=quarantine, lines_read=read)


def _checked_line(text: str, day: date | None, contract: LineContract) -> tuple[dict | None, str | None]:
    """One line through the parser and the contract; whatever it raises is this line's reason, never the day's
    failure."""
    try:
        return contract.check(parse_json(text), day)
    except RecursionError:
        return None, "nesting_too_deep"
    except ValueError:
        return None, "malformed_json"
    except Exception as exc:  # a line no rule foresaw still costs only itself
        return None, f"unparseable:{type(exc).__name__}"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(text: str | bytes):
    """``json.loads`` without NaN and Infinity, which are not JSON though Python's parser accepts them."""
    return json.loads(text, parse_constant=_reject_constant)


def _is(value, kinds: tuple[type, ...]) -> bool:
    return isinstance(value, kinds) and not isinstance(value, bool)


_MILLIS_RANGE = (-9_223_372_036_854, 9_223_372_036_854)  # what a timestamp in milliseconds can hold (Arrow, pandas)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def string_fault(value: str) -> str | None:
    """Why a string field (an id, a category, a platform) is unusable, or None.

    Non-empty (one empty id would become one giant profile), at most ``MAX_STRING_CHARS``
    characters, valid Unicode, printable (no control characters, NUL included).
    """
    if not value:
        return "empty"
    if len(value) > MAX_STRING_CHARS:
        return "too_long"
    if _SURROGATE.search(value):
        return "invalid_unicode"  # a lone surrogate escape ("\ud800"): valid JSON, but no UTF-8 holds it
    if not value.isprintable():
        return "unprintable"
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def strings_fault(obj: dict, names: tuple[str, ...]) -> str | None:
    """``wrong_type:<field>`` or ``<fault>:<field>`` of the first of these fields that is present and unusable."""
    for name in names:
        value = obj.get(name)
        if value is None:
            continue
        if not _is(value, (str,)):
            return f"wrong_type:{name}"
        if fault := string_fault(value):
            return f"{fault}:{name}"
    return None


def checked_price(value) -> tuple[float | None, str | None]:
    """(the price as a float, None), (None, None) when absent, or (None, why): a finite number, not negative."""
    if value is None:
        return None, None
    try:
        price = float(value) if _is(value, (int, float)) else math.nan
    except OverflowError:  # an integer beyond any float
        price = math.nan
    if not math.isfinite(price):
        return None, "wrong_type:price"
    if price < 0:
        return None, "negative_price"
    return price, None


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
    if fault := strings_fault(obj, REQUIRED_STRINGS + OPTIONAL_STRINGS):
        return None, fault
    ts = obj["ts"]
    if not _is(ts, (int, str)):
        return None, "wrong_type:ts"
    millis = _millis(ts)
    if millis is None:
        return None, "bad_timestamp"
    if day is not None:
        start = (datetime(day.year, day.month, day.day, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
        if not start <= millis < start + 86_400_000:
            return None, "ts_outside_day"
    if obj["event_type"] not in EVENT_TYPES:
        return None, "unknown_event_type"
    price, fault = checked_price(obj.get("price"))
    if fault:
        return None, fault
    event = {name: obj.get(name) for name in FIELDS}
    event.update(ts=millis, price=price)
    return event, None


EVENTS = LineContract(EVENT_SCHEMA, check_event)
