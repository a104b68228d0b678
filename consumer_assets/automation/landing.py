"""Which landing days are complete and not yet ingested with all their files: the landing sensor's logic.

The cursor keeps, per recent day, the last key seen and the last key a run was
requested for. Each scan lists only keys after the last one seen (S3 ``StartAfter``),
so a day with thousands of files costs one short listing per tick. A day is complete
when its ``_SUCCESS`` marker has landed (``marker``) or when no file has arrived for a
quiet period (``quiet``). A file that arrives for a day already requested (a late
upload) makes the day due again: raw_events for that day is rebuilt from all its
files, and downstream partitions follow.

Keys within a day are expected to sort in arrival order, as the timestamped or
sequenced names of S3 exporters do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, timedelta

from consumer_assets.ingest.landing import COMPLETE_MARKER, LANDING_PREFIX
from consumer_assets.storage import StorageRoot, partition_dir

COMPLETION_MODES = ("marker", "quiet")


@dataclass(frozen=True)
class DueDay:
    day: date
    run_key: str  # unique per day and set of files: one run per state of the day, never two
    files: int
    late: bool  # the day had been requested before


def _day_state(cursor: dict, day: date) -> dict:
    return cursor.setdefault(day.isoformat(), {"last_key": "", "files": 0, "newest": 0.0, "marker": False, "requested_key": ""})


def scan_landing(
    root: StorageRoot,
    cursor_json: str | None,
    today: date,
    now: float,
    lookback_days: int = 7,
    completion: str = "marker",
    quiet_seconds: float = 600.0,
) -> tuple[list[DueDay], str]:
    """Days due for ingestion, and the cursor to store; days older than the lookback are forgotten."""
    if completion not in COMPLETION_MODES:
        raise ValueError(f"completion must be one of {COMPLETION_MODES}, not {completion!r}")
    cursor: dict = json.loads(cursor_json) if cursor_json else {}
    oldest = today - timedelta(days=lookback_days)
    cursor = {day: state for day, state in cursor.items() if date.fromisoformat(day) >= oldest}
    due = []
    for name in root.list_dirs(LANDING_PREFIX):
        if not name.startswith("date="):
            continue
        day = date.fromisoformat(name.removeprefix("date="))
        if not oldest <= day <= today:
            continue
        state = _day_state(cursor, day)
        for info in root.list_after(f"{LANDING_PREFIX}/{partition_dir(day)}", state["last_key"]):
            state["last_key"] = info.key
            state["newest"] = max(state["newest"], info.modified)
            if info.key.endswith("/" + COMPLETE_MARKER):
                state["marker"] = True
            elif info.key.endswith(".jsonl.gz"):
                state["files"] += 1
        unrequested = state["files"] > 0 and state["last_key"] != state["requested_key"]
        complete = state["marker"] if completion == "marker" else now - state["newest"] >= quiet_seconds
        if unrequested and complete:
            due.append(DueDay(day, f"{day.isoformat()}@{state['last_key']}", state["files"], late=bool(state["requested_key"])))
            state["requested_key"] = state["last_key"]
    return due, json.dumps(cursor, sort_keys=True)
