"""Distribution sketches and the drift figures computed from them.

A day is summarised once into small sketches (value counts for categorical
features, counts over fixed fine bins for continuous ones) that are stored with the
day's monitoring partition. A reference window is then the sum of earlier days'
sketches: comparing today with the last week costs the same whatever the data size.

PSI follows the usual convention: ten buckets of equal reference mass (deciles of
the reference for continuous features; the reference's categories, rare ones pooled,
for categorical ones), 0.1 and 0.25 as the bands. KS is read off the fine bins, so it
is a lower bound of the exact statistic, tight when the bins are fine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

PSI_FLOOR = 1e-4  # share given to an empty bucket so the logarithm stays finite
OTHER = "(other)"
BANDS = ((0.25, "significant"), (0.1, "moderate"), (0.0, "stable"))


def categorical_sketch(values: pa.Array | pa.ChunkedArray, top: int = 50) -> dict:
    """Counts of the ``top`` most frequent values, the rest pooled under ``(other)``."""
    counts = pc.value_counts(pc.fill_null(values.cast(pa.string()), "(missing)")).to_pylist()
    counts.sort(key=lambda item: -item["counts"])
    kept = {item["values"]: item["counts"] for item in counts[:top]}
    rest = sum(item["counts"] for item in counts[top:])
    if rest:
        kept[OTHER] = kept.get(OTHER, 0) + rest
    return {"kind": "categorical", "counts": kept}


def continuous_sketch(values: np.ndarray, edges: Sequence[float]) -> dict:
    """Counts over ``edges``, with everything below the first or above the last in the end bins."""
    edges = np.asarray(edges, float)
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    counts = np.bincount(
        np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2), minlength=len(edges) - 1
    )
    return {
        "kind": "continuous",
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "sum": float(values.sum()),
        "n": int(len(values)),
    }


def merge(sketches: Iterable[dict]) -> dict | None:
    """The sketch of the union of the days behind ``sketches`` (None when there are none)."""
    sketches = list(sketches)
    if not sketches:
        return None
    first = sketches[0]
    if first["kind"] == "categorical":
        total: dict[str, int] = {}
        for sketch in sketches:
            for value, count in sketch["counts"].items():
                total[value] = total.get(value, 0) + count
        return {"kind": "categorical", "counts": total}
    if any(s["edges"] != first["edges"] for s in sketches):
        raise ValueError("continuous sketches with different bin edges cannot be merged: recompute the older days")
    return {
        "kind": "continuous",
        "edges": first["edges"],
        "counts": np.sum([s["counts"] for s in sketches], axis=0).tolist(),
        "sum": float(sum(s["sum"] for s in sketches)),
        "n": int(sum(s["n"] for s in sketches)),
    }


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total else np.zeros_like(counts, float)


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.maximum(_shares(expected), PSI_FLOOR)
    a = np.maximum(_shares(actual), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def _decile_groups(reference_counts: np.ndarray, buckets: int) -> np.ndarray:
    """For each fine bin, the index of the reference quantile bucket it falls in."""
    cumulative = np.cumsum(reference_counts) / max(reference_counts.sum(), 1)
    upper = cumulative - reference_counts / max(reference_counts.sum(), 1) / 2  # a bin's midpoint in reference mass
    return np.minimum((upper * buckets).astype(int), buckets - 1)


def psi(reference: dict, current: dict, buckets: int = 10, min_share: float = 0.005) -> float:
    """Population stability index of ``current`` against ``reference``."""
    if reference["kind"] == "categorical":
        total = sum(reference["counts"].values()) or 1
        named = sorted(v for v, c in reference["counts"].items() if c / total >= min_share and v != OTHER)
        index = {value: k for k, value in enumerate(named)}

        def pooled(counts: dict) -> np.ndarray:
            out = np.zeros(len(named) + 1)
            for value, count in counts.items():
                out[index.get(value, len(named))] += count
            return out

        return _psi(pooled(reference["counts"]), pooled(current["counts"]))
    ref_counts, cur_counts = np.asarray(reference["counts"], float), np.asarray(current["counts"], float)
    groups = _decile_groups(ref_counts, buckets)
    return _psi(np.bincount(groups, ref_counts, buckets), np.bincount(groups, cur_counts, buckets))


def ks(reference: dict, current: dict) -> float | None:
    """Largest gap between the two cumulative distributions over the fine bins (continuous only)."""
    if reference["kind"] != "continuous":
        return None
    ref, cur = np.asarray(reference["counts"], float), np.asarray(current["counts"], float)
    if not ref.sum() or not cur.sum():
        return None
    return float(np.max(np.abs(np.cumsum(ref) / ref.sum() - np.cumsum(cur) / cur.sum())))


def band(value: float) -> str:
    """stable (< 0.1), moderate (0.1 to 0.25) or significant (> 0.25) for a PSI."""
    return next(name for threshold, name in BANDS if value >= threshold)


def mean(sketch: dict) -> float | None:
    return sketch["sum"] / sketch["n"] if sketch.get("n") else None
