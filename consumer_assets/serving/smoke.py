"""Serving smoke test: load a stored model in a fresh process exactly as scoring does, and time a batch.

    python -m consumer_assets.serving.smoke ROOT VERSION [--rows 1000] [--endpoint-url URL]

Prints one JSON line: whether it loaded, how many rows it scored, the seconds it
took and whether every score was a finite probability. What TFX's InfraValidator
does, without a model server: our serving is batch scoring.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import pyarrow as pa

from consumer_assets.model.encoding import PROFILE
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import ModelLoadError, ModelStore
from consumer_assets.storage import StorageRoot


def synthetic_histories(rows: int, max_length: int, seed: int = 0) -> pa.Table:
    """Histories of every length up to ``max_length`` with ids the model may or may not know."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, max_length + 1, rows)
    types = np.array(["view", "wishlist", "add_to_cart", "remove_from_cart", "order"])

    def lists(values):
        return [values[rng.integers(0, len(values), n)].tolist() for n in lengths]

    return pa.table(
        {
            "profile_id": [f"smoke{i}" for i in range(rows)],
            "length": lengths,
            "event_type": lists(types),
            "article_id": lists(np.array([f"a{i}" for i in range(500)])),
            "category_id": lists(np.array([f"c{i}" for i in range(20)])),
            "brand_id": lists(np.array([f"b{i}" for i in range(50)])),
            "price": [rng.uniform(1, 200, n).tolist() for n in lengths],
            "dt_prev_s": [rng.exponential(3600, n).tolist() for n in lengths],
            "dt_cutoff_s": [rng.exponential(86400, n).tolist() for n in lengths],
            "hour": [rng.integers(0, 24, n).tolist() for n in lengths],
            "weekday": [rng.integers(0, 7, n).tolist() for n in lengths],
            **{name: rng.integers(0, 100, rows).astype(float) for name in PROFILE},
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("version")
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--endpoint-url", default=None, help="S3-compatible endpoint (default: $AWS_ENDPOINT_URL)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        model = ModelStore(StorageRoot(args.root, endpoint_url=args.endpoint_url)).load(args.version)
    except ModelLoadError as exc:
        print(json.dumps({"loaded": False, "error": str(exc)}))
        return 1
    loaded = time.perf_counter()
    scores = score_table(model, synthetic_histories(args.rows, model.config.max_length))
    done = time.perf_counter()
    valid = bool(np.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all())
    print(
        json.dumps(
            {
                "loaded": True,
                "rows": args.rows,
                "load_seconds": loaded - started,
                "score_seconds": done - loaded,
                "valid_scores": valid,
            }
        )
    )
    return 0 if valid else 1


if __name__ == "__main__":
    sys.exit(main())
