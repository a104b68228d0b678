"""The article catalogue: the shop's daily export of its article database, validated with the events' rigour.

Exporters write the whole catalogue each day as gzip JSON lines under ``landing/catalogue/date=D/`` and, last, an
empty ``_SUCCESS``: one line an article, its id and its attributes as of that day (brand, category, price, launch date,
colour, material; only the id is required). ``article_catalogue(D)`` keeps each article once (the first line of an
id; later lines of the id are counted as duplicates, and as conflicting when their attributes differ), quarantines
the lines that break the contract with a reason (every fault of the event files included: cut-off or damaged gzip, a
bomb, a poison line), and commits articles and quarantine together, or nothing.

A snapshot a day rather than valid-from/valid-to ranges: the attributes as of day D are partition D, so a late or
corrected export replaces its day alone, and the histories of that day are rebuilt from it.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.asset_keys import ARTICLE_CATALOGUE
from consumer_assets.ingest.contract import (
    QUARANTINE_SCHEMA,
    LineContract,
    checked_price,
    parse_stream,
    strings_fault,
)
from consumer_assets.ingest.day import QUARANTINE_STEM
from consumer_assets.ingest.landing_zone import CATALOGUE_PREFIX, landing_prefix
from consumer_assets.records import JsonRecord
from consumer_assets.storage import StorageError, StorageRoot

log = logging.getLogger(__name__)

ARTICLE_SCHEMA = pa.schema(
    [
        pa.field("article_id", pa.string(), nullable=False),
        pa.field("brand_id", pa.string()),
        pa.field("category_id", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("launch_date", pa.date32()),
        pa.field("colour", pa.string()),
        pa.field("material", pa.string()),
    ]
)
ATTRIBUTE_STRINGS = ("brand_id", "category_id", "colour", "material")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class MissingCatalogueError(StorageError):
    """No catalogue export has landed for the day asked for."""


def check_article(obj, day: date | None = None) -> tuple[dict | None, str | None]:
    """One parsed line of the export: (the typed article, None) or (None, the first fault's reason)."""
    if not isinstance(obj, dict):
        return None, "not_an_object"
    if obj.get("article_id") is None:
        return None, "missing_field:article_id"
    if fault := strings_fault(obj, ("article_id", *ATTRIBUTE_STRINGS)):
        return None, fault
    price, fault = checked_price(obj.get("price"))
    if fault:
        return None, fault
    launch = obj.get("launch_date")
    if launch is not None:
        if not isinstance(launch, str) or not _ISO_DATE.match(launch):
            return None, "bad_date:launch_date"
        try:
            launch = date.fromisoformat(launch)
        except ValueError:  # a 30th of February
            return None, "bad_date:launch_date"
    article = {name: obj.get(name) for name in ARTICLE_SCHEMA.names}
    article.update(price=price, launch_date=launch)
    return article, None


ARTICLES = LineContract(ARTICLE_SCHEMA, check_article)


@dataclass(frozen=True)
class CatalogueReport(JsonRecord):
    """A day's catalogue bookkeeping, stored in its manifest and shown in the UI:
    ``rows_read = articles + rows_quarantined + duplicates``."""

    files: int
    rows_read: int
    articles: int
    rows_quarantined: int
    duplicates: int
    conflicting: int  # duplicates whose attributes differ from the kept line's
    launched_today: int
    quarantine_reasons: dict[str, int] = field(default_factory=dict)


def catalogue_prefix(day: date) -> str:
    return landing_prefix(day, CATALOGUE_PREFIX)


def catalogue_files(root: StorageRoot, day: date) -> list[str]:
    files = [key for key in root.list_files(catalogue_prefix(day)) if key.endswith(".jsonl.gz")]
    if not files:
        root.check_bucket()
        raise MissingCatalogueError(
            f"No catalogue export for {day} under {root.uri}/{catalogue_prefix(day)}/ (expected *.jsonl.gz). "
            "Histories of the day use the latest earlier catalogue until it lands."
        )
    return files


def _first_of_each(articles: pa.Table) -> tuple[pa.Table, int, int]:
    """(each article id's first row, duplicates, conflicting duplicates)."""
    if articles.num_rows == 0:
        return articles, 0, 0
    numbered = articles.append_column("row", pa.array(range(articles.num_rows), pa.int64()))
    first = numbered.group_by("article_id").aggregate([("row", "min")]).column("row_min")
    kept = articles.take(first)
    distinct = articles.group_by(ARTICLE_SCHEMA.names).aggregate([]).num_rows
    return kept, articles.num_rows - kept.num_rows, distinct - kept.num_rows


def ingest_catalogue(root: StorageRoot, day: date) -> CatalogueReport:
    """Validate the day's catalogue export and commit it, with its quarantine, as the article_catalogue partition."""
    files = catalogue_files(root, day)
    rows, quarantines, reasons, read = [], [], Counter(), 0
    for key in files:
        for parsed in parse_stream(root.read_pieces(key), day, key, ARTICLES):
            rows.append(parsed.rows)
            read += parsed.lines_read
            if parsed.quarantine.num_rows:
                quarantines.append(parsed.quarantine)
                reasons.update(parsed.quarantine.column("reason").to_pylist())
    articles, duplicates, conflicting = _first_of_each(pa.concat_tables([ARTICLE_SCHEMA.empty_table(), *rows]))
    launched = pc.sum(pc.equal(articles.column("launch_date"), pa.scalar(day, pa.date32()))).as_py() or 0
    report = CatalogueReport(
        files=len(files),
        rows_read=read,
        articles=articles.num_rows,
        rows_quarantined=sum(reasons.values()),
        duplicates=duplicates,
        conflicting=conflicting,
        launched_today=launched,
        quarantine_reasons=dict(sorted(reasons.items())),
    )
    with root.writing(ARTICLE_CATALOGUE, day):
        names, _ = root.write_tables(ARTICLE_CATALOGUE, day, articles.sort_by("article_id"))
        bad = pa.concat_tables([QUARANTINE_SCHEMA.empty_table(), *quarantines])
        attached = root.write_tables(ARTICLE_CATALOGUE, day, bad, stem=QUARANTINE_STEM)[0] if bad.num_rows else []
        root.commit_partition(ARTICLE_CATALOGUE, day, names, articles.num_rows, report.to_json(), attachments=attached)
    log.info(
        "catalogue %s: %d articles from %d rows, %d quarantined, %d duplicates (%d conflicting)",
        day,
        report.articles,
        read,
        report.rows_quarantined,
        duplicates,
        conflicting,
    )
    return report


def catalogue_report(root: StorageRoot, day: date | str) -> CatalogueReport:
    return CatalogueReport.from_json(root.manifest(ARTICLE_CATALOGUE, day).properties)


def catalogue_as_of(stored: list[date], day: date, max_age_days: int) -> date | None:
    """Of the ``stored`` catalogue days, the one whose attributes stand for ``day``: ``day`` itself, else the latest
    within ``max_age_days`` before it (articles change slowly: a missing export is alerted on, not fatal), else None."""
    return max((d for d in stored if 0 <= (day - d).days <= max_age_days), default=None)
