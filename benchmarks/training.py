"""Training figures: throughput of the input pipeline and of training, memory, contention, and model quality.

    .venv/bin/python benchmarks/training.py [--data FOLDER] [--profiles 100000] [--days 24] [--threads 2]
        [--pipeline-only] [--batch-sizes 128,1024] [--skip-quality] [--warm-start]
        [--ablations one-snapshot-per-profile,no-article-ids]
    .venv/bin/python benchmarks/training.py --steps-only [--step-batches 256,2048]   # raw steps, fp32 and bf16 on CUDA
    .venv/bin/python benchmarks/training.py --contention   # one training run alone, then two side by side (CPU)
    .venv/bin/python benchmarks/training.py --memory        # peak RSS of a run on 1 million sequences of mean length 30

Part one times raw training steps of the LSTM (hidden 64, every sequence of
length 100) on CPU, and on CUDA when there is a GPU (fp32 and bfloat16 autocast).
Part two simulates a shop (or reuses ``--data``), builds snapshots and labels with
Spark, and trains a candidate exactly as trained_lstm does, once per batch size:
it prints the one-time encoding, sequences/s end to end per epoch and the test
AUC. With ``--pipeline-only`` it times the input pipeline alone (gathering an
epoch of batches from the encoded rows, no compute). Then the quality table: the
LSTM beside the scikit-learn baselines and, when the data folder has the
simulator's raw events and truth, the oracle (true probabilities) and a forward
filter over daily counts, every figure with its 95 % interval over profiles on the
pooled held-out test days; the snapshots use the platform's 90-day window, so give
``--days`` past 90 for full windows (the filter reads every simulated day). With
``--ablations``, each named variant (``VARIANTS``: one lever of the default turned)
is trained on the same data and its paired difference to the default printed. With --warm-start, part three promotes
that model,
trains the next day's candidate twice, warm-started and cold, and prints after how
many epochs each first reached the cold run's best validation log-loss.
"""

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import torch

from consumer_assets.asset_keys import LABELS, RAW_EVENTS
from consumer_assets.metrics import paired_differences, summarise
from consumer_assets.model.encoding import PROFILE, Vocabulary, VocabularyLimits, encode
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import GateVerdict, ModelStore
from consumer_assets.serving.smoke import synthetic_histories
from consumer_assets.simulation import TRUTH_DATASET, ShopSimulator, SimulationConfig, true_probabilities
from consumer_assets.simulation.filter import filter_probabilities
from consumer_assets.storage import StorageRoot
from consumer_assets.timeline import Timeline
from consumer_assets.training.candidate import encode_rows, plan_training, train_candidate
from consumer_assets.training.dataset import EncodedRows
from consumer_assets.training.split import SnapshotRows
from consumer_assets.training.train import TrainConfig, resolve_device, train
from consumer_assets.validation.evaluation import Comparison, Figures
from consumer_assets.validation.evaluator import evaluate_candidate, labelled_rows

TIMELINE = Timeline()  # the platform's label horizon and training window
HORIZON = TIMELINE.label_horizon_days
START = date(2026, 10, 1)


def steps_per_second(device: str, batch_size: int = 256, steps: int = 20, precision: str = "fp32") -> float:
    """Raw training steps (forward, backward, optimiser) on one batch kept on the device: the ceiling of feeding."""
    table = synthetic_histories(batch_size, 100)
    vocabulary = Vocabulary.build([table], VocabularyLimits(min_count=1))
    network = ConsumerLSTM.for_vocabulary(ModelConfig(hidden_size=64), vocabulary).to(device)
    batch = encode(table, vocabulary, 100, np.zeros((batch_size, 1), np.float32))
    batch.lengths[:] = 100  # every sequence full length: the worst case
    batch = batch.to(device)
    optimiser = torch.optim.AdamW(network.parameters())
    loss_fn = torch.nn.BCEWithLogitsLoss()
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    for step in range(steps + 3):
        if step == 3:
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        optimiser.zero_grad()
        with torch.autocast(device_type=device, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = network(batch.categorical, batch.continuous, batch.profile, batch.lengths)
        loss_fn(logits.float(), batch.labels).backward()
        optimiser.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - started)


def build_data(root: StorageRoot, profiles: int, days: int) -> None:
    from consumer_assets.features.build_snapshot import build_snapshot  # Spark only where data is built
    from consumer_assets.features.histories import HistoryConfig
    from consumer_assets.features.spark import SparkStorage, spark_session
    from consumer_assets.labels.build_labels import build_labels

    for day in ShopSimulator(SimulationConfig(profiles=profiles)).simulate(START, days):
        root.write_partition(RAW_EVENTS, day.day, day.events)
        root.write_partition(TRUTH_DATASET, day.day, day.truth)
    spark = spark_session("local[*]", {"spark.driver.memory": "6g", "spark.ui.enabled": "false"})
    spark_storage = SparkStorage(root)
    for k in range(days):
        build_snapshot(
            spark, spark_storage, START + timedelta(days=k), HistoryConfig(), files=1
        )  # the platform's window
    for k in range(days - HORIZON):
        build_labels(spark, spark_storage, START + timedelta(days=k), HORIZON, {})


VARIANTS = {  # ablations: each trains the same candidate with one lever of the default turned
    "one-snapshot-per-profile": {"one_snapshot_per_profile": True},
    "equal-target-weights": {"judged_target_weight": None},
    "no-article-ids": {"limits": {"max_articles": 0, "max_brands": 0}},  # what the id embeddings cost or bring
}


def train_at(
    root: StorageRoot,
    day: date,
    version: str,
    warm: bool,
    patience: int | None = None,
    threads: int = 2,
    batch_size: int | None = None,
    max_epochs: int | None = None,
    **overrides,
):
    config = TrainConfig(
        max_epochs=max_epochs, patience=patience or TrainConfig.patience, threads=threads, batch_size=batch_size
    )
    limits = replace(VocabularyLimits(), **overrides.pop("limits", {}))
    if overrides.get("judged_target_weight", 0) is None:  # equal weights: the judged target gets 1 / targets
        plan = plan_training(root, day, TIMELINE, ModelConfig(), config, VocabularyLimits())
        overrides["judged_target_weight"] = 1 / len(plan.targets)
    config = replace(config, **overrides)
    plan = plan_training(root, day, TIMELINE, ModelConfig(), config, limits)
    return train_candidate(root, plan, version, warm_start=warm, log_fn=lambda line: print("   ", line))


def pipeline_only(root: StorageRoot, day: date, batch_sizes: list[int]) -> None:
    """Encode the training rows once, then time epochs of gathered batches without any compute."""
    plan = plan_training(root, day, TIMELINE, ModelConfig(), TrainConfig(), VocabularyLimits())
    source = SnapshotRows(root, plan.split.train_days, plan.targets, "train")
    vocabulary = Vocabulary.build((chunk for _, chunk, _ in source), plan.limits)
    started = time.perf_counter()
    rows = encode_rows(source, vocabulary, plan.model.max_length)
    seconds = time.perf_counter() - started
    print(
        f"\ninput pipeline: {len(rows):,} training rows ({rows.events:,} events, {rows.nbytes / 2**20:,.0f} MiB) read "
        f"and encoded once in {seconds:.1f} s ({len(rows) / seconds:,.0f} rows/s)"
    )
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    rng = np.random.default_rng(0)
    for device in devices:
        placed = rows.to(device)
        for batch_size in batch_sizes:
            for _epoch in range(2):  # the first warms up
                started = time.perf_counter()
                for _batch in placed.batches(batch_size, rng):
                    pass
                if device == "cuda":
                    torch.cuda.synchronize()
                seconds = time.perf_counter() - started
            print(
                f"  gathered on {device:<4} batch {batch_size:>5}: {len(rows) / seconds:>12,.0f} sequences/s (an epoch "
                f"in {seconds:.2f} s)"
            )


def synthetic_rows(rows: int, mean_length: int, seed: int = 0, chunk: int = 16_384):
    """(history rows, labels) chunks of random histories, built column-wise so a million rows take seconds."""
    rng = np.random.default_rng(seed)
    types = pa.array(["view", "wishlist", "add_to_cart", "remove_from_cart", "order"])
    for begin in range(0, rows, chunk):
        n = min(chunk, rows - begin)
        lengths = rng.integers(0, 2 * mean_length + 1, n)
        offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
        events = int(lengths.sum())

        def ids(prefix: str, count: int) -> pa.ListArray:
            values = pa.array(np.char.add(prefix, rng.integers(0, count, events).astype(str)))
            return pa.ListArray.from_arrays(offsets, values)

        def numbers(values: np.ndarray) -> pa.ListArray:
            return pa.ListArray.from_arrays(offsets, pa.array(values))

        table = pa.table(
            {
                "profile_id": pa.array([f"p{begin + i}" for i in range(n)]),
                "event_type": pa.ListArray.from_arrays(offsets, types.take(pa.array(rng.integers(0, 5, events)))),
                "article_id": ids("a", 5_000),
                "category_id": ids("c", 50),
                "brand_id": ids("b", 300),
                "price": numbers(rng.uniform(1, 200, events)),
                "dt_prev_s": numbers(rng.exponential(3_600, events)),
                "hour": numbers(rng.integers(0, 24, events)),
                "weekday": numbers(rng.integers(0, 7, events)),
                **{name: pa.array(rng.integers(0, 50, n).astype(float)) for name in PROFILE},
            }
        )
        yield table, (rng.random((n, 1)) < 0.05).astype(np.float32)


def synthetic_training(
    rows: int, mean_length: int, epochs: int, threads: int, device: str = "cpu", batch_size: int | None = None
) -> dict:
    """A real ``train`` on random histories (no Spark, no storage): sequences/s, peak RSS, encoding time."""
    vocabulary = Vocabulary.build((table for table, _ in synthetic_rows(50_000, mean_length)), VocabularyLimits())
    started = time.perf_counter()
    train_rows = EncodedRows.encode(synthetic_rows(rows, mean_length, seed=1), vocabulary, 100)
    encoding = time.perf_counter() - started
    validation = EncodedRows.encode(synthetic_rows(20_000, mean_length, seed=2), vocabulary, 100)
    config = TrainConfig(max_epochs=epochs, patience=epochs, threads=threads, device=device, batch_size=batch_size)
    result = train(train_rows, validation, ModelConfig(), vocabulary, config, log=lambda line: None)
    return {
        "rows": len(train_rows),
        "events": train_rows.events,
        "encoded_mib": train_rows.nbytes / 2**20,
        "encoding_s": encoding,
        "sequences_per_second": result.sequences_per_second,
        "per_epoch": [round(h["sequences_per_second"]) for h in result.history],
        "batch_size": result.batch_size,
        "device": result.device,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def in_subprocesses(copies: int, *options: str) -> list[dict]:
    """Run ``copies`` workers of this script at once; their JSON figures."""
    command = [sys.executable, __file__, *options]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    return [json.loads(worker.communicate()[0].strip().splitlines()[-1]) for worker in workers]


def contention(threads: int) -> None:
    """One training run alone, then two side by side: sequences/s of each, and together against alone."""
    options = ("--worker", "--worker-rows", "30000", "--worker-epochs", "3", "--threads", str(threads))
    alone = in_subprocesses(1, *options)[0]["sequences_per_second"]
    pair = [w["sequences_per_second"] for w in in_subprocesses(2, *options)]
    print(
        f"\ncontention on {os.cpu_count()} cores, hidden 64, mean length 30, batch 128, at most {threads} threads per "
        "run (train(), 3 epochs of 30,000 rows):"
    )
    print(f"  one run alone       {alone:>8,.0f} sequences/s")
    print(
        f"  two side by side    {pair[0]:>8,.0f} + {pair[1]:,.0f} = {sum(pair):,.0f} sequences/s "
        f"({sum(pair) / alone:.0%} of one alone)"
    )


def memory() -> None:
    figures = in_subprocesses(1, "--worker", "--worker-rows", "1000000", "--worker-epochs", "1")[0]
    print(
        f"\nmemory: a training run (one epoch) on {figures['rows']:,} sequences of mean length 30 "
        f"({figures['events']:,} events): "
        f"encoded once in {figures['encoding_s']:.0f} s to {figures['encoded_mib']:,.0f} MiB; peak RSS "
        f"{figures['peak_rss_gib']:.2f} GiB; "
        f"{figures['sequences_per_second']:,.0f} sequences/s"
    )


def reference_scores(root: StorageRoot, table, config: SimulationConfig) -> dict[str, np.ndarray]:
    """The oracle (true probabilities) and the forward filter over daily counts, for each test row.

    The filter takes minutes at 100,000 profiles; its scores are kept beside the data
    (``_references/<digest>.npz``, plain arrays) and reused for the same test rows.
    """
    days = table.column("snapshot_date").to_pylist()
    ids = table.column("profile_id").to_pylist()
    digest = hashlib.sha256(json.dumps([[str(d) for d in days], ids]).encode()).hexdigest()[:16]
    cached = None if root.is_s3 else os.path.join(root.base, "_references", f"{digest}.npz")
    if cached and os.path.exists(cached):
        with np.load(cached, allow_pickle=False) as stored:
            return {"forward filter (counts/day)": stored["filtered"], "oracle (true p)": stored["oracle"]}
    profiles = sorted(set(ids))
    oracle, filtered = np.zeros(len(ids)), np.zeros(len(ids))
    for day in sorted(set(days)):
        rows = np.array([d == day for d in days])
        oracle[rows] = true_probabilities(root, day, table.column("profile_id").filter(pa.array(rows)))
    started = time.perf_counter()
    history = (
        (d, root.read_partition(RAW_EVENTS, d, columns=["profile_id", "event_type"]))
        for d in root.list_partitions(RAW_EVENTS)
        if d <= max(days)
    )
    by_day = filter_probabilities(history, profiles, HORIZON, config, set(days))
    position = {p: i for i, p in enumerate(profiles)}
    for k, (day, profile) in enumerate(zip(days, ids)):
        filtered[k] = by_day[day][position[profile]]
    print(f"  forward filter over {len(profiles):,} profiles in {time.perf_counter() - started:.0f} s")
    if cached:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        np.savez(cached, filtered=filtered, oracle=oracle)
    return {"forward filter (counts/day)": filtered, "oracle (true p)": oracle}


def quality_table(
    root: StorageRoot, version: str, split, config: SimulationConfig
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Print the LSTM beside the baselines and references; returns its test scores and the references'."""
    evaluation = evaluate_candidate(root, version, split)
    table, y = labelled_rows(root, split.held_out_days, ("order_any",), "test")
    y = y[:, 0]
    groups = np.asarray(table.column("profile_id").to_pylist(), dtype=object)
    lstm = score_table(ModelStore(root).load(version), table)[:, 0]
    data = evaluation.test_data
    print(
        f"\ntest data: {data.rows:,} rows of {data.profiles:,} held-out profiles on "
        f"{', '.join(evaluation.test_days)}; {data.positives:,} positives"
    )
    if root.list_partitions(TRUTH_DATASET) and root.list_partitions(RAW_EVENTS):
        references = reference_scores(root, table, config)
    else:
        references = {}
        print("  (no raw events and truth in this data folder: no oracle or forward filter)")
    rows = {
        "LSTM": evaluation.candidate["order_any"],
        **evaluation.baselines,
        **{name: Figures.from_json(summarise(p, y, groups)) for name, p in references.items()},
    }
    print(
        f"  {'model':<28} {'AUC (95 % interval)':>24} {'mean log-lik':>13} {'ECE (95 %)':>22} {'mean p / observed':>18}"
    )
    for name, m in rows.items():
        print(
            f"  {name:<28} {m.auc:>7.4f} ({m.auc_ci_low:.4f}-{m.auc_ci_high:.4f}) "
            f"{m.mean_log_likelihood:>13.4f} "
            f"{m.ece:>7.4f} ({m.ece_ci_low:.4f}-{m.ece_ci_high:.4f}) {m.mean_prediction:>8.4f} / "
            f"{m.observed_rate:.4f}"
        )
    strongest = evaluation.strongest_baseline
    others = {f"strongest baseline ({strongest})": evaluation.comparisons[strongest]}
    if references:
        others["forward filter"] = Comparison.from_json(
            paired_differences(lstm, references["forward filter (counts/day)"], y, groups)
        )
    for name, c in others.items():
        print(
            f"  LSTM - {name}: AUC {c.auc_difference:+.4f} (paired 95 % interval {c.auc_difference_ci_low:+.4f} "
            f"to {c.auc_difference_ci_high:+.4f})"
        )
    return lstm, references


def ablations(
    root: StorageRoot,
    day: date,
    version: str,
    split,
    lstm: np.ndarray,
    references: dict[str, np.ndarray],
    names: list[str],
    threads: int,
) -> None:
    """Train each variant of ``VARIANTS`` on the same data; its AUC and its paired difference to the default LSTM."""
    table, y = labelled_rows(root, split.held_out_days, ("order_any",), "test")
    y, groups = y[:, 0], np.asarray(table.column("profile_id").to_pylist(), dtype=object)
    print(
        f"\nablations (each a lever of the default turned; paired differences on the same {len(y):,} test rows, "
        f"{int(y.sum()):,} positives)"
    )
    for name in names:
        trained = train_at(root, day, f"{version}-{name}", warm=False, threads=threads, **VARIANTS[name])
        p = score_table(ModelStore(root).load(trained.version), table)[:, 0]
        m, c = summarise(p, y, groups), paired_differences(p, lstm, y, groups)
        line = f"  {name:<24} AUC {m['auc']:.4f} ({m['auc_ci_low']:.4f}-{m['auc_ci_high']:.4f}), ECE {m['ece']:.4f}; "
        line += (
            f"variant - default {c['auc_difference']:+.4f} "
            f"({c['auc_difference_ci_low']:+.4f} to {c['auc_difference_ci_high']:+.4f})"
        )
        if references:
            f = paired_differences(p, references["forward filter (counts/day)"], y, groups)
            line += f"; variant - filter {f['auc_difference']:+.4f}"
        print(line + f"; best epoch {trained.result.best_epoch}, {trained.result.seconds:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=24)
    parser.add_argument(
        "--data", default=None, help="keep the simulated data in this folder and reuse it when it is there"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps-only", action="store_true", help="only time raw training steps")
    parser.add_argument("--step-batches", default="256", help="batch sizes of the raw steps, comma-separated")
    parser.add_argument(
        "--pipeline-only", action="store_true", help="only time the input pipeline (after the one-time encoding)"
    )
    parser.add_argument(
        "--batch-sizes", default="", help="end-to-end runs at these batch sizes (default: the device's default)"
    )
    parser.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        help="upper bound of the end-to-end runs' epochs (early stopping); default: the platform's (TrainConfig)",
    )
    parser.add_argument("--skip-quality", action="store_true", help="no baselines and references after training")
    parser.add_argument(
        "--ablations",
        default="",
        help=f"after the quality table, train these variants too, comma-separated: {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--warm-start", action="store_true", help="also compare a warm start with a cold one on the next day"
    )
    parser.add_argument("--contention", action="store_true", help="one CPU training run alone, then two side by side")
    parser.add_argument("--memory", action="store_true", help="peak RSS of a training run on 1 million sequences")
    parser.add_argument(
        "--throughput",
        type=int,
        default=0,
        metavar="ROWS",
        help="train() end to end on ROWS random histories on the default device, per --batch-sizes",
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-rows", type=int, default=15_000, help=argparse.SUPPRESS)
    parser.add_argument("--worker-epochs", type=int, default=3, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        print(json.dumps(synthetic_training(args.worker_rows, 30, args.worker_epochs, args.threads)))
        return
    if args.throughput:
        for batch_size in [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else [None]:
            figures = synthetic_training(args.throughput, 30, 3, args.threads, "auto", batch_size)
            name = (
                torch.cuda.get_device_name()
                if figures["device"].startswith("cuda")
                else f"{torch.get_num_threads()} threads"
            )
            print(
                f"train() on {figures['rows']:,} random histories of mean length 30, {figures['device']} ({name}), "
                f"batch {figures['batch_size']}: "
                f"{figures['sequences_per_second']:,.0f} sequences/s (epochs {figures['per_epoch']}), encoded once in "
                f"{figures['encoding_s']:.1f} s"
            )
        return
    if args.contention or args.memory:
        if args.contention:
            contention(args.threads)
        if args.memory:
            memory()
        return
    torch.set_num_threads(args.threads)
    print("raw training steps, hidden 64, length 100 (forward + backward + step, one batch kept on the device)")
    for batch_size in map(int, args.step_batches.split(",")):
        print(
            f"  cpu  batch {batch_size:>5} fp32 {steps_per_second('cpu', batch_size):>10,.0f} sequences/s "
            f"({torch.get_num_threads()} threads)"
        )
    if torch.cuda.is_available():
        for batch_size in map(int, args.step_batches.split(",")):
            for precision in ("fp32", "bf16"):
                print(
                    f"  cuda batch {batch_size:>5} {precision} "
                    f"{steps_per_second('cuda', batch_size, precision=precision):>10,.0f} sequences/s "
                    f"({torch.cuda.get_device_name()})"
                )
    else:
        print("  cuda          - (no GPU on this machine)")
    if args.steps_only:
        return

    with tempfile.TemporaryDirectory() as scratch:
        root = StorageRoot(args.data or scratch)
        started = time.perf_counter()
        if not root.list_partitions(LABELS):
            build_data(root, args.profiles, args.days)
            print(
                f"\nsimulated and built {args.days} days of {args.profiles:,} profiles in "
                f"{time.perf_counter() - started:.0f} s"
            )
        day = START + timedelta(days=args.days - 2)
        if args.pipeline_only:
            pipeline_only(root, day, [int(b) for b in (args.batch_sizes or "128,1024").split(",")])
            return
        device = resolve_device("auto")
        version = f"bench-{int(time.time())}"
        for batch_size in [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else [None]:
            print(
                f"\ncold-start training at {day} on "
                f"{device}{' (' + torch.cuda.get_device_name() + ')' if device.type == 'cuda' else ''}, batch "
                f"{batch_size or 'default'}"
            )
            first = train_at(
                root,
                day,
                f"{version}-{batch_size or 'default'}",
                warm=False,
                threads=args.threads,
                batch_size=batch_size,
                max_epochs=args.max_epochs,
            )
            result = first.result
            epochs = [f"{h['sequences_per_second']:,.0f}" for h in result.history]
            print(
                f"  end to end: {result.sequences_per_second:,.0f} sequences/s on average (per epoch: "
                f"{', '.join(epochs)}); best epoch {result.best_epoch}"
            )
            if args.skip_quality:
                continue
            lstm, references = quality_table(
                root, first.version, first.plan.split, SimulationConfig(profiles=args.profiles)
            )
            if args.ablations:
                ablations(
                    root,
                    day,
                    first.version,
                    first.plan.split,
                    lstm,
                    references,
                    args.ablations.split(","),
                    args.threads,
                )
        if not args.warm_start:
            return
        version = first.version
        store = ModelStore(root)
        store.write_verdict(
            GateVerdict(version, True, run_id="benchmark")
        )  # promoted unjudged, to compare warm and cold starts
        store.promote(version, run_id="benchmark")
        next_day = day + timedelta(days=1)
        print(f"\nnext day ({next_day}): warm start from {version} against a cold start, early stopping off")
        cold = train_at(root, next_day, f"{version}-cold", warm=False, patience=8, threads=args.threads)
        warm = train_at(root, next_day, f"{version}-warm", warm=True, patience=8, threads=args.threads)
        target = min(h["validation_log_loss"] for h in cold.result.history)
        for name, run in (("cold", cold), ("warm", warm)):
            reached = next((h["epoch"] for h in run.result.history if h["validation_log_loss"] <= target + 1e-4), None)
            losses = ", ".join(f"{h['validation_log_loss']:.4f}" for h in run.result.history)
            print(f"  {name}: reached {target:.4f} at epoch {reached}; validation log-loss per epoch: {losses}")


if __name__ == "__main__":
    main()
