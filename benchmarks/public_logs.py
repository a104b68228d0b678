"""Importing a published log: rows/s of ``consumer-assets import`` and of ingesting what it landed, and peak memory.

    .venv/bin/python benchmarks/public_logs.py [--rows 2000000] [--format rees46]

Writes a file of ``rows`` random rows in the format (REES46 by default: its rows are the widest, with brand,
category and price) spread over 7 days, imports it into a temporary folder, then ingests every landed day; the
bookkeeping is checked on the way (rows = landed + rejected, landed = kept + quarantined + duplicates).
"""

import argparse
import json
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from consumer_assets.ingest.day import ingest_day
from consumer_assets.ingest.public_logs import CSV_LOGS, import_log
from consumer_assets.storage import StorageRoot

START_S = 1569888000  # 2019-10-01 00:00 UTC


def write_log(path: Path, name: str, rows: int, rng: np.random.Generator) -> Path:
    seconds = np.sort(START_S + rng.integers(0, 7 * 86_400, rows))
    users = rng.integers(500_000_000, 500_200_000, rows).astype(str)
    items = rng.integers(1_000_000, 1_050_000, rows).astype(str)
    if name == "otto":
        lines = (
            json.dumps({"session": session, "events": [{"aid": int(i), "ts": int(s) * 1000, "type": "clicks"}]})
            for session, (i, s) in enumerate(zip(items, seconds, strict=True))  # OTTO's session ids are unique
        )
        path.write_text("\n".join(lines) + "\n")
        return path
    spec = CSV_LOGS[name]
    types = rng.choice(
        list(spec.event_types), rows, p=[0.9] + [0.1 / (len(spec.event_types) - 1)] * (len(spec.event_types) - 1)
    )
    columns = {
        "rees46": lambda: {
            "event_time": pd.to_datetime(seconds, unit="s").strftime("%Y-%m-%d %H:%M:%S UTC"),
            "event_type": types,
            "product_id": items,
            "category_id": rng.integers(2_053_013_552_000_000_000, 2_053_013_553_000_000_000, rows).astype(str),
            "category_code": "electronics.smartphone",
            "brand": rng.choice(["samsung", "apple", "xiaomi", ""], rows),
            "price": rng.lognormal(4, 1, rows).round(2),
            "user_id": users,
            "user_session": "72d76fde-8bb3-4e00-8c23-a032dfed738c",
        },
        "retailrocket": lambda: {
            "timestamp": seconds * 1000,
            "visitorid": users,
            "event": types,
            "itemid": items,
            "transactionid": "",
        },
        "taobao": lambda: {
            "user_id": users,
            "item_id": items,
            "category_id": rng.integers(1, 10_000, rows),
            "behavior_type": types,
            "timestamp": seconds,
        },
    }[name]()
    pd.DataFrame(columns).to_csv(path, index=False, header=spec.header)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--format", default="rees46", choices=[*CSV_LOGS, "otto"])
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        source = write_log(
            folder / f"log.{'jsonl' if args.format == 'otto' else 'csv'}",
            args.format,
            args.rows,
            np.random.default_rng(0),
        )
        print(f"{args.format}: {args.rows:,} rows, {source.stat().st_size / 2**20:,.0f} MiB")
        root = StorageRoot(str(folder / "root"))
        started = time.perf_counter()
        report = import_log(root, source, args.format)
        imported = time.perf_counter() - started
        assert report.rows == args.rows == report.landed + report.rejected
        print(
            f"import: {imported:.1f} s ({report.rows / imported:,.0f} rows/s), {report.landed:,} landed over "
            f"{len(report.days)} days, {report.rejected:,} rejected"
        )
        started = time.perf_counter()
        reports = [ingest_day(root, date.fromisoformat(day)) for day in report.days]
        ingested = time.perf_counter() - started
        kept = sum(r.rows_kept for r in reports)
        assert sum(r.rows_read for r in reports) == report.landed
        assert all(r.rows_read == r.rows_kept + r.rows_quarantined + r.duplicates for r in reports)
        print(f"ingest: {ingested:.1f} s ({report.landed / ingested:,.0f} rows/s), {kept:,} kept")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak memory of this process: {peak:,.0f} MiB")
    finally:
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()
