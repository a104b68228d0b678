"""The Evaluation record: what candidate_evaluation found, stored as ``evaluation.json`` beside the candidate.

Computed by ``evaluator.py``; judged rule by rule by ``gate.py``. Every model's figures
are a :class:`Figures` (``metrics.summarise``: each figure with its rows, positives,
profiles and 95 % interval), every comparison of two models on the same rows a
:class:`Comparison` (``metrics.paired_differences``). The JSON keeps the field names, so
an evaluation stored by an earlier version reads back the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Self

from consumer_assets.records import JsonRecord

NAN = float("nan")


@dataclass(frozen=True)
class Figures(JsonRecord):
    """One model's figures on one set of test rows; ``*_ci_low``/``*_ci_high`` bound each at 95 %."""

    rows: int
    positives: int
    profiles: int = 0
    auc: float = NAN
    auc_ci_low: float = NAN
    auc_ci_high: float = NAN
    mean_log_likelihood: float = NAN
    mean_log_likelihood_ci_low: float = NAN
    mean_log_likelihood_ci_high: float = NAN
    log_likelihood_gain: float = NAN  # over the base-rate predictor, per row
    log_likelihood_gain_ci_low: float = NAN
    log_likelihood_gain_ci_high: float = NAN
    ece: float = NAN  # expected calibration error
    ece_ci_low: float = NAN
    ece_ci_high: float = NAN
    mean_prediction: float = NAN
    mean_prediction_ci_low: float = NAN
    mean_prediction_ci_high: float = NAN
    observed_rate: float = NAN
    observed_rate_ci_low: float = NAN
    observed_rate_ci_high: float = NAN
    observed_over_predicted: float = NAN
    observed_over_predicted_ci_low: float = NAN
    observed_over_predicted_ci_high: float = NAN
    brier: float = NAN
    top_decile_lift: float = NAN
    base_rate_log_likelihood: float = NAN
    interval_level: float = 0.95
    resamples: int = 0


@dataclass(frozen=True)
class ServedFigures(Figures):
    """The model in service's figures on the candidate's test rows, with its version."""

    version: str = ""


@dataclass(frozen=True)
class Comparison(JsonRecord):
    """The candidate minus another model on the same rows, from the same resampled profiles."""

    auc_difference: float = NAN
    auc_difference_ci_low: float = NAN
    auc_difference_ci_high: float = NAN
    log_likelihood_difference: float = NAN
    log_likelihood_difference_ci_low: float = NAN
    log_likelihood_difference_ci_high: float = NAN
    differences: list[float] = field(default_factory=list)  # sorted resampled AUC differences
    resamples: int = 0
    rows: int = 0
    positives: int = 0


@dataclass(frozen=True)
class SliceFigures(JsonRecord):
    """One slice of the test rows (an activity level, a platform)."""

    rows: int
    positives: int
    candidate: Figures | None = None  # None: the slice is empty
    serving: float | None = None  # the model in service's AUC on the slice
    comparison: Comparison | None = None  # against the model in service

    @classmethod
    def from_json(cls, data: dict) -> Self:
        entry = super().from_json(data)
        return replace(
            entry,
            candidate=Figures.from_json(entry.candidate) if entry.candidate else None,
            comparison=Comparison.from_json(entry.comparison) if entry.comparison else None,
        )


@dataclass(frozen=True)
class TestData(JsonRecord):
    """The pooled test rows: how many, how many positive, of how many profiles, per held-out day."""

    __test__ = False  # not a pytest class

    rows: int = 0
    positives: int = 0
    profiles: int = 0
    per_day: dict[str, dict] = field(default_factory=dict)  # day -> rows, positives


@dataclass(frozen=True)
class Sanity(JsonRecord):
    finite_weights: bool = True
    finite_predictions: bool = True
    prediction_std: float = NAN
    distinct_predictions: int = 0


@dataclass(frozen=True)
class Evaluation(JsonRecord):
    version: str
    train_days: list[str]
    test_days: list[str]
    load_error: str | None = None  # the candidate's files could not be loaded: nothing else was computed
    targets: list[str] = field(default_factory=list)
    test_data: TestData = field(default_factory=TestData)
    candidate: dict[str, Figures] = field(default_factory=dict)  # target -> figures
    sanity: Sanity = field(default_factory=Sanity)  # finite weights and predictions, spread
    calibration: dict[str, list] = field(default_factory=dict)  # model -> reliability table
    roc: dict[str, dict] = field(default_factory=dict)  # model -> ROC points
    comparisons: dict[str, Comparison] = field(default_factory=dict)  # other model -> candidate minus it
    serving: ServedFigures | None = None  # the model in service on the same rows; None before the first
    baselines: dict[str, Figures] = field(default_factory=dict)  # baseline -> figures
    strongest_baseline: str | None = None
    baseline_training_rows: int = 0
    slices: dict[str, SliceFigures] = field(default_factory=dict)
    smoke: dict | None = None  # the fresh-process load-and-score test; None until it ran

    @classmethod
    def from_json(cls, data: dict) -> Self:
        """The record from its JSON (or from the plain figures ``evaluator.py`` computes), typed all the way down."""
        flat = super().from_json(data)
        return replace(
            flat,
            test_data=TestData.from_json(flat.test_data) if isinstance(flat.test_data, dict) else flat.test_data,
            candidate={k: Figures.from_json(v) for k, v in flat.candidate.items()},
            sanity=Sanity.from_json(flat.sanity) if isinstance(flat.sanity, dict) else flat.sanity,
            comparisons={k: Comparison.from_json(v) for k, v in flat.comparisons.items()},
            serving=ServedFigures.from_json(flat.serving) if flat.serving else None,
            baselines={k: Figures.from_json(v) for k, v in flat.baselines.items()},
            slices={k: SliceFigures.from_json(v) for k, v in flat.slices.items()},
        )

    @property
    def primary(self) -> Figures:
        """The candidate's figures on the first target (order_any), the one the gate judges."""
        return self.candidate[self.targets[0]]
