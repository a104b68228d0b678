"""Figures that judge probabilities against outcomes, and paired bootstrap comparisons."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

EPS = 1e-7


def auc(p: np.ndarray, y: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def mean_log_likelihood(p: np.ndarray, y: np.ndarray) -> float:
    """Mean log-likelihood of the outcomes under the predictions (higher is better, 0 is perfect)."""
    p = np.clip(p, EPS, 1 - EPS)
    return float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def calibration_table(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """Mean prediction and outcome rate per decile of predictions (equal-count bins)."""
    order = np.argsort(p, kind="stable")
    table = []
    for chunk in np.array_split(order, bins):
        if len(chunk):
            table.append({"predicted": float(p[chunk].mean()), "observed": float(y[chunk].mean()), "rows": int(len(chunk))})
    return table


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    table = calibration_table(p, y, bins)
    return float(sum(row["rows"] * abs(row["predicted"] - row["observed"]) for row in table) / max(len(p), 1))


def top_decile_lift(p: np.ndarray, y: np.ndarray) -> float:
    """Outcome rate among the top 10 % of scores over the overall rate."""
    if y.mean() == 0:
        return float("nan")
    top = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    return float(y[top].mean() / y.mean())


def bootstrap_indices(rows: int, resamples: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, rows, size=(resamples, rows))


def auc_interval(p: np.ndarray, y: np.ndarray, resamples: int = 200, seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of the AUC."""
    values = [auc(p[i], y[i]) for i in bootstrap_indices(len(p), resamples, seed)]
    values = np.array([v for v in values if not np.isnan(v)])
    return (float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))) if len(values) else (float("nan"), float("nan"))


def summarise(p: np.ndarray, y: np.ndarray, with_interval: bool = True) -> dict:
    """Every figure the gate and the UI use, for one target."""
    low, high = auc_interval(p, y) if with_interval else (float("nan"), float("nan"))
    return {
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "auc": auc(p, y),
        "auc_ci_low": low,
        "auc_ci_high": high,
        "mean_log_likelihood": mean_log_likelihood(p, y),
        "base_rate_log_likelihood": mean_log_likelihood(np.full_like(p, y.mean()), y),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected_calibration_error(p, y),
        "top_decile_lift": top_decile_lift(p, y),
        "mean_prediction": float(p.mean()),
        "observed_rate": float(y.mean()),
    }


def paired_auc_difference(p_new: np.ndarray, p_old: np.ndarray, y: np.ndarray, resamples: int = 300, seed: int = 0) -> np.ndarray:
    """Bootstrap distribution of AUC(new) - AUC(old), resampling the same rows for both."""
    differences = []
    for index in bootstrap_indices(len(y), resamples, seed):
        a, b = auc(p_new[index], y[index]), auc(p_old[index], y[index])
        if not (np.isnan(a) or np.isnan(b)):
            differences.append(a - b)
    return np.array(differences)


def roc_points(p: np.ndarray, y: np.ndarray, points: int = 50) -> dict:
    """A ROC curve thinned to ``points`` points for plotting and storage."""
    fpr, tpr, _ = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).astype(int))
    return {"fpr": fpr[keep].round(4).tolist(), "tpr": tpr[keep].round(4).tolist()}
