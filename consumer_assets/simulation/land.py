"""Writes simulated days to the landing zone as the tracking system and the article database's export would.

Events become gzip JSON lines in the event contract, split into files of bounded size; the day's catalogue export
lands beside them under ``landing/catalogue/``. Events can carry the article id alone (``article_attributes=False``),
as real trackers send them, leaving brand, category and price to the catalogue. With a bad rate, every kind of
contract violation is mixed in, so that ingestion's quarantine is exercised by demos and tests. The truth (each
profile's exact order probability) goes to ``truth/``, outside the landing zone; nothing in the platform reads it.
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.ingest.contract import inflate
from consumer_assets.ingest.landing_zone import CATALOGUE_PREFIX, COMPLETE_MARKER, landing_prefix
from consumer_assets.simulation.world import DayEvents, ShopSimulator, SimulationConfig
from consumer_assets.storage import StorageRoot

log = logging.getLogger(__name__)

TRUTH_DATASET = "truth/order_any"
EVENTS_PER_FILE = 250_000
ARTICLE_ATTRIBUTES = ("brand_id", "category_id", "price")  # what a tracker sending ids only leaves out

BAD_ROW_KINDS = (
    "malformed_json",
    "missing_field",
    "wrong_type",
    "unknown_event_type",
    "negative_price",
    "ts_outside_day",
    "duplicate",
)


@dataclass
class LandedDay:
    day: date
    events: int
    bad_rows: dict[str, int]
    files: list[str]


def to_json_lines(
    day_events: DayEvents, epoch_ms_share: float, rng: np.random.Generator, article_attributes: bool = True
) -> list[str]:
    """The day's events as contract JSON lines; some trackers send epoch milliseconds."""
    events = day_events.events
    frame = (events if article_attributes else events.drop_columns(list(ARTICLE_ATTRIBUTES))).to_pandas()
    millis = frame["ts"].astype("int64") // 1_000_000 if frame["ts"].dt.unit == "ns" else frame["ts"].astype("int64")
    iso = frame["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "+00:00"
    use_millis = rng.random(len(frame)) < epoch_ms_share
    frame["ts"] = np.where(use_millis, millis.astype(object), iso.astype(object))
    text = frame.to_json(orient="records", lines=True, date_format="iso")
    return text.splitlines()


def inject_bad_rows(lines: list[str], bad_rate: float, rng: np.random.Generator) -> dict[str, int]:
    """Corrupt a share of ``lines`` in place, one kind of violation at a time; returns counts per kind."""
    n_bad = int(round(bad_rate * len(lines)))
    counts = dict.fromkeys(BAD_ROW_KINDS, 0)
    if n_bad == 0:
        return counts
    targets = rng.choice(len(lines), size=n_bad, replace=False)
    duplicates = []
    for i, target in enumerate(targets):
        kind = BAD_ROW_KINDS[i % len(BAD_ROW_KINDS)]
        counts[kind] += 1
        if kind == "duplicate":
            duplicates.append(lines[target])
            continue
        lines[target] = _corrupt(lines[target], kind, rng)
    lines.extend(duplicates)
    return counts


def _corrupt(line: str, kind: str, rng: np.random.Generator) -> str:
    if kind == "malformed_json":
        return line[: int(rng.integers(1, len(line) - 1))]
    row = json.loads(line)
    if kind == "missing_field":
        del row[("event_id", "profile_id", "ts", "event_type", "article_id")[int(rng.integers(0, 5))]]
    elif kind == "wrong_type":
        field = ("profile_id", "price", "ts")[int(rng.integers(0, 3))]
        row[field] = {"profile_id": 12345, "price": "12,50 EUR", "ts": True}[field]
    elif kind == "unknown_event_type":
        row["event_type"] = "click"
    elif kind == "negative_price":
        row["price"] = -abs(row.get("price") or 1.0)
    elif kind == "ts_outside_day":
        shift = 86_400_000 * (1 if rng.random() < 0.5 else -1)
        ts = row["ts"]
        row["ts"] = (ts if isinstance(ts, int) else int(pd.Timestamp(ts).value // 1_000_000)) + shift
    return json.dumps(row)


def _gzip(lines: list[str]) -> bytes:
    return gzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=1)


def land_catalogue(root: StorageRoot, day: date, catalogue: pa.Table) -> str:
    """Write one day's catalogue export (and its marker), replacing what the day had; returns the file's key."""
    prefix = landing_prefix(day, CATALOGUE_PREFIX)
    for key in root.list_files(prefix):
        root.delete(key)
    key = f"{prefix}/catalogue-0000.jsonl.gz"
    dated = catalogue.set_column(
        catalogue.schema.get_field_index("launch_date"),
        "launch_date",
        catalogue.column("launch_date").cast(pa.string()),
    )  # YYYY-MM-DD, as the contract reads it
    root.write_bytes(key, _gzip(dated.to_pandas().to_json(orient="records", lines=True).splitlines()))
    root.write_bytes(f"{prefix}/{COMPLETE_MARKER}", b"")
    return key


def land_day(
    root: StorageRoot,
    day_events: DayEvents,
    bad_rate: float = 0.0,
    epoch_ms_share: float = 0.2,
    seed: int = 0,
    article_attributes: bool = True,
    catalogue: bool = True,
) -> LandedDay:
    """Write one day's landing files, its catalogue export (unless ``catalogue`` is False) and its truth, replacing
    what the day had."""
    rng = np.random.default_rng([seed, day_events.day.toordinal()])
    if catalogue:
        land_catalogue(root, day_events.day, day_events.catalogue)
    lines = to_json_lines(day_events, epoch_ms_share, rng, article_attributes)
    clean = list(lines)
    bad = inject_bad_rows(lines, bad_rate, rng)
    prefix = landing_prefix(day_events.day)
    for key in root.list_files(prefix):
        root.delete(key)
    files = []
    for part, start in enumerate(range(0, max(len(lines), 1), EVENTS_PER_FILE)):
        key = f"{prefix}/events-{part:04d}.jsonl.gz"
        root.write_bytes(key, _gzip(lines[start : start + EVENTS_PER_FILE]))
        files.append(key)
    if bad_rate > 0:
        # A file cut off mid-stream, as an interrupted upload leaves it: copies of the
        # day's first lines. Ingest keeps its complete lines (duplicates of events stored
        # from the other files, or the same violations again) and quarantines the cut tail.
        copied = lines[: max(10, len(lines) // 100)]
        whole = _gzip(copied)
        cut = whole[: len(whole) // 2]
        key = f"{prefix}/events-upload-interrupted.jsonl.gz"
        root.write_bytes(key, cut)
        files.append(key)
        complete = inflate(cut)[0].count(b"\n")
        violations = sum(copied[i] != clean[i] for i in range(complete))
        bad["truncated_gzip_file"] = 1
        bad["interrupted_upload_violations"] = violations
        bad["duplicate"] += complete - violations
    root.write_bytes(f"{prefix}/{COMPLETE_MARKER}", b"")
    root.write_partition(TRUTH_DATASET, day_events.day, day_events.truth)
    return LandedDay(day=day_events.day, events=day_events.events.num_rows, bad_rows=bad, files=files)


def simulate_to_landing(
    root: StorageRoot,
    start: date,
    days: int,
    config: SimulationConfig = SimulationConfig(),
    bad_rate: float = 0.0,
    on_day: Callable[[LandedDay], None] = lambda landed: None,
    article_attributes: bool = True,
) -> list[LandedDay]:
    """Simulate ``days`` days from ``start`` and land each one with its catalogue export; logs a line per day and calls
    ``on_day`` (progress)."""
    root.write_json(
        "truth/simulation.json",
        {
            "config": asdict(config),
            "start": start.isoformat(),
            "days": days,
            "bad_rate": bad_rate,
            "article_attributes": article_attributes,
        },
    )
    landed = []
    for day_events in ShopSimulator(config).simulate(start, days):
        result = land_day(root, day_events, bad_rate=bad_rate, seed=config.seed, article_attributes=article_attributes)
        log.info(
            "landed %s: %d events, %d bad rows, %d files",
            result.day,
            result.events,
            sum(result.bad_rows.values()),
            len(result.files),
        )
        landed.append(result)
        on_day(result)
    return landed


def true_probabilities(root: StorageRoot, day: date, profile_ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """The simulator's exact P(order in the next H days) at the end of ``day`` for these profiles."""
    truth = root.read_partition(TRUTH_DATASET, day)
    position = pc.index_in(profile_ids, value_set=truth.column("profile_id")).to_numpy(zero_copy_only=False)
    return truth.column("p_order_any").to_numpy()[position]
