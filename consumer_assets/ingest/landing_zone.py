"""The landing zone's contract: where a day's event files land and how a day says it is complete.

Trackers and exporters write gzip JSON lines under ``landing/events/date=YYYY-MM-DD/``
and, last, an empty ``_SUCCESS`` marker (as Spark and most exporters do). Ingest reads
this layout, the landing sensor watches it, and the simulator writes it.
"""

from datetime import date

from consumer_assets.storage import partition_dir

LANDING_PREFIX = "landing/events"
COMPLETE_MARKER = "_SUCCESS"


def landing_prefix(day: date) -> str:
    return f"{LANDING_PREFIX}/{partition_dir(day)}"
