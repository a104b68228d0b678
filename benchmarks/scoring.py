"""Scoring figures: profiles/s and peak memory of batch scoring, as batch_predictions runs it.

    .venv/bin/python benchmarks/scoring.py [--profiles 1000000] [--mean-length 15] [--threads 2]

Writes a snapshot of synthetic histories (lengths drawn geometrically with the given
mean, capped at L=100; ids from a shop-sized catalogue) as a daily_histories partition,
saves a model of the production architecture (untrained: the cost of scoring does not
depend on what the weights learnt), then scores the partition in a fresh process
exactly as the asset does: streamed in chunks, length-bucketed batches, inference
mode. Prints profiles/s and that process's peak resident memory.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import date

import numpy as np
import pyarrow as pa
import torch

from consumer_assets.asset_keys import HISTORIES, PREDICTIONS
from consumer_assets.features.snapshots import iter_snapshot_batches
from consumer_assets.model.encoding import PROFILE, Vocabulary, VocabularyLimits, encode
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.store import ModelStore
from consumer_assets.serving.batch_scoring import score_partition
from consumer_assets.storage import StorageRoot

DAY = date(2026, 12, 1)
MAX_LENGTH = 100
CHUNK = 50_000


def _lists(offsets: pa.Array, values: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(offsets, pa.array(values))


def synthetic_chunk(rng: np.random.Generator, first_id: int, rows: int, mean_length: float) -> pa.Table:
    """Histories with a realistic length distribution, built column-wise (no Python loop per event)."""
    lengths = np.minimum(rng.geometric(1 / mean_length, rows), MAX_LENGTH)
    offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
    n = int(lengths.sum())
    kinds = np.array(["view", "wishlist", "add_to_cart", "remove_from_cart", "order"], dtype=object)
    articles = np.char.add("a", (rng.pareto(1.2, n) * 50).astype(np.int64).clip(0, 20_000).astype(str)).astype(object)
    columns = {
        "profile_id": pa.array([f"p{i:08d}" for i in range(first_id, first_id + rows)]),
        "length": pa.array(lengths.astype(np.int32)),
        "event_type": _lists(offsets, kinds[rng.choice(5, n, p=[0.95, 0.01, 0.025, 0.01, 0.005])]),
        "article_id": _lists(offsets, articles),
        "category_id": _lists(offsets, np.char.add("c", rng.integers(0, 20, n).astype(str)).astype(object)),
        "brand_id": _lists(offsets, np.char.add("b", rng.integers(0, 150, n).astype(str)).astype(object)),
        "price": _lists(offsets, rng.lognormal(3.7, 0.6, n)),
        "platform": _lists(offsets, np.array(["web", "ios", "android"], dtype=object)[rng.integers(0, 3, n)]),
        "dt_prev_s": _lists(offsets, rng.exponential(3600, n)),
        "dt_cutoff_s": _lists(offsets, rng.exponential(86_400 * 10, n)),
        "hour": _lists(offsets, rng.integers(0, 24, n).astype(np.int32)),
        "weekday": _lists(offsets, rng.integers(0, 7, n).astype(np.int32)),
    }
    columns.update({name: pa.array(rng.integers(0, 200, rows).astype(np.float64)) for name in PROFILE})
    return pa.table(columns)


def prepare(folder: str, profiles: int, mean_length: float) -> None:
    root = StorageRoot(folder)
    rng = np.random.default_rng(0)
    chunks = (
        synthetic_chunk(rng, start, min(CHUNK, profiles - start), mean_length) for start in range(0, profiles, CHUNK)
    )
    manifest = root.write_partition(HISTORIES, DAY, chunks)
    sample = root.read_partition(HISTORIES, DAY).slice(0, 100_000)
    vocabulary = Vocabulary.build([sample], VocabularyLimits())
    torch.manual_seed(0)
    network = ConsumerLSTM.for_vocabulary(
        ModelConfig(targets=("order_any", *(f"order_category_c{k}" for k in range(5)))), vocabulary
    )
    network.fit_standardisation(encode(sample, vocabulary, MAX_LENGTH).profile)
    ModelStore(root).save_candidate("benchmark", network.eval(), vocabulary, {})
    print(
        f"snapshot: {manifest.rows:,} profiles, "
        f"{sum(len(x) for x in sample.column('event_type').to_pylist()) / sample.num_rows:.1f} events per profile on "
        "average"
    )


def peak_resident_kib() -> int:
    """This process's peak resident memory (VmHWM): unlike ru_maxrss it does not carry the parent's peak across exec."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def score(folder: str, threads: int, batch_size: int) -> None:
    """Runs in a fresh process (``--score FOLDER``) so that its peak memory is the scoring's alone."""
    torch.set_num_threads(threads)
    root = StorageRoot(folder)
    model = ModelStore(root).load("benchmark")
    started = time.perf_counter()
    batches = iter_snapshot_batches(root, DAY, CHUNK)
    manifest = root.write_partition(PREDICTIONS, DAY, score_partition(model, batches, DAY, batch_size))
    seconds = time.perf_counter() - started
    peak_gib = peak_resident_kib() / 1024**2
    print(
        f"scored {manifest.rows:,} profiles in {seconds:.1f} s: {manifest.rows / seconds:,.0f} profiles/s, peak memory "
        f"{peak_gib:.2f} GiB "
        f"({threads} threads, batches of {batch_size}, chunks of {CHUNK:,})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--mean-length", type=float, default=15.0, help="mean events per history (capped at 100)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--score", metavar="FOLDER", help=argparse.SUPPRESS)  # the measured child process
    args = parser.parse_args()
    if args.score:
        score(args.score, args.threads, args.batch_size)
        return
    with tempfile.TemporaryDirectory() as folder:
        prepare(folder, args.profiles, args.mean_length)
        options = ["--threads", str(args.threads), "--batch-size", str(args.batch_size)]
        subprocess.run([sys.executable, __file__, "--score", folder, *options], check=True)


if __name__ == "__main__":
    main()
