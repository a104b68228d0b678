"""Thresholds of the gate as a Dagster resource; the defaults are GateConfig's."""

import dagster as dg
from pydantic import Field

from consumer_assets.validation.gate import GateConfig


class GateResource(dg.ConfigurableResource):
    """Thresholds of the blocking checks that keep bad models out of service."""

    min_auc: float = Field(
        default=GateConfig.min_auc, description="Floor of the candidate's order_any AUC on the test data."
    )
    min_log_likelihood_gain: float = Field(
        default=GateConfig.min_log_likelihood_gain,
        description="Mean log-likelihood must beat the base-rate predictor's by this much per row.",
    )
    max_auc_drop: float = Field(
        default=GateConfig.max_auc_drop,
        description="Largest tolerated AUC drop against the model in service (absolute).",
    )
    max_relative_auc_drop: float = Field(
        default=GateConfig.max_relative_auc_drop,
        description="Largest tolerated AUC drop against the model in service (share of its AUC).",
    )
    baseline_tolerance: float = Field(
        default=GateConfig.baseline_tolerance, description="Tolerated AUC shortfall against the strongest baseline."
    )
    confidence: float = Field(
        default=GateConfig.confidence,
        description="Share of paired bootstrap resamples that must show a shortfall to refuse a candidate.",
    )
    min_positives: int = Field(
        default=GateConfig.min_positives,
        description="Fewer test positives (or negatives) than this: 'too little data to judge', and nothing is "
        "promoted.",
    )
    min_slice_positives: int = Field(
        default=GateConfig.min_slice_positives,
        description="Slices with fewer positives are listed as too small to judge.",
    )
    max_calibration_error: float = Field(
        default=GateConfig.max_calibration_error,
        description="Refuse when the expected calibration error's whole 95 % interval lies above this.",
    )
    max_rate_ratio: float = Field(
        default=GateConfig.max_rate_ratio,
        description="Refuse when observed/predicted order rate lies wholly outside [1/ratio, ratio] (95 % interval).",
    )
    min_prediction_std: float = Field(
        default=GateConfig.min_prediction_std, description="Predictions with a smaller spread count as constant."
    )
    max_smoke_latency_s: float = Field(
        default=GateConfig.max_smoke_latency_s,
        description="Seconds a fresh process may take to load the model and score 1,000 profiles.",
    )

    def config(self) -> GateConfig:
        return GateConfig(**{name: getattr(self, name) for name in GateConfig.__dataclass_fields__})
