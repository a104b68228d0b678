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


def targets(groups: Mapping[str, object]) -> list[str]:
    return ["order_any", *(target_name(g) for g in groups)]


ID_LISTS = ("category_id", "brand_id", "article_id")  # an order counts when its article's id is in the list
RULE_KEYS = (*ID_LISTS, "price", "launched_within_days")


def group_rule(name: str, spec: list[str] | dict) -> dict:
    """An article group's rule as the labels apply it, from its entry in ``config/article_groups.json``.

    A list is a list of category ids (the default groups' form). A dict combines conditions, all of which an ordered
    article must meet: ``category_id`` / ``brand_id`` / ``article_id`` (lists of ids), ``price`` (``[low, high]``,
    low inclusive, high exclusive, either ``null`` for open) and ``launched_within_days`` (N: launched fewer than N
    days before the order, the new arrivals). Brand, category and price come from the event or else the catalogue,
    launch dates from the catalogue.
    """
    rule = {"category_id": spec} if isinstance(spec, list) else spec
    if not isinstance(rule, dict) or not rule:
        raise ValueError(
            f"article group {name!r}: expected a list of category ids or a dict of conditions, not {spec!r}"
        )
    unknown = set(rule) - set(RULE_KEYS)
    if unknown:
        raise ValueError(f"article group {name!r}: unknown conditions {sorted(unknown)}; known: {', '.join(RULE_KEYS)}")
    for key in ID_LISTS:
        if key in rule and not (isinstance(rule[key], list) and all(isinstance(v, str) for v in rule[key])):
            raise ValueError(f"article group {name!r}: {key} must be a list of ids (strings)")
    price = rule.get("price")
    if price is not None and not (
        isinstance(price, list) and len(price) == 2 and all(v is None or isinstance(v, int | float) for v in price)
    ):
        raise ValueError(f"article group {name!r}: price must be [low, high] (numbers or null)")
    days = rule.get("launched_within_days")
    if days is not None and not (isinstance(days, int) and days > 0):
        raise ValueError(f"article group {name!r}: launched_within_days must be a positive whole number of days")
    return rule
