"""The baselines a careful shop would have had: scikit-learn models on time-aware hand-made features.

Per profile: the window totals (counts per event type, spend, active days, recency),
the sequence length, counts of each event type in the last 1, 3, 7 and 30 days, the
time since the last event of each type, and the share of events in each of the most
common categories. Logistic regression, a random forest and gradient-boosted trees
(``HistGradientBoostingClassifier``) are fitted on the same training rows. A
candidate LSTM must beat the strongest of them to be worth serving: the LSTM's case
is that it learns from the raw sequence what such features miss.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from consumer_assets.ingest.contract import EVENT_TYPES
from consumer_assets.model.encoding import NEVER_S, PROFILE

BASELINES = ("logistic_regression", "random_forest", "gradient_boosting")
RECENT_DAYS = (1, 3, 7, 30)


def category_list(tables: Iterable[pa.Table], count: int = 10) -> list[str]:
    """The ``count`` most frequent categories in the histories, fixed before fitting."""
    totals: dict[str, int] = {}
    for table in tables:
        counts = pc.value_counts(pc.list_flatten(table.column("category_id")).drop_null())
        for value, n in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist()):
            totals[value] = totals.get(value, 0) + n
    return [c for c, _ in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


def _log(values: np.ndarray) -> np.ndarray:
    return np.log1p(np.maximum(values, 0))


def features(table: pa.Table, categories: list[str]) -> np.ndarray:
    """One row of hand-made features per profile (see the module docstring)."""
    rows = table.num_rows
    columns = [
        _log(pc.fill_null(table.column(name), 0).to_numpy(zero_copy_only=False).astype(float)) for name in PROFILE
    ]
    lengths = pc.list_value_length(table.column("event_type")).to_numpy(zero_copy_only=False).astype(float)
    columns.append(_log(lengths))
    parent = pc.list_parent_indices(table.column("event_type")).to_numpy(zero_copy_only=False)
    types = pc.list_flatten(table.column("event_type"))
    age = (
        pc.fill_null(pc.list_flatten(table.column("dt_cutoff_s")), NEVER_S).to_numpy(zero_copy_only=False).astype(float)
    )
    for event_type in EVENT_TYPES:
        hits = pc.equal(types, event_type).to_numpy(zero_copy_only=False)
        for days in RECENT_DAYS:
            columns.append(
                _log(np.bincount(parent[hits], weights=(age[hits] <= days * 86_400).astype(float), minlength=rows))
            )
        since = np.full(rows, NEVER_S)
        np.minimum.at(since, parent[hits], age[hits])
        columns.append(_log(since))
    flat = pc.list_flatten(table.column("category_id"))
    for category in categories:
        hits = pc.equal(flat, category).to_numpy(zero_copy_only=False).astype(float)
        columns.append(np.bincount(parent, weights=hits, minlength=rows) / np.maximum(lengths, 1))
    return np.stack(columns, axis=1)


def fit_baselines(x: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:
    """The three baselines fitted on the same rows; real fits, no shortcuts."""
    return {
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0)).fit(x, y),
        "random_forest": RandomForestClassifier(
            n_estimators=150, min_samples_leaf=20, max_depth=12, n_jobs=2, random_state=seed
        ).fit(x, y),
        "gradient_boosting": HistGradientBoostingClassifier(
            learning_rate=0.05,
            max_iter=300,
            max_leaf_nodes=15,
            min_samples_leaf=40,
            l2_regularization=1.0,
            early_stopping=True,
            random_state=seed,
        ).fit(x, y),
    }
