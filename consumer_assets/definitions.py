"""The one Definitions object of the code location: assets, checks, jobs and resources."""

import os

import dagster as dg

from consumer_assets.automation.schedules import schedules
from consumer_assets.automation.sensors import sensors
from consumer_assets.features.assets import feature_assets, feature_checks
from consumer_assets.ingest.assets import ingest_assets, ingest_checks
from consumer_assets.io_manager import PartitionedParquetIOManager
from consumer_assets.jobs import daily_data_job, labels_job, scoring_job, training_job
from consumer_assets.monitoring.assets import attribution_checks, monitoring_assets, monitoring_checks
from consumer_assets.resources import (
    DataQualityResource,
    ExplanationResource,
    FeatureResource,
    GateResource,
    AlertResource,
    LandingSensorResource,
    MonitoringResource,
    ScoringResource,
    SparkResource,
    TrainingResource,
    env_or_default,
    storage_from_env,
)
from consumer_assets.serving.assets import serving_assets, serving_checks
from consumer_assets.training.assets import trained_lstm
from consumer_assets.validation.assets import validated_model, validation_checks

storage = storage_from_env()

defs = dg.Definitions(
    assets=dg.with_source_code_references([*ingest_assets, *feature_assets, trained_lstm, validated_model, *serving_assets, *monitoring_assets]),
    asset_checks=[*ingest_checks, *feature_checks, *validation_checks, *serving_checks, *monitoring_checks, *attribution_checks],
    jobs=[daily_data_job, labels_job, training_job, scoring_job],
    schedules=schedules,
    sensors=sensors,
    resources={
        "storage": storage,
        "parquet_io_manager": PartitionedParquetIOManager(storage=storage),
        "quality": DataQualityResource(),
        "spark": SparkResource(master=env_or_default("SPARK_MASTER", "local[*]")),
        "features": FeatureResource(),
        "training": TrainingResource(threads=int(os.environ.get("TORCH_THREADS", "2"))),
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
