"""The gate: thresholds, and a verdict per rule on a stored evaluation.

Two kinds of threshold, as in TFX's Evaluator, and better:

* value thresholds: AUC above a floor, mean log-likelihood above the base-rate
  predictor's (a model must know more than the order rate);
* change thresholds against the model in service and against the
  logistic-regression baseline, decided on the same test rows by a paired
  bootstrap: a candidate is refused when the data show, with ``confidence``, that
  it is worse by more than the tolerance. A bare point difference would refuse good
  models on noise and pass bad ones on luck.

Each rule also runs per slice (activity level, platform) where the slice has enough
positives to say anything; a slice too small to judge is listed, never passed silently.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

VERDICT = "verdict.json"  # stored beside each candidate once validated_model has judged it


@dataclass(frozen=True)
class GateConfig:
    min_auc: float = 0.6
    min_log_likelihood_gain: float = 0.0  # over the base-rate predictor, per row
    max_auc_drop: float = 0.01  # absolute, against the model in service
    max_relative_auc_drop: float = 0.02  # relative, against the model in service
    baseline_tolerance: float = 0.0  # how much worse than logistic regression is tolerated
    confidence: float = 0.9  # share of bootstrap resamples that must show the candidate worse to refuse it
    min_slice_positives: int = 10
    max_calibration_error: float = 0.05
    min_prediction_std: float = 1e-3
    max_smoke_latency_s: float = 5.0

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Verdict:
    passed: bool
    reason: str
    figures: dict = field(default_factory=dict)


def _confidently_worse(comparison: dict, tolerance: float, confidence: float) -> tuple[bool, float]:
    """Whether the candidate is worse than the other model by more than ``tolerance`` with ``confidence``."""
    differences = np.asarray(comparison.get("differences", []))
    if len(differences) == 0:
        return False, float("nan")
    share_worse = float(np.mean(differences < -tolerance))
    return share_worse >= confidence, share_worse


def _load_failure(evaluation: dict) -> Verdict | None:
    if "load_error" in evaluation:
        return Verdict(False, f"the candidate could not be loaded: {evaluation['load_error']}")
    return None


def value_thresholds(evaluation: dict, config: GateConfig) -> Verdict:
    if failure := _load_failure(evaluation):
        return failure
    primary = evaluation["targets"][0]
    m = evaluation["candidate"][primary]
    gain = m["mean_log_likelihood"] - m["base_rate_log_likelihood"]
    figures = {"auc": m["auc"], "auc_ci_low": m["auc_ci_low"], "mean_log_likelihood": m["mean_log_likelihood"], "log_likelihood_gain": gain, "min_auc": config.min_auc}
    if not m["auc"] >= config.min_auc:
        return Verdict(False, f"{primary} AUC {m['auc']:.4f} is below the floor {config.min_auc}", figures)
    if not gain >= config.min_log_likelihood_gain:
        return Verdict(False, f"{primary} mean log-likelihood {m['mean_log_likelihood']:.4f} is not above the base-rate predictor's {m['base_rate_log_likelihood']:.4f} by {config.min_log_likelihood_gain}", figures)
    return Verdict(True, f"{primary} AUC {m['auc']:.4f} >= {config.min_auc}; log-likelihood gain {gain:.4f} over the base rate", figures)


def against_serving(evaluation: dict, config: GateConfig) -> Verdict:
    if failure := _load_failure(evaluation):
        return failure
    serving = evaluation.get("serving")
    if serving is None:
        return Verdict(True, "no model in service yet: nothing to compare with (first model)", {"model_in_service": "none"})
    comparison = evaluation["comparisons"]["serving"]
    tolerance = min(config.max_auc_drop, config.max_relative_auc_drop * serving["auc"])
    worse, share = _confidently_worse(comparison, tolerance, config.confidence)
    figures = {"serving_version": serving["version"], "serving_auc": serving["auc"], "auc_difference": comparison["auc_difference"], "share_of_resamples_worse": share, "tolerance": tolerance}
    if worse:
        return Verdict(False, f"worse than the model in service {serving['version']} by more than {tolerance:.4f} AUC in {share:.0%} of paired resamples", figures)
    return Verdict(True, f"not worse than {serving['version']} beyond {tolerance:.4f} AUC (worse in {share:.0%} of resamples)", figures)


def against_baseline(evaluation: dict, config: GateConfig) -> Verdict:
    if failure := _load_failure(evaluation):
        return failure
    comparison = evaluation["comparisons"]["logistic_regression"]
    worse, share = _confidently_worse(comparison, config.baseline_tolerance, config.confidence)
    figures = {
        "candidate_auc": evaluation["candidate"][evaluation["targets"][0]]["auc"],
        "logistic_regression_auc": evaluation["baselines"]["logistic_regression"]["auc"],
        "random_forest_auc": evaluation["baselines"]["random_forest"]["auc"],
        "share_of_resamples_worse": share,
    }
    if worse:
        return Verdict(False, f"worse than the logistic-regression baseline in {share:.0%} of paired resamples", figures)
    return Verdict(True, f"not worse than the logistic-regression baseline (worse in {share:.0%} of resamples)", figures)


def per_slice(evaluation: dict, config: GateConfig) -> Verdict:
    if failure := _load_failure(evaluation):
        return failure
    failures, skipped, figures = [], [], {}
    slice_floor = config.min_auc - 0.05
    for name, entry in evaluation["slices"].items():
        figures[f"{name} auc"] = entry["candidate"]
        if entry["positives"] < config.min_slice_positives or math.isnan(entry["candidate"]):
            skipped.append(f"{name} ({entry['positives']} positives)")
            continue
        if entry["candidate"] < slice_floor:
            failures.append(f"{name}: AUC {entry['candidate']:.4f} below the slice floor {slice_floor:.2f}")
        if "comparison" in entry:
            tolerance = min(config.max_auc_drop, config.max_relative_auc_drop * entry["serving"])
            worse, share = _confidently_worse(entry["comparison"], tolerance, config.confidence)
            if worse:
                failures.append(f"{name}: worse than the model in service in {share:.0%} of resamples")
    figures["too_small_to_judge"] = ", ".join(skipped) or "none"
    if failures:
        return Verdict(False, "; ".join(failures), figures)
    return Verdict(True, f"every slice with >= {config.min_slice_positives} positives holds" + (f"; too small to judge: {', '.join(skipped)}" if skipped else ""), figures)


def sanity(evaluation: dict, config: GateConfig) -> Verdict:
    if failure := _load_failure(evaluation):
        return failure
    s = evaluation["sanity"]
    ece = evaluation["candidate"][evaluation["targets"][0]]["ece"]
    figures = {**s, "ece": ece, "max_calibration_error": config.max_calibration_error}
    problems = []
    if not (s["finite_weights"] and s["finite_predictions"]):
        problems.append("weights or predictions are not finite (NaN or infinity)")
    if not s["prediction_std"] >= config.min_prediction_std or s["distinct_predictions"] < 2:
        problems.append(f"predictions are (nearly) constant: std {s['prediction_std']:.2e}")
    if not ece <= config.max_calibration_error:
        problems.append(f"expected calibration error {ece:.4f} above {config.max_calibration_error}")
    return Verdict(not problems, "; ".join(problems) or "finite weights, varied predictions, calibrated", figures)


RULES = {
    "check_value_thresholds": value_thresholds,
    "check_not_worse_than_serving": against_serving,
    "check_beats_logistic_regression": against_baseline,
    "check_slices": per_slice,
    "check_sanity": sanity,
}


def judge(evaluation: dict, config: GateConfig) -> dict[str, Verdict]:
    return {name: rule(evaluation, config) for name, rule in RULES.items()}
