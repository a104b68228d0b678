"""Resources configured per deployment: where data lives and how strict the checks are.

Deployment settings come from the environment through ``EnvVar`` so one code
location runs unchanged on a laptop folder and on S3.
"""


import os

import dagster as dg
from pydantic import Field

from pyspark.sql import SparkSession

from consumer_assets.automation.alerts import EmailNotifier, WebhookNotifier
from consumer_assets.features.spark import SparkStorage, spark_session
from consumer_assets.storage import StorageRoot
from consumer_assets.training.split import HELD_OUT_DAYS
from consumer_assets.training.train import TrainConfig
from consumer_assets.validation.gate import GateConfig

DEFAULT_ROOT = ".data"
DEFAULT_LABEL_HORIZON_DAYS = 7


class StorageResource(dg.ConfigurableResource):
    """The storage root: a local folder (the embedded default) or ``s3://bucket/prefix``."""

    root: str = Field(default=DEFAULT_ROOT, description="Local folder or s3://BUCKET/PREFIX (env CONSUMER_ASSETS_ROOT).")
    endpoint_url: str | None = Field(
        default=None,
        description="S3-compatible endpoint such as MinIO (env AWS_ENDPOINT_URL); None means AWS itself.",
    )
    region: str | None = Field(default=None, description="AWS region; None takes AWS_REGION or us-east-1.")

    def open(self) -> StorageRoot:
        return StorageRoot(self.root, endpoint_url=self.endpoint_url or None, region=self.region)


class DataQualityResource(dg.ConfigurableResource):
    """Thresholds of the data checks; tighten or loosen them per deployment."""

    quarantine_warn_rate: float = Field(default=0.02, description="Quarantined share of rows read above which a WARN is raised.")
    quarantine_error_rate: float = Field(default=0.10, description="Quarantined share above which the check fails with ERROR and blocks downstream.")
    dedup_lookback_days: int = Field(default=3, description="Earlier days whose event ids a new day is de-duplicated against.")


def env_or_default(name: str, default: str | None) -> str | dg.EnvVar | None:
    """An ``EnvVar`` when the variable is set (so the UI shows where the value came from), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def storage_from_env() -> StorageResource:
    return StorageResource(
        root=env_or_default("CONSUMER_ASSETS_ROOT", DEFAULT_ROOT),
        endpoint_url=env_or_default("AWS_ENDPOINT_URL", None),
        region=env_or_default("AWS_REGION", None),
    )


class SparkResource(dg.ConfigurableResource):
    """A SparkSession for the feature jobs: local by default, a cluster by configuration.

    On EMR or Spark on Kubernetes set ``master`` (``yarn``, ``k8s://https://...``) and
    ``conf`` (executor sizes, the container image), and ``s3a=True`` so Spark reads the
    S3 root directly. With local Spark and an S3 root the job stages its files through
    ``scratch_dir``, since local pyspark has no S3 connector.
    """

    master: str = Field(default="local[*]", description="Spark master URL (env SPARK_MASTER).")
    driver_memory: str = Field(default="4g", description="Driver memory; on local[*] this is all the memory Spark gets.")
    shuffle_partitions: int = Field(default=8, description="spark.sql.shuffle.partitions; a few per core locally, hundreds on a cluster.")
    s3a: bool = Field(default=False, description="Read and write s3a:// paths directly (needs hadoop-aws on the cluster).")
    scratch_dir: str | None = Field(default=None, description="Local folder for staging S3 files when s3a is off; None: the system temp folder.")
    conf: dict[str, str] = Field(default_factory=dict, description="Any further Spark settings, e.g. spark.executor.memory.")

    def session(self) -> SparkSession:
        conf = {"spark.driver.memory": self.driver_memory, "spark.sql.shuffle.partitions": str(self.shuffle_partitions), **self.conf}
        return spark_session(self.master, conf)

    def bridge(self, root: StorageRoot) -> SparkStorage:
        return SparkStorage(root, s3a=self.s3a, scratch_dir=self.scratch_dir)


class FeatureResource(dg.ConfigurableResource):
    """Shape of the histories and labels; changing them changes what models learn from."""

    window_days: int = Field(default=90, description="Trailing window W: profiles active in (D-W, D] enter the snapshot.")
    max_events: int = Field(default=100, description="Sequence length L: the last L events of each profile.")
    label_horizon_days: int = Field(default=DEFAULT_LABEL_HORIZON_DAYS, description="Label horizon H: orders in (D, D+H] label the snapshot of D.")
    article_groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Article groups with a label each, as name -> category ids. Empty: the five largest categories, "
        "fixed at the first labelling in config/article_groups.json under the root.",
    )
    profile_count_band: float = Field(default=0.5, description="A snapshot whose profile count moves more than this share from the previous day's raises a WARN.")
    output_files: int = Field(default=2, description="Parquet files per snapshot partition.")
    max_change_share: float = Field(
        default=1.0,
        description="A day usually stores only the profiles that changed, as a layer on the day before's snapshot; once the "
        "layers hold this share of the base's rows the day is written in full. 0 writes every snapshot in full (plain Parquet).",
    )
    max_layers: int = Field(default=8, description="At most this many layers (base included) before a day is written in full.")


class TrainingResource(dg.ConfigurableResource):
    """How trained_lstm trains; the defaults train a useful model on the simulator in minutes on CPU."""

    max_training_days: int = Field(default=14, description="Matured snapshots used for training, all earlier than the held-out days.")
    held_out_days: int = Field(default=HELD_OUT_DAYS, description="The latest matured snapshots, pooled, whose validation and test profiles judge the model.")
    hidden_size: int = Field(default=64, description="LSTM hidden size (one layer).")
    max_epochs: int | None = Field(default=TrainConfig.max_epochs, description="Upper bound on epochs; None: 12 on the CPU, 40 on a GPU (larger batches, fewer steps per epoch). Early stopping usually ends sooner.")
    patience: int = Field(default=TrainConfig.patience, description="Epochs without a better validation log-loss before stopping.")
    learning_rate: float = Field(default=TrainConfig.learning_rate, description="AdamW learning rate at a batch of 128; larger batches scale it by the root of batch/128.")
    batch_size: int | None = Field(default=TrainConfig.batch_size, description="Sequences per batch (length-bucketed); None: 128 on the CPU, 1,024 on a GPU, the learning rate scaled by the root of batch/128.")
    max_articles: int = Field(default=5_000, description="Articles with an embedding of their own; rarer ones share the OOV row.")
    min_id_count: int = Field(default=5, description="An id needs this many events in the training data to get an embedding.")
    device: str = Field(default="auto", description="'auto' (CUDA when available, else CPU), 'cpu' or 'cuda'.")
    threads: int = Field(default=2, description="Most torch threads for training on the CPU (env TORCH_THREADS); runs that share the machine split its cores.")
    seed: int = Field(default=0, description="Seed of initialisation and batch order: same seed, same model on CPU.")
    warm_start: bool = Field(default=True, description="Start from the model in service when its config is compatible.")


class GateResource(dg.ConfigurableResource):
    """Thresholds of the blocking checks that keep bad models out of service."""

    min_auc: float = Field(default=GateConfig.min_auc, description="Floor of the candidate's order_any AUC on the test data.")
    min_log_likelihood_gain: float = Field(default=GateConfig.min_log_likelihood_gain, description="Mean log-likelihood must beat the base-rate predictor's by this much per row.")
    max_auc_drop: float = Field(default=GateConfig.max_auc_drop, description="Largest tolerated AUC drop against the model in service (absolute).")
    max_relative_auc_drop: float = Field(default=GateConfig.max_relative_auc_drop, description="Largest tolerated AUC drop against the model in service (share of its AUC).")
    baseline_tolerance: float = Field(default=GateConfig.baseline_tolerance, description="Tolerated AUC shortfall against the strongest baseline.")
    confidence: float = Field(default=GateConfig.confidence, description="Share of paired bootstrap resamples that must show a shortfall to refuse a candidate.")
    min_positives: int = Field(default=GateConfig.min_positives, description="Fewer test positives (or negatives) than this: 'too little data to judge', and nothing is promoted.")
    min_slice_positives: int = Field(default=GateConfig.min_slice_positives, description="Slices with fewer positives are listed as too small to judge.")
    max_calibration_error: float = Field(default=GateConfig.max_calibration_error, description="Refuse when the expected calibration error's whole 95 % interval lies above this.")
    max_rate_ratio: float = Field(default=GateConfig.max_rate_ratio, description="Refuse when observed/predicted order rate lies wholly outside [1/ratio, ratio] (95 % interval).")
    min_prediction_std: float = Field(default=GateConfig.min_prediction_std, description="Predictions with a smaller spread count as constant.")
    max_smoke_latency_s: float = Field(default=GateConfig.max_smoke_latency_s, description="Seconds a fresh process may take to load the model and score 1,000 profiles.")

    def config(self) -> GateConfig:
        return GateConfig(**{name: getattr(self, name) for name in GateConfig.__dataclass_fields__})


class ScoringResource(dg.ConfigurableResource):
    """How batch_predictions reads and scores a snapshot on CPU."""

    chunk_rows: int = Field(default=50_000, description="Profiles read from Parquet and scored at a time: bounds memory whatever the snapshot size.")
    batch_size: int = Field(default=2048, description="Profiles per forward pass, grouped by similar length.")
    threads: int = Field(default=2, description="Torch intra-op threads for scoring.")


class ExplanationResource(dg.ConfigurableResource):
    """Which profiles score_explanations explains each day, and what it plots."""

    top_profiles: int = Field(default=100, description="The highest-scored profiles of the day are explained.")
    sample_profiles: int = Field(default=200, description="Plus a random sample of the rest (seeded by the day), for the summary across profiles.")
    plotted_profiles: int = Field(default=3, description="Trajectories drawn in the UI (the top ones).")
    min_events_for_drift: int = Field(default=500, description="Fewer explained events than this: attribution drift is not judged (too little data).")
    attribution_shift_warn: float = Field(default=0.1, description="WARN when an event type's share of the total |contribution| moves by more than this against the reference days (beyond its 95 % interval).")
    reference_days: int = Field(default=7, description="Earlier days whose explanations form the reference.")


class MonitoringResource(dg.ConfigurableResource):
    """Reference window and alert thresholds of monitoring_stats (alerts are non-blocking checks)."""

    reference_days: int = Field(default=7, description="Earlier days whose sketches form the reference distribution.")
    top_categories: int = Field(default=50, description="Categorical features keep this many values; the rest pool as (other).")
    psi_warn: float = Field(default=0.1, description="PSI above which input or prediction drift warns.")
    psi_error: float = Field(default=0.25, description="PSI above which input or prediction drift is an error.")
    min_volume_ratio: float = Field(default=0.5, description="Events of the day over the reference daily mean below which volume has collapsed.")
    min_realised_auc: float = Field(default=0.6, description="Floor of the AUC of the predictions made H days earlier, once labelled (ERROR when its 95 % interval lies below).")
    min_realised_over_predicted: float = Field(default=0.8, description="Realised over predicted order rate whose 95 % interval lies below this is an error (the model overpredicts).")
    max_realised_over_predicted: float = Field(default=1.25, description="Realised over predicted order rate whose 95 % interval lies above this is an error (the model underpredicts).")
    min_realised_positives: int = Field(default=30, description="Fewer realised orders (or non-orders) than this: the realised checks say too little data to judge.")
    html_report: bool = Field(default=True, description="Store a static report.html beside each day's figures.")


class LandingSensorResource(dg.ConfigurableResource):
    """When the landing sensor considers a day's files complete."""

    completion: str = Field(default="marker", description="'marker': a day is complete when its _SUCCESS file lands; 'quiet': when no file has arrived for quiet_seconds.")
    quiet_seconds: float = Field(default=600.0, description="Quiet period of the 'quiet' mode.")
    lookback_days: int = Field(default=7, description="Late files are picked up for days up to this old.")


class AlertResource(dg.ConfigurableResource):
    """Where alerts go: a Slack-compatible webhook and/or e-mail. Unset: alerts are only logged."""

    webhook_url: str | None = Field(default=None, description="POST target of the JSON alerts (Slack incoming webhook or any HTTP endpoint).")
    smtp_host: str | None = Field(default=None, description="SMTP server for e-mail alerts.")
    smtp_port: int = Field(default=25, description="SMTP port.")
    smtp_sender: str = Field(default="consumer-assets@localhost", description="From address of e-mail alerts.")
    smtp_recipients: str = Field(default="", description="Comma-separated recipients of e-mail alerts.")
    smtp_username: str | None = Field(default=None, description="SMTP login, when the server needs one.")
    smtp_password: str | None = Field(default=None, description="SMTP password (use an EnvVar).")
    smtp_starttls: bool = Field(default=False, description="Upgrade the SMTP connection with STARTTLS.")
    ui_url: str = Field(default="http://127.0.0.1:3000", description="Base URL of the Dagster UI, for the run links in alerts.")
    retries: int = Field(default=3, description="Retries of a failing endpoint, with exponential backoff.")
    backoff_seconds: float = Field(default=1.0, description="First wait between retries; doubles each time.")

    def notifiers(self) -> list:
        notifiers: list = []
        if self.webhook_url:
            notifiers.append(WebhookNotifier(self.webhook_url))
        recipients = tuple(r.strip() for r in self.smtp_recipients.split(",") if r.strip())
        if self.smtp_host and recipients:
            notifiers.append(
                EmailNotifier(self.smtp_host, self.smtp_port, self.smtp_sender, recipients, self.smtp_username, self.smtp_password, self.smtp_starttls)
            )
        return notifiers
