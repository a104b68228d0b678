"""The gate: rules that decide on evidence, and a verdict per rule on a stored evaluation.

Every rule has three outcomes:

* ``pass``: the data do not show a shortfall;
* ``refuse``: the data show the shortfall at the stated confidence. For a floor,
  the whole 95 % interval of the figure lies on the wrong side of it; for a
  comparison with another model on the same rows (the model in service, the
  strongest baseline), at least ``confidence`` of the paired bootstrap resamples
  show the candidate worse by more than the tolerance;
* ``too_little_data``: the test rows hold fewer than ``min_positives`` positives
  (or negatives), so no figure is precise enough to decide either way. The check
  fails, so nothing is promoted on too little evidence; the message says how many
  rows would be needed. A first model therefore serves only once enough matured
  days (or profiles) exist; until then nothing serves and scoring waits.

A bare point difference would refuse good models on noise and pass bad ones on
luck; a tolerance inside the noise does the same. The intervals come from a
bootstrap over profiles (``metrics.py``).

Each rule also runs per slice (activity level, platform) where the slice has enough
positives to say anything; a slice too small to judge is listed, never passed silently.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from consumer_assets.validation.evaluation import Comparison, Evaluation

PASS, REFUSE, TOO_LITTLE_DATA = "pass", "refuse", "too_little_data"


def _setting(default: float | int, description: str):
    """A threshold of the gate: its default and what it means, from which GateResource and the docs are derived."""
    return field(default=default, metadata={"description": description})


@dataclass(frozen=True)
class GateConfig:
    min_auc: float = _setting(0.6, "Floor of the candidate's order_any AUC on the test data.")
    min_log_likelihood_gain: float = _setting(
        0.0, "Mean log-likelihood must beat the base-rate predictor's by this much per row."
    )
    max_auc_drop: float = _setting(0.01, "Largest tolerated AUC drop against the model in service (absolute).")
    max_relative_auc_drop: float = _setting(
        0.02, "Largest tolerated AUC drop against the model in service (share of its AUC)."
    )
    baseline_tolerance: float = _setting(0.0, "Tolerated AUC shortfall against the strongest baseline.")
    confidence: float = _setting(
        0.95, "Share of paired bootstrap resamples that must show a shortfall to refuse a candidate."
    )
    min_positives: int = _setting(
        100, "Fewer test positives (or negatives) than this: 'too little data to judge', and nothing is promoted."
    )
    min_slice_positives: int = _setting(30, "Slices with fewer positives are listed as too small to judge.")
    max_calibration_error: float = _setting(
        0.03, "Refuse when the expected calibration error's whole 95 % interval lies above this."
    )
    max_rate_ratio: float = _setting(
        1.25, "Refuse when observed/predicted order rate lies wholly outside [1/ratio, ratio] (95 % interval)."
    )
    min_prediction_std: float = _setting(1e-3, "Predictions with a smaller spread count as constant.")
    max_smoke_latency_s: float = _setting(
        5.0, "Seconds a fresh process may take to load the model and score 1,000 profiles."
    )

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    figures: dict = field(default_factory=dict)
    outcome: str = ""

    def __post_init__(self) -> None:
        if not self.outcome:
            object.__setattr__(self, "outcome", PASS if self.passed else REFUSE)


@dataclass(frozen=True)
class Rule:
    """One blocking check of the gate: everything the checks, the promotion and the docs need to know of it."""

    name: str  # the asset check's name
    refuses_when: str  # the check's description in the UI and the docs
    judge: Callable[[Evaluation, GateConfig], Verdict]
    settings: tuple[str, ...]  # the GateConfig fields it reads
    shows_metrics: bool = False  # its check's metadata also carries the table of every model's figures


RULES: dict[str, Rule] = {}


def rule(name: str, refuses_when: str, settings: tuple[str, ...], shows_metrics: bool = False):
    """Declares the decorated function a gate rule: a blocking check of that name, judged again before promotion."""

    def declare(judge: Callable[[Evaluation, GateConfig], Verdict]):
        unknown = set(settings) - {f.name for f in fields(GateConfig)}
        if unknown:
            raise ValueError(f"rule {name} reads settings GateConfig does not have: {sorted(unknown)}")
        RULES[name] = Rule(name, refuses_when, judge, settings, shows_metrics)
        return judge

    return declare


def _share_worse(comparison: Comparison, tolerance: float) -> float:
    """Share of paired resamples in which the candidate is worse than the other model by more than ``tolerance``."""
    differences = np.asarray(comparison.differences)
    return float(np.mean(differences < -tolerance)) if len(differences) else float("nan")


def _load_failure(evaluation: Evaluation) -> Verdict | None:
    if evaluation.load_error is not None:
        return Verdict(False, f"the candidate could not be loaded: {evaluation.load_error}")
    return None


def _data_figures(evaluation: Evaluation) -> dict:
    data = evaluation.test_data
    return {
        "test_rows": data.rows,
        "test_positives": data.positives,
        "test_profiles": data.profiles,
        "test_days": ", ".join(evaluation.test_days),
    }


def too_little_data(evaluation: Evaluation, config: GateConfig) -> Verdict | None:
    """The ``too_little_data`` verdict when the test rows cannot decide, with the rows it would take; else None."""
    data = evaluation.test_data
    positives, negatives = data.positives, data.rows - data.positives
    if positives >= config.min_positives and negatives >= config.min_positives:
        return None
    rate = positives / data.rows if data.rows else float("nan")
    needed = math.ceil(config.min_positives / min(rate, 1 - rate)) if 0 < rate < 1 else None
    return Verdict(
        False,
        f"too little data to judge: {data.rows} test rows with {positives} positives on "
        f"{', '.join(evaluation.test_days)}; "
        f"the gate needs at least {config.min_positives} positives and negatives"
        + (f" (about {needed:,} rows at the observed rate {rate:.3f})" if needed else "")
        + ". Nothing is promoted until then: wait for more matured days, simulate or track more profiles, "
        "or raise held_out_days.",
        {**_data_figures(evaluation), "min_positives": config.min_positives, "rows_needed": needed or -1},
        TOO_LITTLE_DATA,
    )


def _precheck(evaluation: Evaluation, config: GateConfig) -> Verdict | None:
    return _load_failure(evaluation) or too_little_data(evaluation, config)


@rule(
    "check_value_thresholds",
    "The AUC's 95 % interval lies wholly below `min_auc`, or the log-likelihood gain over the base rate wholly below "
    "`min_log_likelihood_gain`, on pooled, independent test data.",
    ("min_auc", "min_log_likelihood_gain", "min_positives"),
    shows_metrics=True,
)
def value_thresholds(evaluation: Evaluation, config: GateConfig) -> Verdict:
    if early := _precheck(evaluation, config):
        return early
    primary = evaluation.targets[0]
    m = evaluation.candidate[primary]
    figures = {
        **_data_figures(evaluation),
        "auc": m.auc,
        "auc_ci_low": m.auc_ci_low,
        "auc_ci_high": m.auc_ci_high,
        "min_auc": config.min_auc,
        "log_likelihood_gain": m.log_likelihood_gain,
        "log_likelihood_gain_ci_low": m.log_likelihood_gain_ci_low,
        "log_likelihood_gain_ci_high": m.log_likelihood_gain_ci_high,
    }
    if not m.auc_ci_high >= config.min_auc:
        return Verdict(
            False,
            f"{primary} AUC {m.auc:.4f} (95 % interval {m.auc_ci_low:.4f}-{m.auc_ci_high:.4f}) is below the "
            f"floor {config.min_auc}",
            figures,
        )
    if not m.log_likelihood_gain_ci_high >= config.min_log_likelihood_gain:
        return Verdict(
            False,
            f"{primary} log-likelihood gain over the base rate {m.log_likelihood_gain:.4f} (95 % interval up to "
            f"{m.log_likelihood_gain_ci_high:.4f}) "
            f"is below {config.min_log_likelihood_gain}",
            figures,
        )
    return Verdict(
        True,
        f"{primary} AUC {m.auc:.4f} ({m.auc_ci_low:.4f}-{m.auc_ci_high:.4f}) not below {config.min_auc}; "
        f"log-likelihood gain {m.log_likelihood_gain:.4f} over the base rate; {m.rows} rows, {m.positives} "
        "positives",
        figures,
    )


def _comparison_figures(comparison: Comparison) -> dict:
    return {
        "auc_difference": comparison.auc_difference,
        "auc_difference_ci_low": comparison.auc_difference_ci_low,
        "auc_difference_ci_high": comparison.auc_difference_ci_high,
        "log_likelihood_difference": comparison.log_likelihood_difference,
        "resamples": comparison.resamples,
    }


@rule(
    "check_not_worse_than_serving",
    "At least `confidence` of the paired bootstrap resamples over profiles show it worse than the model in service by "
    "more than min(`max_auc_drop`, `max_relative_auc_drop` x its AUC). The first model passes and says so.",
    ("max_auc_drop", "max_relative_auc_drop", "confidence", "min_positives"),
)
def against_serving(evaluation: Evaluation, config: GateConfig) -> Verdict:
    if early := _precheck(evaluation, config):
        return early
    serving = evaluation.serving
    if serving is None:
        return Verdict(
            True, "no model in service yet: nothing to compare with (first model)", {"model_in_service": "none"}
        )
    comparison = evaluation.comparisons["serving"]
    tolerance = min(config.max_auc_drop, config.max_relative_auc_drop * serving.auc)
    share = _share_worse(comparison, tolerance)
    figures = {
        **_data_figures(evaluation),
        "serving_version": serving.version,
        "serving_auc": serving.auc,
        **_comparison_figures(comparison),
        "share_of_resamples_worse": share,
        "tolerance": tolerance,
    }
    span = (
        f"AUC difference {comparison.auc_difference:+.4f} "
        f"(95 % interval {comparison.auc_difference_ci_low:+.4f} to {comparison.auc_difference_ci_high:+.4f})"
    )
    if share >= config.confidence:
        return Verdict(
            False,
            f"worse than the model in service {serving.version} by more than {tolerance:.4f} AUC in {share:.0%} of "
            f"paired resamples; {span}",
            figures,
        )
    return Verdict(
        True,
        f"not shown worse than {serving.version} beyond {tolerance:.4f} AUC (worse in {share:.0%} of resamples); "
        f"{span}",
        figures,
    )


@rule(
    "check_beats_baselines",
    "At least `confidence` of the paired resamples show it worse, by more than `baseline_tolerance`, than the "
    "strongest baseline (logistic regression, random forest, gradient-boosted trees on time-aware features); it says "
    "'beats' when the whole interval of the difference is above 0.",
    ("baseline_tolerance", "confidence", "min_positives"),
    shows_metrics=True,
)
def against_baselines(evaluation: Evaluation, config: GateConfig) -> Verdict:
    if early := _precheck(evaluation, config):
        return early
    strongest = evaluation.strongest_baseline
    comparison = evaluation.comparisons[strongest]
    share = _share_worse(comparison, config.baseline_tolerance)
    figures = {
        **_data_figures(evaluation),
        "candidate_auc": evaluation.primary.auc,
        **{f"{name}_auc": b.auc for name, b in evaluation.baselines.items()},
        "strongest_baseline": strongest,
        **_comparison_figures(comparison),
        "share_of_resamples_worse": share,
    }
    span = (
        f"AUC difference {comparison.auc_difference:+.4f} "
        f"(95 % interval {comparison.auc_difference_ci_low:+.4f} to {comparison.auc_difference_ci_high:+.4f})"
    )
    if share >= config.confidence:
        return Verdict(
            False,
            f"worse than the strongest baseline ({strongest}) in {share:.0%} of paired resamples; {span}",
            figures,
        )
    verdict = "beats" if comparison.auc_difference_ci_low > 0 else "is not shown worse than"
    return Verdict(True, f"{verdict} the strongest baseline ({strongest}): {span}", figures)


@rule(
    "check_slices",
    "A slice (activity level, platform) with at least `min_slice_positives` positives and negatives has its AUC "
    "interval wholly below `min_auc`, or is shown worse than the model in service; smaller slices are listed as too "
    "small to judge.",
    ("min_auc", "min_slice_positives", "max_auc_drop", "max_relative_auc_drop", "confidence", "min_positives"),
)
def per_slice(evaluation: Evaluation, config: GateConfig) -> Verdict:
    if early := _precheck(evaluation, config):
        return early
    failures, skipped, figures = [], [], {}
    for name, entry in evaluation.slices.items():
        summary = entry.candidate
        figures[f"{name} auc"] = summary.auc if summary else float("nan")
        if (
            entry.positives < config.min_slice_positives
            or entry.rows - entry.positives < config.min_slice_positives
            or summary is None
        ):
            skipped.append(f"{name} ({entry.positives} positives)")
            continue
        figures[f"{name} auc 95% interval"] = f"{summary.auc_ci_low:.4f}-{summary.auc_ci_high:.4f}"
        if summary.auc_ci_high < config.min_auc:
            failures.append(
                f"{name}: AUC {summary.auc:.4f} (interval up to {summary.auc_ci_high:.4f}) below the floor "
                f"{config.min_auc}"
            )
        if entry.comparison is not None and entry.serving is not None:
            tolerance = min(config.max_auc_drop, config.max_relative_auc_drop * entry.serving)
            share = _share_worse(entry.comparison, tolerance)
            if share >= config.confidence:
                failures.append(f"{name}: worse than the model in service in {share:.0%} of resamples")
    figures["too_small_to_judge"] = ", ".join(skipped) or "none"
    if failures:
        return Verdict(False, "; ".join(failures), figures)
    return Verdict(
        True,
        f"every slice with >= {config.min_slice_positives} positives holds"
        + (f"; too small to judge: {', '.join(skipped)}" if skipped else ""),
        figures,
    )


@rule(
    "check_sanity",
    "Weights or predictions are not finite, or predictions constant (spread below `min_prediction_std`); or "
    "calibration fails by its interval: the ECE's wholly above `max_calibration_error`, or observed/predicted's "
    "wholly outside [1/`max_rate_ratio`, `max_rate_ratio`].",
    ("min_prediction_std", "max_calibration_error", "max_rate_ratio", "min_positives"),
)
def sanity(evaluation: Evaluation, config: GateConfig) -> Verdict:
    """Finite, not constant, and calibrated: calibration judged by its interval, not by a point value the noise
    crosses."""
    if failure := _load_failure(evaluation):
        return failure
    s = evaluation.sanity
    m = evaluation.primary
    figures = {
        **s.to_json(),
        **_data_figures(evaluation),
        "ece": m.ece,
        "ece_ci_low": m.ece_ci_low,
        "ece_ci_high": m.ece_ci_high,
        "max_calibration_error": config.max_calibration_error,
        "mean_prediction": m.mean_prediction,
        "observed_rate": m.observed_rate,
        "observed_over_predicted": m.observed_over_predicted,
        "observed_over_predicted_ci_low": m.observed_over_predicted_ci_low,
        "observed_over_predicted_ci_high": m.observed_over_predicted_ci_high,
    }
    problems = []
    if not (s.finite_weights and s.finite_predictions):
        problems.append("weights or predictions are not finite (NaN or infinity)")
    if not s.prediction_std >= config.min_prediction_std or s.distinct_predictions < 2:
        problems.append(f"predictions are (nearly) constant: std {s.prediction_std:.2e}")
    if problems:
        return Verdict(False, "; ".join(problems), figures)
    if scarce := too_little_data(evaluation, config):
        return Verdict(
            False,
            f"finite and varied, but calibration cannot be judged: {scarce.reason}",
            {**figures, **scarce.figures},
            TOO_LITTLE_DATA,
        )
    if m.ece_ci_low > config.max_calibration_error:
        problems.append(
            f"expected calibration error {m.ece:.4f} (95 % interval {m.ece_ci_low:.4f}-{m.ece_ci_high:.4f}) "
            f"lies above {config.max_calibration_error}"
        )
    low, high = 1 / config.max_rate_ratio, config.max_rate_ratio
    if m.observed_over_predicted_ci_high < low or m.observed_over_predicted_ci_low > high:
        problems.append(
            f"observed/predicted order rate {m.observed_over_predicted:.3f} (95 % interval "
            f"{m.observed_over_predicted_ci_low:.3f}-"
            f"{m.observed_over_predicted_ci_high:.3f}) lies outside {low:.2f}-{high:.2f}"
        )
    if problems:
        return Verdict(False, "; ".join(problems), figures)
    return Verdict(
        True,
        f"finite weights, varied predictions; calibrated: ECE {m.ece:.4f} "
        f"({m.ece_ci_low:.4f}-{m.ece_ci_high:.4f}), "
        f"mean prediction {m.mean_prediction:.4f} against {m.observed_rate:.4f} observed",
        figures,
    )


@rule(
    "check_serving_smoke_test",
    "The stored files do not load in a fresh process exactly as scoring loads them, or loading and scoring 1,000 "
    "profiles takes longer than `max_smoke_latency_s`.",
    ("max_smoke_latency_s",),
)
def serving_smoke_test(evaluation: Evaluation, config: GateConfig) -> Verdict:
    """The stored files loaded in a fresh process, as scoring loads them, and scored a batch in time."""
    result = evaluation.smoke
    if not result:
        return Verdict(False, "the serving smoke test has not run on this candidate")
    if not result.get("loaded"):
        return Verdict(
            False,
            f"the stored files do not load in a fresh process: {result.get('error')}",
            {"exit_code": result.get("exit_code")},
        )
    seconds = result["load_seconds"] + result["score_seconds"]
    figures = {
        "load_seconds": result["load_seconds"],
        "score_seconds": result["score_seconds"],
        "rows": result["rows"],
        "max_seconds": config.max_smoke_latency_s,
    }
    if not result["valid_scores"]:
        return Verdict(False, "scores are not finite probabilities in [0, 1]", figures)
    if seconds > config.max_smoke_latency_s:
        return Verdict(
            False,
            f"loading and scoring {result['rows']} profiles took {seconds:.2f} s, over {config.max_smoke_latency_s} s",
            figures,
        )
    return Verdict(True, f"loaded and scored {result['rows']} profiles in a fresh process in {seconds:.2f} s", figures)


def judge(evaluation: Evaluation, config: GateConfig) -> dict[str, Verdict]:
    """Every rule's verdict, as the blocking checks give them and as promotion requires them all passed."""
    return {name: declared.judge(evaluation, config) for name, declared in RULES.items()}


def rules_markdown() -> str:
    """The docs' table of the rules and their settings with defaults (docs/gate.md holds it; a test keeps it equal)."""
    defaults = GateConfig()
    lines = ["| check | refuses a candidate when | settings (default) |", "|---|---|---|"]
    for declared in RULES.values():
        settings = ", ".join(f"`{name}` ({getattr(defaults, name)})" for name in declared.settings)
        lines.append(f"| `{declared.name}` | {declared.refuses_when} | {settings} |")
    return "\n".join(lines) + "\n"
