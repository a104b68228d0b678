"""Training figures: sequences/s, and the LSTM against the baselines, the forward filter and the oracle.

    .venv/bin/python benchmarks/training.py [--profiles 100000] [--days 24] [--data FOLDER] [--skip-quality] [--warm-start]

Part one times training steps of the LSTM (hidden 64, sequences of length 100) on
CPU, and on CUDA when there is a GPU. Part two simulates a shop, builds snapshots
and labels with Spark, trains a candidate exactly as trained_lstm does and prints
its test AUC and log-likelihood next to the scikit-learn baselines and the oracle
(the simulator's true probabilities) and a forward filter over the hidden intent
states given each profile's day-by-day counts (the best reachable from counts),
every figure with its 95 % interval over profiles, on the pooled held-out test
days. With --warm-start, part three promotes that model, trains the next day's
candidate twice, warm-started and cold, and prints after how many epochs each
first reached the cold run's best validation log-loss.
"""

import argparse
import tempfile
import time
from datetime import date, timedelta

import numpy as np
import pyarrow as pa
import torch

from consumer_assets.datasets import LABELS, RAW_EVENTS
from consumer_assets.features.build import build_labels, build_snapshot
from consumer_assets.features.histories import HistoryConfig
from consumer_assets.features.spark import SparkStorage, spark_session
from consumer_assets.model.encoding import Vocabulary, VocabularyLimits, encode
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.store import ModelStore
from consumer_assets.metrics import paired_differences, summarise
from consumer_assets.serving.score import score_table
from consumer_assets.serving.smoke import synthetic_histories
from consumer_assets.simulation import TRUTH_DATASET, ShopSimulator, SimulationConfig, true_probabilities
from consumer_assets.simulation.filter import filter_probabilities
from consumer_assets.storage import StorageRoot
from consumer_assets.training.run import plan_training, train_candidate
from consumer_assets.training.train import TrainConfig
from consumer_assets.validation.evaluate import evaluate_candidate, labelled_rows

HORIZON = 7
START = date(2026, 10, 1)


def steps_per_second(device: str, batch_size: int = 256, steps: int = 20) -> float:
    table = synthetic_histories(batch_size, 100)
    vocabulary = Vocabulary.build([table], VocabularyLimits(min_count=1))
    network = ConsumerLSTM.for_vocabulary(ModelConfig(hidden_size=64), vocabulary).to(device)
    batch = encode(table, vocabulary, 100, np.zeros((batch_size, 1), np.float32))
    batch.lengths[:] = 100  # every sequence full length: the worst case
    batch = batch.to(device)
    optimiser = torch.optim.AdamW(network.parameters())
    loss_fn = torch.nn.BCEWithLogitsLoss()
    for step in range(steps + 3):
        if step == 3:
            if device == "cuda":
                torch.cuda.synchronize()
            started = time.perf_counter()
        optimiser.zero_grad()
        loss = loss_fn(network(batch.categorical, batch.continuous, batch.profile, batch.lengths), batch.labels)
        loss.backward()
        optimiser.step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size / (time.perf_counter() - started)


def build_data(root: StorageRoot, profiles: int, days: int) -> None:
    for day in ShopSimulator(SimulationConfig(profiles=profiles)).simulate(START, days):
        root.write_partition(RAW_EVENTS, day.day, day.events)
        root.write_partition(TRUTH_DATASET, day.day, day.truth)
    spark = spark_session("local[*]", {"spark.driver.memory": "6g", "spark.ui.enabled": "false"})
    bridge = SparkStorage(root)
    for k in range(days):
        build_snapshot(spark, bridge, START + timedelta(days=k), HistoryConfig(window_days=30), files=1)
    for k in range(days - HORIZON):
        build_labels(spark, bridge, START + timedelta(days=k), HORIZON, {})


def train_at(root: StorageRoot, day: date, version: str, warm: bool, patience: int = 2, threads: int = 2):
    config = TrainConfig(max_epochs=8, patience=patience, threads=threads)
    plan = plan_training(root, day, HORIZON, 14, ModelConfig(), config, VocabularyLimits(), 128)
    return train_candidate(root, plan, version, warm_start=warm, log_fn=lambda line: print("   ", line))


def reference_scores(root: StorageRoot, table, config: SimulationConfig) -> dict[str, np.ndarray]:
    """The oracle (true probabilities) and the forward filter over daily counts, for each test row."""
    days = table.column("snapshot_date").to_pylist()
    ids = table.column("profile_id").to_pylist()
    profiles = sorted(set(ids))
    oracle, filtered = np.zeros(len(ids)), np.zeros(len(ids))
    for day in sorted(set(days)):
        rows = np.array([d == day for d in days])
        oracle[rows] = true_probabilities(root, day, table.column("profile_id").filter(pa.array(rows)))
    started = time.perf_counter()
    history = ((d, root.read_partition(RAW_EVENTS, d, columns=["profile_id", "event_type"])) for d in root.list_partitions(RAW_EVENTS) if d <= max(days))
    by_day = filter_probabilities(history, profiles, HORIZON, config, set(days))
    position = {p: i for i, p in enumerate(profiles)}
    for k, (day, profile) in enumerate(zip(days, ids)):
        filtered[k] = by_day[day][position[profile]]
    print(f"  forward filter over {len(profiles):,} profiles in {time.perf_counter() - started:.0f} s")
    return {"forward filter (counts/day)": filtered, "oracle (true p)": oracle}


def quality_table(root: StorageRoot, version: str, split, config: SimulationConfig) -> None:
    evaluation = evaluate_candidate(root, version, split)
    table, y = labelled_rows(root, split.held_out_days, ("order_any",), "test")
    y = y[:, 0]
    groups = np.asarray(table.column("profile_id").to_pylist(), dtype=object)
    lstm = score_table(ModelStore(root).load(version), table)[:, 0]
    data = evaluation["test_data"]
    print(f"\ntest data: {data['rows']:,} rows of {data['profiles']:,} held-out profiles on {', '.join(evaluation['test_days'])}; {data['positives']:,} positives")
    references = reference_scores(root, table, config)
    rows = {"LSTM": evaluation["candidate"]["order_any"], **evaluation["baselines"], **{name: summarise(p, y, groups) for name, p in references.items()}}
    print(f"  {'model':<28} {'AUC (95 % interval)':>24} {'mean log-lik':>13} {'ECE (95 %)':>22} {'mean p / observed':>18}")
    for name, m in rows.items():
        print(
            f"  {name:<28} {m['auc']:>7.4f} ({m['auc_ci_low']:.4f}-{m['auc_ci_high']:.4f}) {m['mean_log_likelihood']:>13.4f} "
            f"{m['ece']:>7.4f} ({m['ece_ci_low']:.4f}-{m['ece_ci_high']:.4f}) {m['mean_prediction']:>8.4f} / {m['observed_rate']:.4f}"
        )
    strongest = evaluation["strongest_baseline"]
    others = {f"strongest baseline ({strongest})": evaluation["comparisons"][strongest]}
    others["forward filter"] = paired_differences(lstm, references["forward filter (counts/day)"], y, groups)
    for name, c in others.items():
        print(f"  LSTM - {name}: AUC {c['auc_difference']:+.4f} (paired 95 % interval {c['auc_difference_ci_low']:+.4f} to {c['auc_difference_ci_high']:+.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=24)
    parser.add_argument("--data", default=None, help="keep the simulated data in this folder and reuse it when it is there")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-quality", action="store_true", help="only time training steps")
    parser.add_argument("--warm-start", action="store_true", help="also compare a warm start with a cold one on the next day")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print("training speed, hidden 64, length 100, batch 256 (forward + backward + step)")
    print(f"  cpu  {steps_per_second('cpu'):>10,.0f} sequences/s ({torch.get_num_threads()} threads)")
    if torch.cuda.is_available():
        print(f"  cuda {steps_per_second('cuda'):>10,.0f} sequences/s ({torch.cuda.get_device_name()})")
    else:
        print("  cuda          - (no GPU on this machine)")
    if args.skip_quality:
        return

    with tempfile.TemporaryDirectory() as scratch:
        root = StorageRoot(args.data or scratch)
        started = time.perf_counter()
        if not root.list_partitions(LABELS):
            build_data(root, args.profiles, args.days)
            print(f"\nsimulated and built {args.days} days of {args.profiles:,} profiles in {time.perf_counter() - started:.0f} s")
        day = START + timedelta(days=args.days - 2)
        version = f"bench-{int(time.time())}"
        print(f"cold-start training at {day}")
        first = train_at(root, day, version, warm=False, threads=args.threads)
        quality_table(root, version, first.plan.split, SimulationConfig(profiles=args.profiles))
        if not args.warm_start:
            return
        ModelStore(root).promote(version, {"run_id": "benchmark"})
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
