"""Which landing days are complete and not yet ingested with all their files: the landing sensor's logic.

The cursor keeps, per recent day, how many files it has seen, an order-free
fingerprint of their keys (the XOR of one 64-bit digest per key), the last key seen
and the state a run was last requested for. Each scan lists only keys after the last
one seen (S3 ``StartAfter``), so a day with thousands of files costs one short
listing per tick; and every ``rescan_seconds`` each recent day is listed whole, so a
late file whose name sorts before the others is seen too, at a cost bounded by one
full listing per day in the lookback per rescan period. A day is complete when its
``_SUCCESS`` marker has landed (``marker``) or when no file has arrived for a quiet
period (``quiet``). A day whose set of files changes after a run was requested for
it (a late upload) is due again: raw_events for that day is rebuilt from all its
files, and downstream partitions follow.

Run keys name the storage root's identity (see :meth:`StorageRoot.identity`): after
the root is wiped or replaced, every landed day is requested again rather than
skipped as done, and the cursor of another root is dropped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, timedelta

from consumer_assets.ingest.landing_zone import COMPLETE_MARKER, LANDING_PREFIX, landing_prefix
from consumer_assets.storage import StorageRoot

COMPLETION_MODES = ("marker", "quiet")


@dataclass(frozen=True)
class DueDay:
    day: date
    run_key: str  # unique per storage root, day and set of files: one run per state of the day, never two
    files: int
    late: bool  # the day had been requested before


def _day_state(cursor: dict, day: date) -> dict:
    return cursor.setdefault(
        day.isoformat(),
        {
            "last_key": "",
            "files": 0,
            "fingerprint": 0,
            "newest": 0.0,
            "marker": False,
            "requested": "",
            "rescanned": 0.0,
        },
    )


def _digest(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def _files_seen(infos) -> tuple[int, int, float, bool, str]:
    """(files, fingerprint, newest, marker, last key) of a listing."""
    files = fingerprint = 0
    newest, marker, last = 0.0, False, ""
    for info in infos:
        last, newest = info.key, max(newest, info.modified)
        if info.key.endswith("/" + COMPLETE_MARKER):
            marker = True
        elif info.key.endswith(".jsonl.gz"):
            files, fingerprint = files + 1, fingerprint ^ _digest(info.key)
    return files, fingerprint, newest, marker, last


def scan_landing(
    root: StorageRoot,
    cursor_json: str | None,
    today: date,
    now: float,
    lookback_days: int = 7,
    completion: str = "marker",
    quiet_seconds: float = 600.0,
    rescan_seconds: float = 900.0,
    feed: str = LANDING_PREFIX,
) -> tuple[list[DueDay], str]:
    """Days of a landing feed (the events, or the catalogue export) due for ingestion, and the cursor to store; days
    older than the lookback are forgotten."""
    if completion not in COMPLETION_MODES:
        raise ValueError(f"completion must be one of {COMPLETION_MODES}, not {completion!r}")
    identity = root.identity()
    stored: dict = json.loads(cursor_json) if cursor_json else {}
    days_state: dict = stored.get("days", {}) if stored.get("root") == identity else {}
    oldest = today - timedelta(days=lookback_days)
    days_state = {day: state for day, state in days_state.items() if date.fromisoformat(day) >= oldest}
    due = []
    for name in root.list_dirs(feed):
        if not name.startswith("date="):
            continue
        day = date.fromisoformat(name.removeprefix("date="))
        if not oldest <= day <= today:
            continue
        state = _day_state(days_state, day)
        prefix = landing_prefix(day, feed)
        if now - state["rescanned"] >= rescan_seconds:
            files, fingerprint, newest, marker, last = _files_seen(root.list_after(prefix))
            state.update(
                files=files,
                fingerprint=fingerprint,
                newest=max(newest, state["newest"]),
                marker=marker,
                last_key=last,
                rescanned=now,
            )
        else:
            files, fingerprint, newest, marker, last = _files_seen(root.list_after(prefix, state["last_key"]))
            state.update(
                files=state["files"] + files,
                fingerprint=state["fingerprint"] ^ fingerprint,
                newest=max(newest, state["newest"]),
                marker=state["marker"] or marker,
                last_key=last or state["last_key"],
            )
        files_state = f"{state['files']}:{state['fingerprint']:016x}"
        complete = state["marker"] if completion == "marker" else now - state["newest"] >= quiet_seconds
        if state["files"] > 0 and complete and files_state != state["requested"]:
            due.append(
                DueDay(
                    day, f"{identity}:{day.isoformat()}@{files_state}", state["files"], late=bool(state["requested"])
                )
            )
            state["requested"] = files_state
    return due, json.dumps({"root": identity, "days": days_state}, sort_keys=True)
