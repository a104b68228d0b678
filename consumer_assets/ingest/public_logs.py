"""Published e-commerce event logs turned into landing files of the event contract, so a real shop's history runs
through the platform as the tracker's files would.

The files are read as published (``.gz`` and ``.bz2`` too), streamed a block at a time:

- ``retailrocket``: RetailRocket's ``events.csv`` (timestamp in ms, visitorid, event, itemid, transactionid).
- ``rees46``: REES46 multi-category store, one CSV a month (event_time, event_type, product_id, category_id,
  category_code, brand, price, user_id, user_session).
- ``taobao``: Taobao ``UserBehavior.csv``, no header (user id, item id, category id, behaviour, timestamp in s).
- ``otto``: OTTO's ``train.jsonl`` / ``test.jsonl``, a session a line (``{"session", "events": [{aid, ts, type}]}``);
  the session stands for the profile, as OTTO publishes no user ids.

Each row becomes one contract line in the landing folder of its UTC day, with a ``_SUCCESS`` marker once the file is
through, so the landing sensor and ``raw_events`` take it from there. Event ids are the format, the file's name and the
row's ordinal: importing a file again writes the same files, and ingest keeps each event once. Nothing is dropped on
the way: a row that cannot be placed on a day (a wrong number of columns, no readable timestamp, a line that is not
JSON) is written to ``imports/<format>/<file>/rejected-*.jsonl.gz`` with its text and a reason; every other row lands as
it is, and ingest's contract judges it (an unknown behaviour or an empty id is quarantined there, with its reason).
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from consumer_assets.ingest.contract import FIELDS
from consumer_assets.ingest.landing_zone import CATALOGUE_PREFIX, COMPLETE_MARKER, landing_prefix
from consumer_assets.records import JsonRecord
from consumer_assets.storage import StorageRoot

log = logging.getLogger(__name__)

BLOCK_BYTES = 64 << 20  # CSV bytes parsed at a time: about a million rows of these logs
SESSIONS_PER_BLOCK = 50_000  # OTTO sessions parsed at a time (about 800,000 events)
IMPORTS_PREFIX = "imports"
MS_PER_DAY = 86_400_000
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
LAST_DAY = (date(9999, 12, 31).toordinal() - EPOCH_ORDINAL) * MS_PER_DAY  # later timestamps have no day
OPTIONAL = ("brand_id", "category_id", "price", "platform")


class ImportFormatError(ValueError):
    """The file is not in the format asked for (its header or first line says so)."""


@dataclass(frozen=True)
class ImportReport(JsonRecord):
    """What one imported file became; stored beside its rejected rows and printed by the command."""

    format: str
    source: str
    rows: int  # rows read: landed + rejected (+ unmapped)
    landed: int  # rows written to landing: events, or the catalogue's article lines
    rejected: int
    rejected_reasons: dict[str, int] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)  # the UTC days that received landing files
    files: int = 0
    unmapped: int = 0  # rows of a kind the platform has no field for (item properties other than the category)


@dataclass
class Block:
    """A block of a log in contract fields (``ts`` in epoch ms, null where unreadable) and the rows rejected in it."""

    events: pd.DataFrame
    rejected: list[dict]  # {"row": line number or ordinal, "text": ..., "reason": ...}


# --- CSV logs ---------------------------------------------------------------------------------------------------


def _integer_ms(values: pa.Array, scale: int) -> pa.Array:
    """Decimal integer text times ``scale`` as int64 milliseconds; null where the text is not such an integer."""
    readable = pc.match_substring_regex(values, r"^\s*-?\d{1,15}\s*$")
    numbers = pc.cast(pc.utf8_trim_whitespace(pc.if_else(readable, values, "0")), pa.int64())
    return pc.if_else(readable, pc.multiply(numbers, scale), pa.scalar(None, pa.int64()))


def _utc_text_ms(values: pa.Array) -> pa.Array:
    """REES46's ``2019-10-01 00:00:04 UTC`` as int64 milliseconds; null where unreadable."""
    moments = pc.strptime(values, format="%Y-%m-%d %H:%M:%S UTC", unit="ms", error_is_null=True)
    return pc.cast(moments, pa.int64())


@dataclass(frozen=True)
class CsvLog:
    """A published CSV log: its columns, where each contract field comes from, and its behaviour names."""

    columns: tuple[str, ...]
    header: bool  # the first line names the columns (and must name these)
    fields: dict[str, str]  # contract field -> column
    timestamp: tuple[str, Callable[[pa.Array], pa.Array]]  # column, text -> epoch ms
    event_types: dict[str, str]  # the log's behaviour -> the contract's event type


CSV_LOGS = {
    "retailrocket": CsvLog(
        columns=("timestamp", "visitorid", "event", "itemid", "transactionid"),
        header=True,
        fields={"profile_id": "visitorid", "event_type": "event", "article_id": "itemid"},
        timestamp=("timestamp", lambda values: _integer_ms(values, 1)),
        event_types={"view": "view", "addtocart": "add_to_cart", "transaction": "order"},
    ),
    "rees46": CsvLog(
        columns=(
            "event_time",
            "event_type",
            "product_id",
            "category_id",
            "category_code",
            "brand",
            "price",
            "user_id",
            "user_session",
        ),
        header=True,
        fields={
            "profile_id": "user_id",
            "event_type": "event_type",
            "article_id": "product_id",
            "brand_id": "brand",
            "category_id": "category_id",
            "price": "price",
        },
        timestamp=("event_time", _utc_text_ms),
        event_types={
            "view": "view",
            "cart": "add_to_cart",
            "remove_from_cart": "remove_from_cart",
            "purchase": "order",
        },
    ),
    "taobao": CsvLog(
        columns=("user_id", "item_id", "category_id", "behavior_type", "timestamp"),
        header=False,
        fields={
            "profile_id": "user_id",
            "event_type": "behavior_type",
            "article_id": "item_id",
            "category_id": "category_id",
        },
        timestamp=("timestamp", lambda values: _integer_ms(values, 1000)),
        event_types={"pv": "view", "fav": "wishlist", "cart": "add_to_cart", "buy": "order"},
    ),
}


def _first_line(path: Path) -> str:
    with _open_text(path) as stream:
        return stream.readline().removeprefix("\ufeff").strip()


def _check_csv(path: Path, name: str, spec: CsvLog) -> None:
    first = _first_line(path)
    if spec.header:
        named = tuple(column.strip().strip('"').lower() for column in first.split(","))
        if named != spec.columns:
            raise ImportFormatError(
                f"{path} is not a {name} file: its header is {first[:200]!r}, expected {','.join(spec.columns)}"
            )
    elif len(first.split(",")) != len(spec.columns):
        raise ImportFormatError(
            f"{path} is not a {name} file: its first line {first[:200]!r} has not {len(spec.columns)} "
            f"columns ({','.join(spec.columns)})"
        )


def _numbers_or_text(values: pd.Series) -> pd.Series:
    """Prices as floats where they are decimal numbers; other text is kept as text, for the contract to judge."""
    numeric = pd.to_numeric(values, errors="coerce")
    return numeric.astype(object).where(np.isfinite(numeric) | values.isna(), values)


def csv_blocks(path: Path, name: str) -> Iterator[Block]:
    """The blocks of a CSV log; raises ImportFormatError when its header or first line is not the format's."""
    spec = CSV_LOGS[name]
    _check_csv(path, name, spec)
    invalid: list[dict] = []

    def reject(row: pacsv.InvalidRow) -> str:
        invalid.append(
            {"row": row.number, "text": row.text, "reason": f"column_count:{row.actual_columns}"}
        )  # number: the line, when the reader knows it
        return "skip"

    reader = pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(
            column_names=list(spec.columns), skip_rows=int(spec.header), block_size=BLOCK_BYTES, use_threads=False
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=reject),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(spec.columns, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    for batch in reader:
        column, to_ms = spec.timestamp
        frame = pd.DataFrame({"ts": to_ms(batch.column(column)).to_pandas()})
        for target, source in spec.fields.items():
            values = batch.column(source).to_pandas()
            frame[target] = values.replace("", None) if target in OPTIONAL else values
        frame["event_type"] = frame["event_type"].map(spec.event_types).fillna(frame["event_type"])
        if "price" in frame:
            frame["price"] = _numbers_or_text(frame["price"])
        unreadable = batch.filter(pa.array(frame["ts"].isna().to_numpy())).to_pylist()
        rejected = [
            {"row": None, "text": ",".join(row.values()), "reason": "unreadable_timestamp"} for row in unreadable
        ]
        block = Block(events=frame, rejected=invalid + rejected)  # rows with a null ts are dropped by import_log
        invalid = []
        yield block


# --- OTTO sessions ----------------------------------------------------------------------------------------------

OTTO_EVENT_TYPES = {"clicks": "view", "carts": "add_to_cart", "orders": "order"}
SECONDS_BELOW = 10**11  # an OTTO ts under this is in seconds (re-exports), over it in milliseconds (the original)


def _open_text(path: Path):
    opener = {".gz": gzip.open, ".bz2": bz2.open}.get(path.suffix, open)
    return opener(path, "rt", encoding="utf-8", errors="replace", newline="\n")


def _otto_session(line: str) -> tuple[str, list[tuple[str, object, object]]]:
    """(session id, [(aid, ts, type)]) of one line; raises ValueError naming what is wrong."""
    obj = json.loads(line)
    if not isinstance(obj, dict) or "session" not in obj or not isinstance(obj.get("events"), list):
        raise ValueError("not_a_session")
    events = [
        (e.get("aid"), e.get("ts"), e.get("type")) if isinstance(e, dict) else (None, None, None) for e in obj["events"]
    ]
    return str(obj["session"]), events


def otto_blocks(path: Path) -> Iterator[Block]:
    """The blocks of an OTTO sessions file; raises ImportFormatError when its first line is not a session."""
    try:
        _otto_session(_first_line(path))
    except ValueError as exc:
        raise ImportFormatError(f"{path} is not an otto file: its first line is not a session ({exc})") from None
    with _open_text(path) as stream:
        numbered = enumerate(stream, start=1)
        while lines := list(itertools.islice(numbered, SESSIONS_PER_BLOCK)):
            rows, rejected = [], []
            for number, line in lines:
                if not line.strip():
                    continue
                try:
                    session, events = _otto_session(line)
                except (ValueError, RecursionError) as exc:
                    reason = str(exc) if str(exc) == "not_a_session" else "malformed_json"
                    rejected.append({"row": number, "text": line.rstrip("\n"), "reason": reason})
                    continue
                for k, (aid, ts, kind) in enumerate(events):
                    if not isinstance(ts, int) or isinstance(ts, bool):
                        rejected.append(
                            {
                                "row": number,
                                "text": json.dumps({"session": session, "event": k}),
                                "reason": "unreadable_timestamp",
                            }
                        )
                        continue
                    ms = ts * 1000 if abs(ts) < SECONDS_BELOW else ts
                    rows.append((f"{session}:{k}", session, ms, kind, None if aid is None else str(aid)))
            frame = pd.DataFrame(rows, columns=["event_key", "profile_id", "ts", "event_type", "article_id"])
            frame["event_type"] = frame["event_type"].map(OTTO_EVENT_TYPES).fillna(frame["event_type"])
            yield Block(events=frame, rejected=rejected)


# --- landing ----------------------------------------------------------------------------------------------------

FORMATS = (*CSV_LOGS, "otto")


def _blocks(path: Path, name: str) -> Iterator[Block]:
    if name == "otto":
        return otto_blocks(path)
    if name in CSV_LOGS:
        return csv_blocks(path, name)
    raise ImportFormatError(f"unknown format {name!r}: one of {', '.join(FORMATS)}")


def _file_stem(path: Path) -> str:
    stem = path.name.removesuffix(path.suffix) if path.suffix in (".gz", ".bz2") else path.name
    return re.sub(r"[^A-Za-z0-9_.-]", "_", stem.rsplit(".", 1)[0])


def _gzip_lines(frame: pd.DataFrame) -> bytes:
    return gzip.compress(frame.to_json(orient="records", lines=True).encode(), compresslevel=1)


def report_prefix(report: ImportReport) -> str:
    """Where an imported file's rejected rows and report lie."""
    return f"{IMPORTS_PREFIX}/{report.format}/{_files_stem([Path(source) for source in report.source.split(',')])}"


def _files_stem(paths: list[Path]) -> str:
    """The name imports give one file's (or a catalogue's parts') landing files and report folder."""
    return "-".join(_file_stem(path) for path in paths)[:100]


def import_log(
    root: StorageRoot, path: Path, name: str, on_block: Callable[[int], None] = lambda rows: None
) -> ImportReport:
    """Convert one published log file into landing files of the contract; calls ``on_block`` with each block's rows."""
    stem = _file_stem(path)
    rejects_prefix = f"{IMPORTS_PREFIX}/{name}/{stem}"  # report_prefix of the report
    for key in root.list_files(rejects_prefix):
        root.delete(key)
    rows = events = files = 0
    reasons: Counter[str] = Counter()
    days: set[date] = set()
    for number, block in enumerate(_blocks(path, name)):
        frame = block.events
        ordinals = np.arange(rows, rows + len(frame))
        keys = frame.pop("event_key") if "event_key" in frame else pd.Series(ordinals, index=frame.index).astype(str)
        frame.insert(0, "event_id", f"{name}:{stem}:" + keys.astype(str))
        unplaced = frame["ts"].isna() | ~frame["ts"].between(0, LAST_DAY, inclusive="left")
        out_of_range = frame[~frame["ts"].isna() & unplaced]
        rejected = block.rejected + [
            {"row": None, "text": row.to_json(), "reason": "timestamp_out_of_range"}
            for _, row in out_of_range.iterrows()
        ]
        frame = frame[~unplaced].reindex(columns=list(FIELDS))
        frame["ts"] = frame["ts"].astype("int64")
        day_numbers = frame["ts"].to_numpy() // MS_PER_DAY
        for day_number in np.unique(day_numbers):
            day = date.fromordinal(EPOCH_ORDINAL + int(day_number))
            key = f"{landing_prefix(day)}/import-{name}-{stem}-{number:05d}.jsonl.gz"
            root.write_bytes(key, _gzip_lines(frame[day_numbers == day_number]))
            days.add(day)
            files += 1
        if rejected:
            text = "".join(json.dumps(row) + "\n" for row in rejected)
            root.write_bytes(f"{rejects_prefix}/rejected-{number:05d}.jsonl.gz", gzip.compress(text.encode()))
        reasons.update(row["reason"] for row in rejected)
        events += len(frame)
        rows += len(frame) + len(rejected)
        on_block(len(frame) + len(rejected))
    for day in days:
        root.write_bytes(f"{landing_prefix(day)}/{COMPLETE_MARKER}", b"")
    report = ImportReport(
        format=name,
        source=str(path),
        rows=rows,
        landed=events,
        rejected=rows - events,
        rejected_reasons=dict(reasons),
        days=[day.isoformat() for day in sorted(days)],
        files=files,
    )
    root.write_json(f"{rejects_prefix}/report.json", report.to_json())
    log.info("imported %s (%s): %d events over %d days, %d rows rejected", path, name, events, len(days), rows - events)
    return report


# --- catalogues -------------------------------------------------------------------------------------------------

ITEM_PROPERTY_COLUMNS = ("timestamp", "itemid", "property", "value")
CATALOGUE_FORMATS = ("retailrocket-items",)


def import_catalogue(root: StorageRoot, paths: list[Path], name: str) -> ImportReport:
    """RetailRocket's ``item_properties_part1.csv`` and ``part2.csv`` (read together) as catalogue exports.

    The files log property values with their time (mostly weekly); the platform maps ``categoryid`` (the other
    properties are hashed and counted as unmapped). An export lands for each day on which a value was logged, holding
    every item's latest category as of that day's end; the days between stand on the latest export before them
    (``FeatureResource.catalogue_max_age_days``, a week by default, matches the weekly logs).
    """
    if name not in CATALOGUE_FORMATS:
        raise ImportFormatError(f"unknown catalogue format {name!r}: one of {', '.join(CATALOGUE_FORMATS)}")
    logged, rejected, rows, unmapped = [], [], 0, 0
    expected = ",".join(ITEM_PROPERTY_COLUMNS)

    def reject(row: pacsv.InvalidRow) -> str:
        rejected.append({"row": row.number, "text": row.text, "reason": f"column_count:{row.actual_columns}"})
        return "skip"

    for path in paths:
        first = _first_line(path)
        if tuple(c.strip().lower() for c in first.split(",")) != ITEM_PROPERTY_COLUMNS:
            raise ImportFormatError(f"{path} is not a {name} file: its header is {first[:200]!r}, expected {expected}")
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(
                column_names=list(ITEM_PROPERTY_COLUMNS), skip_rows=1, block_size=BLOCK_BYTES, use_threads=False
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=reject),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(ITEM_PROPERTY_COLUMNS, pa.string())),
        )
        for batch in reader:
            rows += batch.num_rows
            category = batch.filter(pc.equal(batch.column("property"), "categoryid"))
            unmapped += batch.num_rows - category.num_rows
            ts = _integer_ms(category.column("timestamp"), 1)
            readable = pc.is_valid(ts)
            rejected.extend(
                {"row": None, "text": ",".join(row.values()), "reason": "unreadable_timestamp"}
                for row in category.filter(pc.invert(readable)).to_pylist()
            )
            logged.append(
                pd.DataFrame(
                    {
                        "ts": ts.filter(readable).to_numpy(),
                        "article_id": category.column("itemid").filter(readable).to_pandas(),
                        "category_id": category.column("value").filter(readable).to_pandas(),
                    }
                )
            )
    values = pd.concat(logged, ignore_index=True).sort_values("ts", kind="stable") if logged else pd.DataFrame()
    stem = _files_stem(paths)
    days = sorted({date.fromordinal(EPOCH_ORDINAL + int(ms // MS_PER_DAY)) for ms in values.get("ts", [])})
    landed = 0
    for day in days:
        end = (day.toordinal() - EPOCH_ORDINAL + 1) * MS_PER_DAY
        state = values[values["ts"] < end].drop_duplicates("article_id", keep="last")[["article_id", "category_id"]]
        prefix = landing_prefix(day, CATALOGUE_PREFIX)
        root.write_bytes(f"{prefix}/import-{name}-{stem}.jsonl.gz", _gzip_lines(state))
        root.write_bytes(f"{prefix}/{COMPLETE_MARKER}", b"")
        landed += len(state)
    report = ImportReport(
        format=name,
        source=",".join(str(path) for path in paths),
        rows=rows + sum(row["reason"].startswith("column_count:") for row in rejected),  # those never reach a batch
        landed=landed,
        rejected=len(rejected),
        rejected_reasons=dict(Counter(row["reason"] for row in rejected)),
        days=[day.isoformat() for day in days],
        files=len(days),
        unmapped=unmapped,
    )
    prefix = report_prefix(report)
    for key in root.list_files(prefix):
        root.delete(key)
    if rejected:
        text = "".join(json.dumps(row) + "\n" for row in rejected)
        root.write_bytes(f"{prefix}/rejected-00000.jsonl.gz", gzip.compress(text.encode()))
    root.write_json(f"{prefix}/report.json", report.to_json())
    log.info("imported %s (%s): %d catalogue exports, %d article lines", report.source, name, len(days), landed)
    return report
