"""Spark sessions, and SparkStorage: how Spark reads and writes the partitions of the storage root.

One code path from laptop to cluster: Spark reads and writes the same partitions
wherever it runs. Three ways to reach them, chosen by the root and the config:

* folder root: Spark reads the partition files in place and writes into the
  partition folder;
* S3 root on a cluster with the S3A connector (EMR ships it): the same, with
  ``s3a://`` paths;
* S3 root with local Spark (no connector): the files Spark needs are copied to a
  local scratch folder, Spark runs there, and the result is uploaded.

In every case Spark writes its files below ``<dataset>/date=D/run-<token>/`` and the
partition becomes visible only when the storage layer commits the manifest, so a
failed Spark job leaves the previous partition untouched.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import date

import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pyspark.sql import DataFrame, SparkSession

from consumer_assets.storage import Manifest, StorageRoot

log = logging.getLogger(__name__)

LOCAL_DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}


def spark_session(
    master: str = "local[*]", conf: dict[str, str] | None = None, app_name: str = "consumer-assets"
) -> SparkSession:
    """Get or create the process's SparkSession with the project's settings on top of ``conf``.

    ``master`` ``sc://HOST:PORT`` connects to a Spark Connect server instead (a cluster's driver, not this process):
    only the session's SQL settings travel, the server's own configuration holds the rest.
    """
    settings = {**LOCAL_DEFAULTS, **(conf or {})}
    if master.startswith("sc://"):
        session = SparkSession.builder.remote(master).getOrCreate()
        for key, value in settings.items():
            if key.startswith("spark.sql."):
                session.conf.set(key, value)
        return session
    builder = SparkSession.builder.appName(app_name).master(master)
    if master.startswith("local"):
        settings.setdefault("spark.driver.host", "127.0.0.1")
        settings.setdefault("spark.driver.bindAddress", "127.0.0.1")
        settings.setdefault(
            "spark.ui.enabled", "false"
        )  # it would listen on every interface (*:4040); SparkResource.conf turns it back on
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # Python workers get this project's packages (torch)
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    return session


@dataclass
class SparkStorage:
    """Gives Spark paths it can read and takes back what it wrote, for one storage root."""

    root: StorageRoot
    s3a: bool = False
    scratch_dir: str | None = None

    @property
    def staged(self) -> bool:
        return self.root.is_s3 and not self.s3a

    def _spark_path(self, fs_path: str) -> str:
        return f"s3a://{fs_path}" if self.root.is_s3 else fs_path

    def input_paths(self, dataset: str, days: list[date]) -> list[str]:
        """Paths of the committed files of ``days``, local copies when Spark cannot reach S3."""
        return self.spark_paths([path for day in days for path in self.root.partition_files(dataset, day)])

    def spark_paths(self, paths: list[str]) -> list[str]:
        """Spark's paths for files of the root: the same files, or local copies when Spark cannot reach S3."""
        if not self.staged:
            return [self._spark_path(p) for p in paths]
        local_dir = tempfile.mkdtemp(prefix="stage-in-", dir=self.scratch_dir)
        local_paths = []
        for i, path in enumerate(paths):
            local = os.path.join(local_dir, f"{i:05d}-{os.path.basename(path)}")
            pafs.copy_files(path, local, source_filesystem=self.root.fs, destination_filesystem=pafs.LocalFileSystem())
            local_paths.append(local)
        log.info("staged %d files to %s", len(paths), local_dir)
        return local_paths

    def write_files(self, frame: DataFrame, dataset: str, day: date, files: int = 1) -> tuple[list[str], int]:
        """Write ``frame`` into the partition folder of ``day`` without committing: (names, rows)."""
        run_dir = f"run-{uuid.uuid4().hex[:12]}"
        partition_key = self.root.partition_key(dataset, day)
        target = self.root.path(partition_key, run_dir)
        local_out = tempfile.mkdtemp(prefix="stage-out-", dir=self.scratch_dir) if self.staged else None
        frame.coalesce(files).write.mode("overwrite").parquet(
            os.path.join(local_out, run_dir) if local_out else self._spark_path(target)
        )
        if local_out:
            pafs.copy_files(
                os.path.join(local_out, run_dir),
                target,
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=self.root.fs,
            )
            shutil.rmtree(local_out, ignore_errors=True)
        names = [
            key[len(partition_key) + 1 :] for key in self.root.list_files(f"{partition_key}/{run_dir}", ".parquet")
        ]
        rows = sum(
            pq.ParquetFile(self.root.path(partition_key, name), filesystem=self.root.fs).metadata.num_rows
            for name in names
        )
        return names, rows

    def write_partition(
        self, frame: DataFrame, dataset: str, day: date, files: int = 1, properties: dict | None = None
    ) -> Manifest:
        """Write ``frame`` as the partition of ``day`` and commit it in one step, holding its one-writer lease
        throughout."""
        with self.root.writing(dataset, day):
            names, rows = self.write_files(frame, dataset, day, files)
            return self.root.commit_partition(dataset, day, names, rows, properties)
