"""Figures that judge probabilities against outcomes, each with its sample size and a bootstrap interval.

Test data pool several snapshot days, so one profile can give several rows. Those
rows are not independent, and resampling rows would make every interval too narrow.
The bootstrap here resamples *profiles* (clusters): each resample draws profiles with
replacement and weighs each row by how often its profile was drawn. Paired
comparisons use the same resamples for both models, so the noise both share cancels.
"""

from __future__ import annotations

from collections.abc import Iterator
from statistics import NormalDist

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

EPS = 1e-7
RESAMPLES = 300
LEVEL = 0.95  # two-sided level of every interval reported


def auc(p: np.ndarray, y: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def _weighted_auc(rank: np.ndarray, y: np.ndarray, weights: np.ndarray) -> float:
    """AUC with row weights from the dense rank of each score (ties count one half), in O(rows)."""
    positives = np.bincount(rank, weights=weights * y)
    negatives = np.bincount(rank, weights=weights * (1 - y))
    below = np.cumsum(negatives) - negatives
    total = positives.sum() * negatives.sum()
    return float(np.sum(positives * (below + 0.5 * negatives)) / total) if total > 0 else float("nan")


def mean_log_likelihood(p: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean log-likelihood of the outcomes under the predictions (higher is better, 0 is perfect)."""
    p = np.clip(p, EPS, 1 - EPS)
    return float(np.average(y * np.log(p) + (1 - y) * np.log(1 - p), weights=weights))


def calibration_table(p: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict]:
    """Mean prediction and outcome rate per decile of predictions (equal-count bins)."""
    order = np.argsort(p, kind="stable")
    table = []
    for chunk in np.array_split(order, bins):
        if len(chunk):
            table.append(
                {"predicted": float(p[chunk].mean()), "observed": float(y[chunk].mean()), "rows": int(len(chunk))}
            )
    return table


def _bin_index(p: np.ndarray, bins: int) -> np.ndarray:
    """Equal-count bins of the predictions, fixed once so that resamples reuse them."""
    order = np.argsort(p, kind="stable")
    index = np.empty(len(p), np.int64)
    for k, chunk in enumerate(np.array_split(order, bins)):
        index[chunk] = k
    return index


def _calibration_error(p: np.ndarray, y: np.ndarray, w: np.ndarray, bin_index: np.ndarray) -> float:
    """Expected calibration error: row-weighted mean |predicted - observed| over the given bins of the predictions."""
    gap = np.abs(np.bincount(bin_index, weights=w * p) - np.bincount(bin_index, weights=w * y))
    return float(gap.sum() / max(w.sum(), EPS))


def top_decile_lift(p: np.ndarray, y: np.ndarray) -> float:
    """Outcome rate among the top 10 % of scores over the overall rate."""
    if y.mean() == 0:
        return float("nan")
    top = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    return float(y[top].mean() / y.mean())


def cluster_weights(
    groups: np.ndarray | None, rows: int, resamples: int = RESAMPLES, seed: int = 0
) -> Iterator[np.ndarray]:
    """Row weights of each bootstrap resample: how often the row's profile was drawn.

    ``groups`` names each row's profile (None: every row its own). The same seed gives
    the same resamples, which is what makes comparisons paired.
    """
    if groups is None:
        codes, clusters = np.arange(rows), rows
    else:
        _, codes = np.unique(np.asarray(groups), return_inverse=True)
        clusters = int(codes.max()) + 1 if rows else 0
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        drawn = np.bincount(rng.integers(0, clusters, clusters), minlength=clusters)
        yield drawn[codes].astype(np.float64)


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    values = np.asarray(values, float)
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    return float(np.quantile(values, tail)), float(np.quantile(values, 1 - tail))


def share_interval(hits: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson interval of a share ``hits / n`` (a coverage, a rate), sound near 0 and 1 where the normal one is not.

    Events counted here are not independent (a profile's events share its articles), so this is a floor on the
    uncertainty: checks that use it judge shares far from their threshold, not hair-breadth ones.
    """
    if n == 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    share = hits / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(centre - half), float(centre + half)


FIGURES = (
    "auc",
    "mean_log_likelihood",
    "ece",
    "mean_prediction",
    "observed_rate",
    "observed_over_predicted",
    "log_likelihood_gain",
)


def _figures(p: np.ndarray, y: np.ndarray, w: np.ndarray, bin_index: np.ndarray, rank: np.ndarray) -> dict[str, float]:
    observed = float(np.average(y, weights=w))
    predicted = float(np.average(p, weights=w))
    ll = mean_log_likelihood(p, y, w)
    return {
        "auc": _weighted_auc(rank, y, w),
        "mean_log_likelihood": ll,
        "ece": _calibration_error(p, y, w, bin_index),
        "mean_prediction": predicted,
        "observed_rate": observed,
        "observed_over_predicted": observed / max(predicted, EPS),
        "log_likelihood_gain": ll - mean_log_likelihood(np.full_like(p, observed), y, w),
    }


def summarise(
    p: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    with_interval: bool = True,
    resamples: int = RESAMPLES,
) -> dict:
    """Every figure the gate and the UI use, for one target: point value, 95 % interval, rows, positives, profiles."""
    p, y = np.asarray(p, np.float64), np.asarray(y, np.float64)
    summary: dict = {
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "profiles": int(len(np.unique(groups))) if groups is not None else int(len(y)),
        "brier": float(np.mean((p - y) ** 2)) if len(y) else float("nan"),
        "top_decile_lift": top_decile_lift(p, y) if len(y) else float("nan"),
        "base_rate_log_likelihood": mean_log_likelihood(np.full_like(p, y.mean()), y) if len(y) else float("nan"),
        "interval_level": LEVEL,
    }
    if len(y) == 0:
        return {**summary, **{name: float("nan") for name in FIGURES}}
    bins, rank = _bin_index(p, min(10, len(p))), np.unique(p, return_inverse=True)[1]
    summary.update(_figures(p, y, np.ones(len(p)), bins, rank))
    if with_interval:
        draws = [_figures(p, y, w, bins, rank) for w in cluster_weights(groups, len(p), resamples)]
        for name in FIGURES:
            summary[f"{name}_ci_low"], summary[f"{name}_ci_high"] = interval([d[name] for d in draws])
        summary["resamples"] = resamples
    return summary


def paired_differences(
    p_new: np.ndarray,
    p_old: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> dict:
    """AUC(new) - AUC(old) and the same for mean log-likelihood, on the same resampled profiles.

    Returns the point differences, their 95 % intervals and the sorted bootstrap
    distribution of the AUC difference, from which the gate reads one-sided bounds.
    """
    y = np.asarray(y, np.float64)
    rank_new, rank_old = np.unique(p_new, return_inverse=True)[1], np.unique(p_old, return_inverse=True)[1]
    auc_differences, ll_differences = [], []
    for w in cluster_weights(groups, len(y), resamples, seed):
        a, b = _weighted_auc(rank_new, y, w), _weighted_auc(rank_old, y, w)
        if not (np.isnan(a) or np.isnan(b)):
            auc_differences.append(a - b)
            ll_differences.append(mean_log_likelihood(p_new, y, w) - mean_log_likelihood(p_old, y, w))
    if not auc_differences:
        return {"auc_difference": float("nan"), "resamples": 0, "differences": []}
    auc_low, auc_high = interval(auc_differences)
    ll_low, ll_high = interval(ll_differences)
    return {
        "auc_difference": auc(p_new, y) - auc(p_old, y),
        "auc_difference_ci_low": auc_low,
        "auc_difference_ci_high": auc_high,
        "log_likelihood_difference": mean_log_likelihood(p_new, y) - mean_log_likelihood(p_old, y),
        "log_likelihood_difference_ci_low": ll_low,
        "log_likelihood_difference_ci_high": ll_high,
        "differences": np.round(np.sort(auc_differences), 5).tolist(),
        "resamples": len(auc_differences),
        "rows": int(len(y)),
        "positives": int(np.sum(y)),
    }


def roc_points(p: np.ndarray, y: np.ndarray, points: int = 50) -> dict:
    """A ROC curve thinned to ``points`` points for plotting and storage."""
    fpr, tpr, _ = roc_curve(y, p)
    keep = np.unique(np.linspace(0, len(fpr) - 1, min(points, len(fpr))).astype(int))
    return {"fpr": fpr[keep].round(4).tolist(), "tpr": tpr[keep].round(4).tolist()}
