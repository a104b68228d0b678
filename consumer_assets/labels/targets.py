"""What the labels are called and which days they look at: plain Python, so training and serving need no Spark."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta


def label_days(day: date, horizon_days: int) -> list[date]:
    """The days whose orders label the snapshot of ``day``: D+1 .. D+H."""
    return [day + timedelta(days=k) for k in range(1, horizon_days + 1)]


def target_name(group: str) -> str:
    """A column-safe label name for an article group."""
    return "order_" + re.sub(r"[^0-9a-zA-Z]+", "_", group).strip("_").lower()


def targets(groups: Mapping[str, list[str]]) -> list[str]:
    return ["order_any", *(target_name(g) for g in groups)]
