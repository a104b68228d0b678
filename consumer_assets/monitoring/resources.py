"""Reference window and alert thresholds of monitoring."""

import dagster as dg
from pydantic import Field

from consumer_assets.features.resources import FeatureResource
from consumer_assets.monitoring.daily import MonitoringConfig


class MonitoringResource(dg.ConfigurableResource):
    """Reference window and alert thresholds of monitoring_stats (alerts are non-blocking checks)."""

    reference_days: int = Field(
        default=MonitoringConfig.reference_days,
        description="Earlier days whose sketches form the reference distribution.",
    )
    top_categories: int = Field(
        default=MonitoringConfig.top_categories,
        description="Categorical features keep this many values; the rest pool as (other).",
    )
    psi_warn: float = Field(default=0.1, description="PSI above which input or prediction drift warns.")
    psi_error: float = Field(default=0.25, description="PSI above which input or prediction drift is an error.")
    min_volume_ratio: float = Field(
        default=0.5, description="Events of the day over the reference daily mean below which volume has collapsed."
    )
    min_realised_auc: float = Field(
        default=0.6,
        description="Floor of the AUC of the predictions made H days earlier, once labelled (ERROR when its 95 % "
        "interval lies below).",
    )
    min_realised_over_predicted: float = Field(
        default=0.8,
        description="Realised over predicted order rate whose 95 % interval lies below this is an error (the model "
        "overpredicts).",
    )
    max_realised_over_predicted: float = Field(
        default=1.25,
        description="Realised over predicted order rate whose 95 % interval lies above this is an error (the model "
        "underpredicts).",
    )
    min_realised_positives: int = Field(
        default=30,
        description="Fewer realised orders (or non-orders) than this: the realised checks say too little data to "
        "judge.",
    )
    html_report: bool = Field(default=True, description="Store a static report.html beside each day's figures.")

    def config(self, features: FeatureResource, horizon_days: int) -> MonitoringConfig:
        """The day's monitoring settings; the horizon and window are the labels' and the histories', so they always
        agree."""
        return MonitoringConfig(
            reference_days=self.reference_days,
            top_categories=self.top_categories,
            horizon_days=horizon_days,
            history_window_days=features.window_days,
        )
