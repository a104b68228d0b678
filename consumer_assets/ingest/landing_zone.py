"""The landing zone's contract: where a day's files land and how a day says it is complete.

Trackers write gzip JSON lines under ``landing/events/date=YYYY-MM-DD/``, the article database's export under
``landing/catalogue/date=YYYY-MM-DD/``, each day's folder closed by an empty ``_SUCCESS`` marker (as Spark and most
exporters do). Ingest reads this layout, the landing sensors watch it, and the simulator and ``consumer-assets import``
write it.
"""

from datetime import date

from consumer_assets.storage import partition_dir

LANDING_PREFIX = "landing/events"
CATALOGUE_PREFIX = "landing/catalogue"
COMPLETE_MARKER = "_SUCCESS"


def landing_prefix(day: date, feed: str = LANDING_PREFIX) -> str:
    """The folder of ``day`` in a feed of the landing zone (the events by default)."""
    return f"{feed}/{partition_dir(day)}"
