"""Training figures: sequences/s, AUC against the baselines and the oracle, warm against cold start.

    .venv/bin/python benchmarks/training.py [--profiles 20000] [--days 24] [--skip-quality]

Part one times training steps of the LSTM (hidden 64, sequences of length 100) on
CPU, and on CUDA when there is a GPU. Part two simulates a shop, builds snapshots
and labels with Spark, trains a candidate exactly as trained_lstm does and prints
its test AUC and log-likelihood next to the scikit-learn baselines and the oracle
(the simulator's true probabilities). Part three promotes that model, then trains
the next day's candidate twice, warm-started and cold, and prints after how many
epochs each first reached the cold run's best validation log-loss.
"""

import argparse
import tempfile
import time
from datetime import date, timedelta

import numpy as np
import torch

from consumer_assets.datasets import RAW_EVENTS
from consumer_assets.features.build import build_labels, build_snapshot
from consumer_assets.features.histories import HistoryConfig
from consumer_assets.features.spark import SparkStorage, spark_session
from consumer_assets.model.encoding import Vocabulary, VocabularyLimits, encode
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.store import ModelStore
from consumer_assets.serving.smoke import synthetic_histories
from consumer_assets.simulation import TRUTH_DATASET, ShopSimulator, SimulationConfig, true_probabilities
from consumer_assets.storage import StorageRoot
from consumer_assets.training.run import plan_training, train_candidate
from consumer_assets.training.train import TrainConfig
from consumer_assets.validation.evaluate import evaluate_candidate, labelled_rows
from consumer_assets.metrics import summarise

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


def train_at(root: StorageRoot, day: date, version: str, warm: bool, patience: int = 2):
    config = TrainConfig(max_epochs=8, patience=patience, learning_rate=2e-3)
    plan = plan_training(root, day, HORIZON, 14, ModelConfig(), config, VocabularyLimits(), 128)
    return train_candidate(root, plan, version, warm_start=warm, log_fn=lambda line: print("   ", line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=24)
    parser.add_argument("--skip-quality", action="store_true", help="only time training steps")
    args = parser.parse_args()

    torch.set_num_threads(2)
    print("training speed, hidden 64, length 100, batch 256 (forward + backward + step)")
    print(f"  cpu  {steps_per_second('cpu'):>10,.0f} sequences/s ({torch.get_num_threads()} threads)")
    if torch.cuda.is_available():
        print(f"  cuda {steps_per_second('cuda'):>10,.0f} sequences/s ({torch.cuda.get_device_name()})")
    else:
        print("  cuda          - (no GPU on this machine)")
    if args.skip_quality:
        return

    with tempfile.TemporaryDirectory() as folder:
        root = StorageRoot(folder)
        started = time.perf_counter()
        build_data(root, args.profiles, args.days)
        print(f"\nsimulated and built {args.days} days of {args.profiles:,} profiles in {time.perf_counter() - started:.0f} s")
        day = START + timedelta(days=args.days - 2)
        print(f"cold-start training at {day}")
        first = train_at(root, day, "bench-first", warm=False)
        evaluation = evaluate_candidate(root, "bench-first", first.plan.split.train_days, first.plan.split.test_day)
        table, y = labelled_rows(root, (first.plan.split.test_day,), ("order_any",), "test")
        oracle = summarise(true_probabilities(root, first.plan.split.test_day, table.column("profile_id")), y[:, 0], with_interval=False)
        m = evaluation["candidate"]["order_any"]
        print(f"\ntest data: {m['rows']:,} held-out profiles of {first.plan.split.test_day}, {m['positives']} ordered")
        print(f"  {'model':<22} {'AUC':>7} {'mean log-lik':>13}")
        print(f"  {'LSTM':<22} {m['auc']:>7.4f} {m['mean_log_likelihood']:>13.4f}")
        for name, b in evaluation["baselines"].items():
            print(f"  {name:<22} {b['auc']:>7.4f} {b['mean_log_likelihood']:>13.4f}")
        print(f"  {'base rate':<22} {0.5:>7.4f} {m['base_rate_log_likelihood']:>13.4f}")
        print(f"  {'oracle (true p)':<22} {oracle['auc']:>7.4f} {oracle['mean_log_likelihood']:>13.4f}")

        ModelStore(root).promote("bench-first", {"run_id": "benchmark"})
        next_day = day + timedelta(days=1)
        print(f"\nnext day ({next_day}): warm start from bench-first against a cold start, early stopping off")
        cold = train_at(root, next_day, "bench-cold", warm=False, patience=8)
        warm = train_at(root, next_day, "bench-warm", warm=True, patience=8)
        target = min(h["validation_log_loss"] for h in cold.result.history)
        for name, run in (("cold", cold), ("warm", warm)):
            reached = next((h["epoch"] for h in run.result.history if h["validation_log_loss"] <= target + 1e-4), None)
            losses = ", ".join(f"{h['validation_log_loss']:.4f}" for h in run.result.history)
            print(f"  {name}: reached {target:.4f} at epoch {reached}; validation log-loss per epoch: {losses}")


if __name__ == "__main__":
    main()
