"""What monitoring watches each day: input, predictions, and predictions against what happened.

``day_sketch`` summarises one day (its raw events, its snapshot, its predictions) into
sketches; ``input_drift`` and ``prediction_drift`` compare a day with a reference
window of earlier days' sketches; ``realised`` scores the predictions made at D-H
against the orders of (D-H, D]. Plain Python and Arrow, no Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from consumer_assets.metrics import auc, calibration_table, mean_log_likelihood, summarise, top_decile_lift
from consumer_assets.monitoring.drift import band, categorical_sketch, continuous_sketch, ks, mean, merge, psi


def _fine(start: float, stop: float, bins: int) -> list[float]:
    """Zero, then geometric bins: the features are counts, durations and prices with long tails."""
    return [0.0, *np.geomspace(start, stop, bins).tolist()]


@dataclass(frozen=True)
class Feature:
    """One watched input: where it comes from and, for continuous ones, its fine bin edges."""

    name: str
    source: str  # "events" (the day's raw events) or "histories" (the day's snapshot)
    edges: tuple[float, ...] | None = None  # None: categorical


INPUT_FEATURES = (
    Feature("event_type", "events"),
    Feature("category_id", "events"),
    Feature("platform", "events"),
    Feature("price", "events", tuple(_fine(0.5, 20_000, 120))),
    Feature("hour", "events", tuple(float(h) for h in range(25))),
    Feature("length", "histories", tuple(float(n) for n in range(0, 1002))),
    Feature("window_events", "histories", tuple(_fine(1, 100_000, 120))),
    Feature("active_days", "histories", tuple(float(n) for n in range(0, 367))),
    Feature("recency_days", "histories", tuple(_fine(1e-3, 400, 120))),
)
SCORE_EDGES = tuple(_fine(1e-5, 1.0, 200))


def _numbers(table: pa.Table, name: str) -> np.ndarray:
    if name == "hour":
        return pc.hour(table.column("ts")).to_numpy(zero_copy_only=False).astype(float)
    if name == "recency_days":
        return table.column("recency_s").to_numpy(zero_copy_only=False) / 86_400
    return pc.fill_null(table.column(name).cast(pa.float64()), np.nan).to_numpy(zero_copy_only=False)


def day_sketch(events: pa.Table, histories: pa.Table, predictions: pa.Table | None, top_categories: int = 50) -> dict:
    """Everything later days need to compare against this one, in a few kilobytes of JSON."""
    sources = {"events": events, "histories": histories}
    features = {}
    for feature in INPUT_FEATURES:
        table = sources[feature.source]
        if feature.edges is None:
            features[feature.name] = categorical_sketch(table.column(feature.name), top_categories)
        else:
            features[feature.name] = continuous_sketch(_numbers(table, feature.name), feature.edges)
    sketch = {
        "events": events.num_rows,
        "active_profiles": pc.count_distinct(events.column("profile_id")).as_py() if events.num_rows else 0,
        "profiles": histories.num_rows,
        "features": features,
        "scores": None,
    }
    if predictions is not None:
        sketch["scores"] = continuous_sketch(
            predictions.column("p_order_any").to_numpy(zero_copy_only=False), SCORE_EDGES
        )
    return sketch


def _comparison(name: str, source: str, reference: dict, current: dict) -> dict:
    value = psi(reference, current)
    return {
        "feature": name,
        "source": source,
        "kind": reference["kind"],
        "psi": value,
        "band": band(value),
        "ks": ks(reference, current),
        "mean": mean(current),
        "reference_mean": mean(reference),
    }


def input_drift(current: dict, reference_days: list[dict]) -> list[dict]:
    """PSI (and KS for continuous features) of each input feature against the reference window."""
    if not reference_days:
        return []
    rows = []
    for feature in INPUT_FEATURES:
        reference = merge(day["features"][feature.name] for day in reference_days)
        rows.append(_comparison(feature.name, feature.source, reference, current["features"][feature.name]))
    return rows


def prediction_drift(current: dict, reference_days: list[dict]) -> dict | None:
    """The score distribution of the day against the reference window's, and its mean."""
    scored = [day["scores"] for day in reference_days if day.get("scores")]
    if current.get("scores") is None or not scored:
        return None
    return _comparison("p_order_any", "predictions", merge(scored), current["scores"])


def event_volume(current: dict, reference_days: list[dict]) -> dict | None:
    """The day's event count over the reference window's mean daily count."""
    if not reference_days:
        return None
    reference = float(np.mean([day["events"] for day in reference_days]))
    return {
        "events": current["events"],
        "reference_mean_events": reference,
        "ratio": current["events"] / reference if reference else None,
    }


def realised(p: np.ndarray, y: np.ndarray) -> dict:
    """How predictions made at D-H fared against the orders of (D-H, D]: model and business figures."""
    rows = len(y)
    expected, observed = float(p.sum()), float(y.sum())
    top = np.argsort(-p, kind="stable")[: max(1, rows // 10)]
    summary = summarise(p, y, resamples=200) if 0 < observed < rows else {}
    return {
        "rows": rows,
        "positives": int(observed),
        "auc": auc(p, y),
        "auc_ci_low": summary.get("auc_ci_low"),
        "auc_ci_high": summary.get("auc_ci_high"),
        "realised_over_predicted_ci_low": summary.get("observed_over_predicted_ci_low"),
        "realised_over_predicted_ci_high": summary.get("observed_over_predicted_ci_high"),
        "mean_log_likelihood": mean_log_likelihood(p, y),
        "mean_predicted_rate": float(p.mean()),
        "realised_rate": float(y.mean()),
        "expected_orders": expected,
        "realised_orders": observed,
        "realised_over_predicted": observed / expected if expected else None,
        "top_decile_lift": top_decile_lift(p, y) if observed else None,
        "top_decile_share_of_orders": float(y[top].sum() / observed) if observed else None,
        "calibration": calibration_table(p, y),
    }
