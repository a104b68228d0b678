"""The one Definitions object of the code location: assets, checks, jobs, and the resources bound to deployment
settings.

Each stage keeps its resource classes beside its code (``training/resources.py``, ...);
this is the one place that binds them to the deployment settings of ``environment.py``.
"""

import dagster as dg

from consumer_assets import environment
from consumer_assets.automation.freshness import (
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
    ModelInServiceLoader,
    PartitionIOManager,
)
from consumer_assets.jobs import (
    catalogue_job,
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
from consumer_assets.timeline import Timeline
from consumer_assets.training.assets import training_asset
from consumer_assets.training.resources import TrainingResource
from consumer_assets.validation.assets import evaluation_asset, validation_assets, validation_checks
from consumer_assets.validation.resources import GateResource


def env_or_default(variable: environment.Variable) -> str | dg.EnvVar | None:
    """An ``EnvVar`` when the variable is set (so the UI shows where the value came from), else its default."""
    return dg.EnvVar(variable.name) if variable.is_set() else variable.default


storage = StorageResource(
    root=env_or_default(environment.ROOT),
    endpoint_url=env_or_default(environment.S3_ENDPOINT),
    region=env_or_default(environment.S3_REGION),
)

fresh = freshness_checks(environment.FRESHNESS_DEADLINE.value())


def timeline_from_env() -> Timeline:
    """The label horizon and training window of this code location (deployment settings: see timeline.py)."""
    settings = {}
    for field, variable in {
        "label_horizon_days": environment.LABEL_HORIZON_DAYS,
        "training_days": environment.TRAINING_DAYS,
        "held_out_days": environment.HELD_OUT_DAYS,
    }.items():
        if value := variable.value():
            if not value.isdigit():
                raise ValueError(f"{variable.name} must be a whole number of days, not {value!r}")
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
                evaluation_asset(timeline),
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
            catalogue_job,
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
            "partition_io_manager": PartitionIOManager(storage=storage),
            "model_in_service_loader": ModelInServiceLoader(storage=storage),
            "candidate_io_manager": CandidateIOManager(storage=storage),
            "evaluation_io_manager": EvaluationIOManager(storage=storage),
            "quality": DataQualityResource(),
            "spark": SparkResource(master=env_or_default(environment.SPARK_MASTER)),
            "features": FeatureResource(),
            "training": TrainingResource(
                threads=int(environment.TORCH_THREADS.value()), device=environment.TRAINING_DEVICE.value()
            ),
            "gate": GateResource(),
            "scoring": ScoringResource(threads=int(environment.TORCH_THREADS.value())),
            "explanations": ExplanationResource(),
            "monitoring": MonitoringResource(),
            "landing": LandingSensorResource(completion=environment.LANDING_COMPLETION.value()),
            "alerts": AlertResource(
                webhook_url=env_or_default(environment.ALERT_WEBHOOK),
                smtp_host=env_or_default(environment.SMTP_HOST),
                smtp_port=int(environment.SMTP_PORT.value()),
                smtp_recipients=environment.ALERT_EMAILS.value() or "",
                smtp_username=env_or_default(environment.SMTP_USER),
                smtp_password=env_or_default(environment.SMTP_PASSWORD),
                smtp_starttls=environment.SMTP_STARTTLS.value().lower() in ("1", "true", "yes"),
                ui_url=environment.UI_URL.value(),
            ),
        },
    )


defs = build_definitions(timeline_from_env())
