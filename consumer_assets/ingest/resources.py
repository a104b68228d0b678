"""Settings of ingest: how strict the data checks are."""

import dagster as dg
from pydantic import Field


class DataQualityResource(dg.ConfigurableResource):
    """Thresholds of the data checks; tighten or loosen them per deployment."""

    quarantine_warn_rate: float = Field(
        default=0.02, description="Quarantined share of rows read above which a WARN is raised."
    )
    quarantine_error_rate: float = Field(
        default=0.10, description="Quarantined share above which the check fails with ERROR and blocks downstream."
    )
    dedup_lookback_days: int = Field(
        default=3, description="Earlier days whose event ids a new day is de-duplicated against."
    )
    catalogue_size_band: float = Field(
        default=0.2,
        description="A catalogue export whose article count moves more than this share from the day before's raises a "
        "WARN (a broken export).",
    )
