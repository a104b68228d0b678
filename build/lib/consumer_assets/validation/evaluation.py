"""The Evaluation record: what candidate_evaluation found, stored as ``evaluation.json`` beside the candidate.

Computed by ``evaluate.py``; judged rule by rule by ``gate.py``. The per-model figures
inside (``candidate``, ``baselines``, ``serving``) are ``metrics.summarise`` results:
each figure with its rows, positives, profiles and 95 % interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from consumer_assets.records import JsonRecord


@dataclass(frozen=True)
class Evaluation(JsonRecord):
    version: str
    train_days: list[str]
    test_days: list[str]
    load_error: str | None = None  # the candidate's files could not be loaded: nothing else was computed
    targets: list[str] = field(default_factory=list)
    test_data: dict = field(default_factory=dict)  # rows, positives, profiles, per day
    candidate: dict[str, dict] = field(default_factory=dict)  # target -> figures
    sanity: dict = field(default_factory=dict)  # finite weights and predictions, spread
    calibration: dict[str, list] = field(default_factory=dict)  # model -> reliability table
    roc: dict[str, dict] = field(default_factory=dict)  # model -> ROC points
    comparisons: dict[str, dict] = field(default_factory=dict)  # other model -> paired bootstrap of the AUC difference
    serving: dict | None = None  # the model in service on the same rows, with its version; None before the first
    baselines: dict[str, dict] = field(default_factory=dict)  # baseline -> figures
    strongest_baseline: str | None = None
    baseline_training_rows: int = 0
    slices: dict[str, dict] = field(default_factory=dict)  # slice -> rows, positives, figures, comparison
    smoke: dict | None = None  # the fresh-process load-and-score test; None until it ran

    @property
    def primary(self) -> dict:
        """The candidate's figures on the first target (order_any), the one the gate judges."""
        return self.candidate[self.targets[0]]
