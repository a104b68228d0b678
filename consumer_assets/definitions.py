"""The one Definitions object of the code location: assets, checks, jobs, and the resources bound to deployment
settings.

Each stage keeps its resource classes beside its code (``training/resources.py``, ...);
this is the one place that binds them, reading deployment settings from the environment.
"""

import os

import dagster as dg

from consumer_assets.automation.freshness import (
    DEFAULT_DEADLINE_CRON,
    freshness_checks,
    freshness_job,
    freshness_sensor,
)
from consumer_assets.automation.resources import AlertResource, LandingSensorResource
from consumer_assets.automation.schedules import schedules
from consumer_assets.automation.sensors import sensors
from consumer_assets.features.assets import feature_assets, feature_checks
from consumer_assets.features.resources import FeatureResource, SparkResource
from consumer_assets.ingest.assets import ingest_assets, ingest_checks
from consumer_assets.ingest.resources import DataQualityResource
from consumer_assets.io_manager import (
    CandidateIOManager,
    EvaluationIOManager,
    JsonIOManager,
    PartitionedParquetIOManager,
)
from consumer_assets.jobs import (
    daily_data_job,
    evaluation_job,
    labels_job,
    promote_model_job,
    scoring_job,
    training_job,
)
from consumer_assets.labels.assets import label_checks, labels_asset
from consumer_assets.monitoring.assets import attribution_checks, monitoring_asset, monitoring_checks
from consumer_assets.monitoring.resources import MonitoringResource
from consumer_assets.serving.assets import serving_assets, serving_checks
from consumer_assets.serving.resources import ExplanationResource, ScoringResource
from consumer_assets.storage.resources import StorageResource
from consumer_assets.storage.root import DEFAULT_ROOT
from consumer_assets.timeline import Timeline
from consumer_assets.training.assets import training_asset
from consumer_assets.training.resources import TrainingResource
from consumer_assets.training.train import TrainConfig
from consumer_assets.validation.assets import validation_assets, validation_checks
from consumer_assets.validation.resources import GateResource


def env_or_default(name: str, default: str | None) -> str | dg.EnvVar | None:
    """An ``EnvVar`` when the variable is set (so the UI shows where the value came from), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


storage = StorageResource(
    root=env_or_default("CONSUMER_ASSETS_ROOT", DEFAULT_ROOT),
    endpoint_url=env_or_default("AWS_ENDPOINT_URL", None),
    region=env_or_default("AWS_REGION", None),
)

fresh = freshness_checks(os.environ.get("CONSUMER_ASSETS_FRESHNESS_DEADLINE", DEFAULT_DEADLINE_CRON))


def timeline_from_env() -> Timeline:
    """The label horizon and training window of this code location (deployment settings: see timeline.py)."""
    names = {
        "label_horizon_days": "CONSUMER_ASSETS_LABEL_HORIZON_DAYS",
        "training_days": "CONSUMER_ASSETS_TRAINING_DAYS",
        "held_out_days": "CONSUMER_ASSETS_HELD_OUT_DAYS",
    }
    settings = {}
    for field, variable in names.items():
        if value := os.environ.get(variable):
            if not value.isdigit():
                raise ValueError(f"{variable} must be a whole number of days, not {value!r}")
            settings[field] = int(value)
    return Timeline(**settings)


def build_definitions(timeline: Timeline) -> dg.Definitions:
    """Every asset, check, job, schedule and sensor, with the lineage and automation drawn for ``timeline``."""
    return dg.Definitions(
        assets=dg.with_source_code_references(
            [
                *ingest_assets,
                *feature_assets,
                labels_asset(timeline),
                training_asset(timeline),
                *validation_assets,
                *serving_assets,
                monitoring_asset(timeline),
            ]
        ),
        asset_checks=[
            *ingest_checks,
            *feature_checks,
            *label_checks,
            *validation_checks,
            *serving_checks,
            *monitoring_checks,
            *attribution_checks,
            *fresh,
        ],
        jobs=[
            daily_data_job,
            labels_job,
            training_job,
            evaluation_job,
            scoring_job,
            promote_model_job,
            freshness_job(fresh),
        ],
        schedules=schedules,
        sensors=[*sensors(timeline), freshness_sensor(fresh)],
        resources={
            "storage": storage,
            "io_manager": JsonIOManager(storage=storage),  # nothing lands on a pod's disk, nothing is pickled
            "parquet_io_manager": PartitionedParquetIOManager(storage=storage),
            "candidate_io_manager": CandidateIOManager(storage=storage),
            "evaluation_io_manager": EvaluationIOManager(storage=storage),
            "quality": DataQualityResource(),
            "spark": SparkResource(master=env_or_default("SPARK_MASTER", "local[*]")),
            "features": FeatureResource(),
            "training": TrainingResource(
                threads=int(os.environ.get("TORCH_THREADS", "2")),
                device=os.environ.get("CONSUMER_ASSETS_TRAINING_DEVICE", TrainConfig.device),
            ),
            "gate": GateResource(),
            "scoring": ScoringResource(threads=int(os.environ.get("TORCH_THREADS", "2"))),
            "explanations": ExplanationResource(),
            "monitoring": MonitoringResource(),
            "landing": LandingSensorResource(completion=os.environ.get("CONSUMER_ASSETS_LANDING_COMPLETION", "marker")),
            "alerts": AlertResource(
                webhook_url=env_or_default("CONSUMER_ASSETS_ALERT_WEBHOOK", None),
                smtp_host=env_or_default("CONSUMER_ASSETS_SMTP_HOST", None),
                smtp_port=int(os.environ.get("CONSUMER_ASSETS_SMTP_PORT", "25")),
                smtp_recipients=os.environ.get("CONSUMER_ASSETS_ALERT_EMAILS", ""),
                smtp_username=env_or_default("CONSUMER_ASSETS_SMTP_USER", None),
                smtp_password=env_or_default("CONSUMER_ASSETS_SMTP_PASSWORD", None),
                smtp_starttls=os.environ.get("CONSUMER_ASSETS_SMTP_STARTTLS", "false").lower() in ("1", "true", "yes"),
                ui_url=os.environ.get("CONSUMER_ASSETS_UI_URL", "http://127.0.0.1:3000"),
            ),
        },
    )


defs = build_definitions(timeline_from_env())
