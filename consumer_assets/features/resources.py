"""Settings of the feature stage: the Spark session and the shape of histories and labels."""

import dagster as dg
from pydantic import Field
from pyspark.sql import SparkSession

from consumer_assets.features.histories import HistoryConfig
from consumer_assets.features.spark import SparkStorage, spark_session
from consumer_assets.storage import StorageRoot


class SparkResource(dg.ConfigurableResource):
    """A SparkSession for the feature jobs: local by default, a cluster by configuration.

    ``master`` ``sc://HOST:PORT`` reaches a Spark Connect server (EMR 7, Databricks, or
    pyspark's own ``sbin/start-connect-server.sh``), which is the driver: the run process
    only sends plans. Its ``conf`` then passes only ``spark.sql.*`` settings. On a cluster
    in client mode set ``master`` (``yarn``, ``k8s://https://...``) and ``conf`` (executor
    sizes, the container image). Either way set ``s3a=True`` so Spark reads the S3 root
    directly; with local Spark and an S3 root the job stages its files through
    ``scratch_dir``, since local pyspark has no S3 connector.

    dagster-pyspark's ``PySparkResource`` is not used: it builds a session from a config
    dict, while this one also applies the project's session settings (UTC, Arrow, no UI
    on every interface, the workers' Python), reaches Spark Connect, and stages S3 files.
    """

    master: str = Field(
        default="local[*]",
        description="Spark master URL (env SPARK_MASTER): local[*], yarn, k8s://..., or sc://HOST:PORT (Spark "
        "Connect).",
    )
    driver_memory: str = Field(
        default="4g", description="Driver memory; on local[*] this is all the memory Spark gets."
    )
    shuffle_partitions: int = Field(
        default=8, description="spark.sql.shuffle.partitions; a few per core locally, hundreds on a cluster."
    )
    s3a: bool = Field(
        default=False, description="Read and write s3a:// paths directly (needs hadoop-aws on the cluster)."
    )
    scratch_dir: str | None = Field(
        default=None, description="Local folder for staging S3 files when s3a is off; None: the system temp folder."
    )
    conf: dict[str, str] = Field(
        default_factory=dict, description="Any further Spark settings, e.g. spark.executor.memory."
    )

    def session(self) -> SparkSession:
        conf = {
            "spark.driver.memory": self.driver_memory,
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            **self.conf,
        }
        return spark_session(self.master, conf)

    def spark_storage(self, root: StorageRoot) -> SparkStorage:
        return SparkStorage(root, s3a=self.s3a, scratch_dir=self.scratch_dir)


class FeatureResource(dg.ConfigurableResource):
    """Shape of the histories and labels; changing them changes what models learn from."""

    window_days: int = Field(
        default=HistoryConfig.window_days,
        description="Trailing window W: profiles active in (D-W, D] enter the snapshot.",
    )
    max_events: int = Field(
        default=HistoryConfig.max_events, description="Sequence length L: the last L events of each profile."
    )
    article_groups: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Article groups with a label each, as name -> category ids. Empty: the five largest categories, "
        "fixed at the first labelling in config/article_groups.json under the root.",
    )
    profile_count_band: float = Field(
        default=0.5,
        description="A snapshot whose profile count moves more than this share from the previous day's raises a WARN.",
    )
    output_files: int = Field(default=2, description="Parquet files per snapshot partition.")
    max_change_share: float = Field(
        default=1.0,
        description="A day usually stores only the profiles that changed, as a layer on the day before's snapshot; "
        "once the "
        "layers hold this share of the base's rows the day is written in full. 0 writes every snapshot in full (plain "
        "Parquet).",
    )
    max_layers: int = Field(
        default=8, description="At most this many layers (base included) before a day is written in full."
    )

    catalogue_max_age_days: int = Field(
        default=7,
        description="A day without its catalogue export joins its events to the latest export at most this many days "
        "older; beyond that the events keep only their own attributes (and the coverage check says so).",
    )
    catalogue_min_coverage: float = Field(
        default=0.95,
        description="Share of the day's events whose article the catalogue knows; a share shown below it (its 95 % "
        "interval entirely below) raises a WARN: a broken or partial export.",
    )

    def history_config(self) -> HistoryConfig:
        return HistoryConfig(window_days=self.window_days, max_events=self.max_events)
