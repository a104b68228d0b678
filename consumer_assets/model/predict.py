"""A loaded model's probabilities for snapshot rows, on CPU, in length-bucketed batches.

Model code, not serving code: validation, the serving smoke test, explanations and
batch scoring all call this, so a model is judged exactly as it will serve.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from consumer_assets.model.encoding import encode
from consumer_assets.model.store import LoadedModel


def score_table(model: LoadedModel, table: pa.Table, batch_size: int = 1024) -> np.ndarray:
    """Probabilities, (rows, targets), in the order of ``table``'s rows."""
    scores = np.zeros((table.num_rows, len(model.config.targets)), np.float32)
    if table.num_rows == 0:
        return scores
    order = np.argsort(pc.list_value_length(table.column("event_type")).to_numpy(zero_copy_only=False), kind="stable")
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            batch = encode(table.take(pa.array(rows)), model.vocabulary, model.config.max_length)
            scores[rows] = model.network.predict_proba(batch).numpy()
    return scores
