"""Batch scoring: the predictions table of a snapshot, streamed partition by partition on CPU.

The scores themselves come from ``model.score.score_table``, which validation and the
serving smoke test call too, so a model is judged exactly as it will serve.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import date

import pyarrow as pa

from consumer_assets.model.predict import score_table
from consumer_assets.model.store import LoadedModel


def predictions_schema(targets: list[str]) -> pa.Schema:
    return pa.schema(
        [("profile_id", pa.string()), ("snapshot_date", pa.date32()), ("model_version", pa.string())]
        + [(f"p_{target}", pa.float32()) for target in targets]
    )


def predictions_table(model: LoadedModel, table: pa.Table, snapshot_date: date, batch_size: int = 1024) -> pa.Table:
    """One row per profile: the probability of each target, the model version and the snapshot date."""
    scores = score_table(model, table, batch_size)
    columns = {
        "profile_id": table.column("profile_id"),
        "snapshot_date": pa.array([snapshot_date] * table.num_rows, pa.date32()),
        "model_version": pa.array([model.version] * table.num_rows, pa.string()),
    }
    columns.update(
        {f"p_{target}": pa.array(scores[:, k], pa.float32()) for k, target in enumerate(model.config.targets)}
    )
    return pa.table(columns, schema=predictions_schema(model.config.targets))


def score_partition(
    model: LoadedModel,
    batches: Iterable[pa.RecordBatch],
    snapshot_date: date,
    batch_size: int = 1024,
    progress: Callable[[str], None] | None = None,
) -> Iterator[pa.Table]:
    """Score a stream of history record batches chunk by chunk: memory stays bounded by the chunk."""
    scored, started = 0, time.perf_counter()
    for batch in batches:
        table = predictions_table(model, pa.Table.from_batches([batch]), snapshot_date, batch_size)
        scored += table.num_rows
        if progress:
            progress(f"scored {scored:,} profiles ({scored / max(time.perf_counter() - started, 1e-9):,.0f}/s)")
        yield table
