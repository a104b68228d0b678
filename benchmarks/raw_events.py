"""raw_events throughput and peak memory: ingest one landed day of N million events.

.venv/bin/python benchmarks/raw_events.py [--million-events 10] [--bad-rate 0.01] [--lookback-million 1]

A simulated shop day (~1 million events, with contract violations and a cut-off
upload) is landed, then copied with fresh event ids until the day holds the asked
number of events; the day before is stored so that de-duplication reads a real
look-back. The ingest runs in a child process, whose peak resident memory (``VmHWM``
of its own address space, /proc/self/status) is the ingest's alone, not the
simulator's (``ru_maxrss`` of a child would count the parent's pages it had before exec).
"""

import argparse
import gzip
import json
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta

DAY = date(2026, 10, 2)
PROFILES_PER_MILLION = 820_000  # the simulator's shop makes about 1.22 events a profile a day


def prepare(folder: str, million_events: float, lookback_million: float, bad_rate: float) -> None:
    from consumer_assets.ingest.day import ingest_day
    from consumer_assets.ingest.landing_zone import landing_prefix
    from consumer_assets.simulation import ShopSimulator, SimulationConfig, land_day
    from consumer_assets.storage import StorageRoot

    root = StorageRoot(folder)
    before = DAY - timedelta(days=1)
    land_day(
        root,
        ShopSimulator(SimulationConfig(profiles=int(PROFILES_PER_MILLION * lookback_million))).simulate_day(before),
    )
    ingest_day(root, before)
    landed = land_day(
        root, ShopSimulator(SimulationConfig(profiles=PROFILES_PER_MILLION)).simulate_day(DAY), bad_rate=bad_rate
    )
    originals = {
        key: gzip.decompress(root.read_bytes(key)) if not key.endswith("interrupted.jsonl.gz") else None
        for key in landed.files
    }
    copies = max(1, round(million_events * 1_000_000 / max(landed.events, 1)))
    for copy in range(1, copies):  # the same day again with other event ids: other events, as many
        for key, text in originals.items():
            if text is not None:
                name = key.rsplit("/", 1)[1].replace(".jsonl.gz", f"-copy{copy:03d}.jsonl.gz")
                root.write_bytes(
                    f"{landing_prefix(DAY)}/{name}",
                    gzip.compress(text.replace(b'"event_id":"e', f'"event_id":"c{copy}e'.encode()), compresslevel=1),
                )
    print(f"landed {copies} copies of a {landed.events:,}-event day", flush=True)


def ingest(folder: str) -> None:
    from consumer_assets.ingest.day import ingest_day
    from consumer_assets.storage import StorageRoot

    started = time.perf_counter()
    report = ingest_day(StorageRoot(folder), DAY)
    seconds = time.perf_counter() - started
    with open("/proc/self/status") as status:
        peak_kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024, **report.to_json()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--million-events", type=float, default=10.0)
    parser.add_argument(
        "--lookback-million", type=float, default=1.0, help="events of the stored day before, in millions"
    )
    parser.add_argument("--bad-rate", type=float, default=0.01)
    parser.add_argument("--ingest", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.ingest:
        ingest(args.ingest)
        return
    with tempfile.TemporaryDirectory() as folder:
        prepare(folder, args.million_events, args.lookback_million, args.bad_rate)
        child = subprocess.run(
            [sys.executable, __file__, "--ingest", folder], capture_output=True, text=True, check=True
        )
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"rows read            {figures['rows_read']:>12,}")
    print(f"rows kept            {figures['rows_kept']:>12,}")
    print(f"rows quarantined     {figures['rows_quarantined']:>12,}")
    print(f"duplicates           {figures['duplicates']:>12,}")
    print(
        "read = kept + quarantined + duplicates: "
        f"{figures['rows_read'] == figures['rows_kept'] + figures['rows_quarantined'] + figures['duplicates']}"
    )
    print(f"ingest s             {figures['seconds']:>12.1f}")
    print(f"rows/s               {figures['rows_read'] / figures['seconds']:>12,.0f}")
    print(f"peak memory MiB      {figures['peak_mib']:>12,.0f}")


if __name__ == "__main__":
    main()
