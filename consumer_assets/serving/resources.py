"""Settings of batch scoring and of the daily explanations."""

from typing import Literal

import dagster as dg
from pydantic import Field


class ScoringResource(dg.ConfigurableResource):
    """How batch_predictions reads and scores a snapshot: in the run's process, or on Spark beyond one machine."""

    engine: Literal["process", "spark"] = Field(
        default="process",
        description="'process': in chunks in the run's process, on its share of the cores. 'spark': a mapInArrow "
        "over the snapshot on the SparkResource's session (a cluster for shops beyond one machine), with the same "
        "scoring function, so the scores are equal.",
    )
    chunk_rows: int = Field(
        default=50_000,
        description="Profiles read from Parquet and scored at a time: bounds memory whatever the snapshot size.",
    )
    batch_size: int = Field(default=2048, description="Profiles per forward pass, grouped by similar length.")
    threads: int = Field(default=2, description="Torch intra-op threads for scoring.")


class ExplanationResource(dg.ConfigurableResource):
    """Which profiles score_explanations explains each day, and what it plots."""

    top_profiles: int = Field(default=100, description="The highest-scored profiles of the day are explained.")
    sample_profiles: int = Field(
        default=200,
        description="Plus a random sample of the rest (seeded by the day), for the summary across profiles.",
    )
    plotted_profiles: int = Field(default=3, description="Trajectories drawn in the UI (the top ones).")
    min_events_for_drift: int = Field(
        default=500, description="Fewer explained events than this: attribution drift is not judged (too little data)."
    )
    attribution_shift_warn: float = Field(
        default=0.1,
        description="WARN when an event type's share of the total |contribution| moves by more than this against the "
        "reference days (beyond its 95 % interval).",
    )
    reference_days: int = Field(default=7, description="Earlier days whose explanations form the reference.")
