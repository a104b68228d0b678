"""The same scoring on a Spark cluster: ``mapInArrow`` over partitions of the histories.

Each Spark task loads the model from the storage root once (safetensors + JSON, the
checks of ``ModelStore.load`` included) and runs ``predictions_table`` on its Arrow
batches, so a cluster scores with exactly the function the in-process path uses.
``mapInArrow`` rather than ``mapInPandas``: the histories are list columns, which
Arrow hands over as they are stored, without a round trip through pandas objects.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pyarrow as pa
import torch
from pyspark.sql import DataFrame, SparkSession

from consumer_assets.asset_keys import PREDICTIONS
from consumer_assets.features.build_snapshot import snapshot_frame
from consumer_assets.features.spark import SparkStorage
from consumer_assets.model.encoding import HISTORY_COLUMNS
from consumer_assets.model.store import ModelStore
from consumer_assets.serving.batch_scoring import predictions_schema, predictions_table
from consumer_assets.storage import Manifest, StorageRoot

SPARK_TYPES = {pa.string(): "string", pa.date32(): "date", pa.float32(): "float"}


def spark_schema(schema: pa.Schema) -> str:
    return ", ".join(f"{field.name} {SPARK_TYPES[field.type]}" for field in schema)


def score_with_spark(
    histories: DataFrame,
    root_uri: str,
    version: str,
    snapshot_date: date,
    endpoint_url: str | None = None,
    batch_size: int = 1024,
    threads_per_task: int = 1,
) -> DataFrame:
    """Predictions for every row of ``histories`` with model ``version`` of the root at ``root_uri``."""
    targets = list(ModelStore(StorageRoot(root_uri, endpoint_url)).load(version).config.targets)
    schema = predictions_schema(targets)

    def score_task(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        torch.set_num_threads(threads_per_task)  # Spark already runs one task per core
        model = ModelStore(StorageRoot(root_uri, endpoint_url)).load(version)
        for batch in batches:
            yield from predictions_table(model, pa.Table.from_batches([batch]), snapshot_date, batch_size).to_batches()

    return histories.select(*HISTORY_COLUMNS).mapInArrow(score_task, spark_schema(schema))


def write_predictions_with_spark(
    spark: SparkSession, spark_storage: SparkStorage, day: date, version: str, batch_size: int, files: int = 2
) -> Manifest:
    """batch_predictions(D) on Spark: the snapshot read and scored by the executors, written and committed as the
    in-process path commits it (one writer, the manifest last)."""
    root = spark_storage.root
    histories = snapshot_frame(spark, spark_storage, day)
    scored = score_with_spark(histories, root.uri, version, day, getattr(root, "endpoint_url", None), batch_size)
    return spark_storage.write_partition(scored, PREDICTIONS, day, files, properties={"model_version": version})
