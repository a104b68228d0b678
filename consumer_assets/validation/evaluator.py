"""Evaluation of a candidate on independent test data, beside the baselines and the model in service.

The test rows are the test profiles' snapshots on the held-out days (pooled, later
than every training day). Every figure carries its rows, positives, profiles and a
95 % interval from a bootstrap over profiles; comparisons are paired (the same
resampled profiles for both models). Computed once, at the end of training, and
stored as ``evaluation.json`` beside the candidate (by the candidate_evaluation
asset), with the result of a smoke test in a fresh process; each blocking check then
judges it against its own rule.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from consumer_assets.metrics import calibration_table, paired_differences, roc_points, summarise
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import LoadedModel, ModelLoadError, ModelStore
from consumer_assets.storage import StorageRoot
from consumer_assets.training.split import SnapshotRows, SnapshotSplit
from consumer_assets.validation.baselines import BASELINES, category_list, features, fit_baselines
from consumer_assets.validation.evaluation import Evaluation

log = logging.getLogger(__name__)

ACTIVITY_EDGES = ((0, 5, "low"), (5, 20, "medium"), (20, None, "high"))
MAX_BASELINE_ROWS = 200_000


def labelled_rows(
    root: StorageRoot, days: tuple[date, ...], targets: tuple[str, ...], role: str, max_rows: int | None = None
) -> tuple[pa.Table, np.ndarray]:
    """History rows of ``role``'s profiles on ``days`` with their labels, at most ``max_rows`` (a random sample).

    The rows carry a ``snapshot_date`` column: one profile gives a row on each day it is active.
    """
    chunks, labels = [], []
    for day, chunk, y in SnapshotRows(root, days, targets, role):
        chunks.append(chunk.append_column("snapshot_date", pa.array([day] * chunk.num_rows, pa.date32())))
        labels.append(y)
    if not chunks:
        raise ValueError(f"no {role} profiles with labels on {', '.join(map(str, days))}")
    table, y = pa.concat_tables(chunks, promote_options="default"), np.concatenate(labels)
    if max_rows is not None and table.num_rows > max_rows:
        keep = np.sort(np.random.default_rng(0).choice(table.num_rows, max_rows, replace=False))
        table, y = table.take(pa.array(keep)), y[keep]
    return table, y


def slices(table: pa.Table) -> dict[str, np.ndarray]:
    """Row masks of the slices every threshold is also applied to: activity level and platform."""
    events = pc.fill_null(table.column("window_events"), 0).to_numpy(zero_copy_only=False)
    masks = {}
    for low, high, name in ACTIVITY_EDGES:
        masks[f"activity={name}"] = (events >= low) & (events < high if high is not None else True)
    values = np.array(
        [p[-1] if p else None for p in table.column("platform").to_pylist()], dtype=object
    )  # the latest platform
    for name in sorted({v for v in values if v is not None}):
        masks[f"platform={name}"] = values == name
    return masks


def finite_weights(model: LoadedModel) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in model.network.state_dict().values())


def evaluate_candidate(root: StorageRoot, version: str, split: SnapshotSplit) -> Evaluation:
    """Score the candidate, the model in service and the baselines on the same test rows."""
    store = ModelStore(root)
    days = {"train_days": [str(d) for d in split.train_days], "test_days": [str(d) for d in split.held_out_days]}
    try:
        candidate = store.load(version)
    except ModelLoadError as exc:
        return Evaluation(version, **days, load_error=str(exc))
    targets = candidate.config.targets
    table, y = labelled_rows(root, split.held_out_days, targets, "test")
    groups = np.asarray(table.column("profile_id").to_pylist(), dtype=object)
    raw = score_table(candidate, table)
    # Non-finite scores fail the sanity rule; the other figures are computed as if they were 0.5.
    p = np.nan_to_num(raw, nan=0.5, posinf=1.0, neginf=0.0)
    primary_p, primary_y = p[:, 0], y[:, 0]
    test_dates = np.asarray(table.column("snapshot_date").to_pylist())
    evaluation: dict = {
        "version": version,
        **days,
        "targets": list(targets),
        "test_data": {
            "rows": int(len(primary_y)),
            "positives": int(primary_y.sum()),
            "profiles": int(len(set(groups))),
            "per_day": {
                str(d): {"rows": int((test_dates == d).sum()), "positives": int(primary_y[test_dates == d].sum())}
                for d in np.unique(test_dates)
            },
        },
        "candidate": {t: summarise(p[:, k], y[:, k], groups) for k, t in enumerate(targets)},
        "sanity": {
            "finite_weights": finite_weights(candidate),
            "finite_predictions": bool(np.isfinite(raw).all()),
            "prediction_std": float(np.nanstd(primary_p)),
            "distinct_predictions": int(len(np.unique(np.round(primary_p, 6)))),
        },
        "calibration": {"candidate": calibration_table(primary_p, primary_y)},
        "roc": {"candidate": roc_points(primary_p, primary_y)},
        "comparisons": {},
    }
    scores = {"candidate": primary_p}

    serving = store.serving()
    if serving is not None and serving.version != version:
        served = store.load(serving.version)
        served_p = score_table(served, table)[:, 0]
        scores["serving"] = served_p
        evaluation["serving"] = {"version": serving.version, **summarise(served_p, primary_y, groups)}
        evaluation["roc"]["serving"] = roc_points(served_p, primary_y)
        evaluation["calibration"]["serving"] = calibration_table(served_p, primary_y)
        evaluation["comparisons"]["serving"] = paired_differences(primary_p, served_p, primary_y, groups)
    else:
        evaluation["serving"] = None

    train_table, train_y = labelled_rows(root, split.train_days, targets[:1], "train", MAX_BASELINE_ROWS)
    categories = category_list([train_table])
    fitted = fit_baselines(features(train_table, categories), train_y[:, 0])
    test_features = features(table, categories)
    evaluation["baselines"] = {}
    for name in BASELINES:
        baseline_p = fitted[name].predict_proba(test_features)[:, 1]
        scores[name] = baseline_p
        evaluation["baselines"][name] = summarise(baseline_p, primary_y, groups)
        evaluation["roc"][name] = roc_points(baseline_p, primary_y)
        evaluation["comparisons"][name] = paired_differences(primary_p, baseline_p, primary_y, groups)
    evaluation["strongest_baseline"] = max(BASELINES, key=lambda name: evaluation["baselines"][name]["auc"])
    evaluation["baseline_training_rows"] = int(train_table.num_rows)

    evaluation["slices"] = {}
    for name, mask in slices(table).items():
        entry = {"rows": int(mask.sum()), "positives": int(primary_y[mask].sum())}
        entry["candidate"] = summarise(primary_p[mask], primary_y[mask], groups[mask]) if mask.any() else None
        if "serving" in scores and entry["positives"] > 0:
            entry["serving"] = summarise(scores["serving"][mask], primary_y[mask], with_interval=False)["auc"]
            entry["comparison"] = paired_differences(
                primary_p[mask], scores["serving"][mask], primary_y[mask], groups[mask]
            )
        evaluation["slices"][name] = entry
    log.info(
        "evaluated %s on %d test rows (%d positives): AUC %.4f",
        version,
        len(primary_y),
        int(primary_y.sum()),
        evaluation["candidate"][targets[0]]["auc"],
    )
    return Evaluation.from_json(evaluation)


def smoke_test(root: StorageRoot, version: str) -> dict:
    """Load and score in a fresh Python process, exactly as batch scoring will (``serving/smoke.py``)."""
    command = [sys.executable, "-m", "consumer_assets.serving.smoke", root.uri, version]
    if root.is_s3 and root.endpoint_url:
        command += ["--endpoint-url", root.endpoint_url]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    lines = completed.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {}
    if not result:
        result = {"loaded": False, "error": (completed.stderr or "no output")[-2000:]}
    result["exit_code"] = completed.returncode
    return result
