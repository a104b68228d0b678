"""What the catalogue join brings when events carry the article id alone, on one simulated shop.

    .venv/bin/python benchmarks/catalogue.py [--profiles 20000] [--days 24] [--threads 2] [--keep FOLDER]

Simulates a shop once and stores its days three ways: the events with their brand, category and price (as the
simulator's tracker sends them today), the events with the article id alone plus the daily catalogue export that
histories join, and the events with the article id alone without a catalogue. Snapshots are built with Spark for
each; the labels (order_any and the five largest categories) come from the first and are copied to the others, so
every variant learns and is judged on the same truth. A candidate is trained on each exactly as trained_lstm trains
it. Printed per variant: the test AUC of every target with its 95 % interval over profiles, the paired difference to
the first variant, and the share of the test snapshots' events on articles the variant's vocabulary has no embedding
for (new arrivals and rare articles), with its interval.
"""

import argparse
import shutil
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.asset_keys import ARTICLE_CATALOGUE, ARTICLE_GROUPS_KEY, LABELS, RAW_EVENTS
from consumer_assets.features.histories import ARTICLE_ATTRIBUTES
from consumer_assets.features.snapshots import read_snapshot
from consumer_assets.ingest.catalogue import ARTICLE_SCHEMA
from consumer_assets.metrics import paired_differences, share_interval
from consumer_assets.model.encoding import VocabularyLimits
from consumer_assets.model.network import ModelConfig
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import ModelStore
from consumer_assets.simulation import ShopSimulator, SimulationConfig
from consumer_assets.storage import StorageRoot
from consumer_assets.timeline import Timeline
from consumer_assets.training.candidate import plan_training, train_candidate
from consumer_assets.training.train import TrainConfig
from consumer_assets.validation.evaluator import evaluate_candidate, labelled_rows

START = date(2026, 10, 1)
TIMELINE = Timeline()
VARIANTS = ("attributes in events", "article id + catalogue", "article id alone")
MIN_POSITIVES = 30  # fewer test positives: a target's AUC says too little to judge


def store_days(roots: dict[str, StorageRoot], profiles: int, days: int) -> None:
    for day in ShopSimulator(SimulationConfig(profiles=profiles)).simulate(START, days):
        ids_only = day.events.drop_columns(list(ARTICLE_ATTRIBUTES))
        for name in ARTICLE_ATTRIBUTES:
            ids_only = ids_only.append_column(
                day.events.schema.field(name), pa.nulls(len(ids_only), day.events.schema.field(name).type)
            )
        ids_only = ids_only.select(day.events.column_names)
        roots[VARIANTS[0]].write_partition(RAW_EVENTS, day.day, day.events)
        roots[VARIANTS[1]].write_partition(RAW_EVENTS, day.day, ids_only)
        roots[VARIANTS[1]].write_partition(ARTICLE_CATALOGUE, day.day, day.catalogue.cast(ARTICLE_SCHEMA))
        roots[VARIANTS[2]].write_partition(RAW_EVENTS, day.day, ids_only)


def build(roots: dict[str, StorageRoot], days: int) -> None:
    from consumer_assets.features.build_snapshot import build_snapshot  # Spark only where data is built
    from consumer_assets.features.histories import HistoryConfig
    from consumer_assets.features.spark import SparkStorage, spark_session
    from consumer_assets.labels.build_labels import build_labels

    spark = spark_session("local[*]", {"spark.driver.memory": "6g", "spark.ui.enabled": "false"})
    for name, root in roots.items():
        started = time.perf_counter()
        for k in range(days):
            build_snapshot(spark, SparkStorage(root), START + timedelta(days=k), HistoryConfig(), files=1)
        print(f"  {name}: {days} snapshots in {time.perf_counter() - started:.0f} s")
    truth = roots[VARIANTS[0]]
    for k in range(days - TIMELINE.label_horizon_days):
        build_labels(spark, SparkStorage(truth), START + timedelta(days=k), TIMELINE.label_horizon_days, {})
    for root in list(roots.values())[1:]:  # the same truth for every variant
        root.write_json(ARTICLE_GROUPS_KEY, truth.read_json(ARTICLE_GROUPS_KEY))
        for day in truth.list_partitions(LABELS):
            root.write_partition(LABELS, day, truth.read_partition(LABELS, day), truth.manifest(LABELS, day).properties)


def unknown_share(root: StorageRoot, version: str, days: list[date]) -> tuple[int, int]:
    """(events on articles without their own embedding, events) in the test days' snapshots."""
    known = pa.array(ModelStore(root).read_vocabulary(version).tokens["article_id"][2:], pa.string())
    unknown = total = 0
    for day in days:
        articles = pc.list_flatten(read_snapshot(root, day, columns=["article_id"]).column("article_id"))
        total += len(articles)
        unknown += len(articles) - (pc.sum(pc.is_in(articles, value_set=known)).as_py() or 0)
    return unknown, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=24)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the three data folders here (and reuse them when present)")
    args = parser.parse_args()
    folder = args.keep or Path(tempfile.mkdtemp(prefix="bench-catalogue-"))
    roots = {name: StorageRoot(str(folder / name.replace(" ", "-").replace("+", "and"))) for name in VARIANTS}
    try:
        started = time.perf_counter()
        if not roots[VARIANTS[-1]].list_partitions(LABELS):
            store_days(roots, args.profiles, args.days)
            build(roots, args.days)
        print(f"data: {args.profiles:,} profiles over {args.days} days, in {time.perf_counter() - started:.0f} s")
        day = START + timedelta(days=args.days - 2)
        config = TrainConfig(threads=args.threads)
        scores, tables = {}, {}
        for index, (name, root) in enumerate(roots.items()):
            plan = plan_training(root, day, TIMELINE, ModelConfig(), config, VocabularyLimits())
            started = time.perf_counter()
            trained = train_candidate(root, plan, f"catalogue-variant-{index}-{int(time.time())}", warm_start=False)
            evaluation = evaluate_candidate(root, trained.version, plan.split)
            table, y = labelled_rows(root, plan.split.held_out_days, plan.targets, "test")
            order = np.lexsort((table.column("snapshot_date").to_numpy(), table.column("profile_id").to_numpy()))
            table, y = table.take(order), y[order]  # one row order for every variant, to pair them
            scores[name] = score_table(ModelStore(root).load(trained.version), table)
            tables[name] = (table, y, plan.targets)
            unknown, total = unknown_share(root, trained.version, plan.split.held_out_days)
            low, high = share_interval(unknown, total)
            print(
                f"\n{name}: trained in {time.perf_counter() - started:.0f} s (best epoch {trained.result.best_epoch}); "
                f"test events on articles without their own embedding {unknown / total:.3f} ({low:.3f}-{high:.3f}) "
                f"of {total:,}"
            )
            for target in plan.targets:
                figures = evaluation.candidate[target]
                judged = (
                    f"AUC {figures.auc:.4f} ({figures.auc_ci_low:.4f}-{figures.auc_ci_high:.4f})"
                    if figures.positives >= MIN_POSITIVES
                    else "too little data to judge"
                )
                print(f"  {target:<24} {judged}, {int(figures.positives):,} positives of {int(figures.rows):,} rows")
        reference_table, y, targets = tables[VARIANTS[0]]
        groups = np.asarray(reference_table.column("profile_id").to_pylist(), dtype=object)
        for name in VARIANTS[1:]:
            assert tables[name][0].column("profile_id").equals(reference_table.column("profile_id"))  # same test rows
            print(f"\n{name} - {VARIANTS[0]} (paired over the same test rows):")
            for k, target in enumerate(targets):
                if y[:, k].sum() < MIN_POSITIVES:
                    print(f"  {target:<24} too little data to judge ({int(y[:, k].sum())} positives)")
                    continue
                c = paired_differences(scores[name][:, k], scores[VARIANTS[0]][:, k], y[:, k], groups)
                low, high = c["auc_difference_ci_low"], c["auc_difference_ci_high"]
                print(f"  {target:<24} AUC {c['auc_difference']:+.4f} ({low:+.4f} to {high:+.4f})")
    finally:
        if args.keep is None:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
