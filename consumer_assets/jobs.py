"""Jobs: what runs together for one day.

The daily data job ingests day D, builds its snapshot, scores it with the model in service and monitors the day. The
catalogue export has its own job and sensor: a missing export must not stop the day (its histories use the latest
earlier catalogue). Labels of D mature H days later, so they have their own job (and an automation condition that runs
it once D+1..D+H have landed).
"""

import dagster as dg

from consumer_assets.asset_keys import (
    ARTICLE_CATALOGUE,
    CANDIDATE_EVALUATION,
    EXPLANATIONS,
    HISTORIES,
    LABELS,
    MONITORING,
    PREDICTIONS,
    RAW_EVENTS,
    STATES,
    TRAINED_LSTM,
    VALIDATED_MODEL,
)
from consumer_assets.automation.freshness import FRESHNESS_CHECKS
from consumer_assets.training.gpu import GPU_JOB_TAGS
from consumer_assets.validation.assets import promote_version

# Run monitoring (dagster.yaml) fails a run still going after this many seconds: a killed or hung run ends failed and
# alerted.
DAY_RUNTIME = {"dagster/max_runtime": str(2 * 3600)}
TRAINING_RUNTIME = {"dagster/max_runtime": str(6 * 3600)}
# Run retries (dagster.yaml: run_retries) for a run whose worker was lost (a preempted spot GPU node, an evicted pod),
# never for one a step failed (a refused candidate is not retried): retried from the failure, at most twice.
PREEMPTIBLE = {
    "dagster/max_retries": "2",
    "dagster/retry_strategy": "FROM_FAILURE",
    "dagster/retry_on_asset_or_op_failure": "false",
}

daily_data_job = dg.define_asset_job(
    name="daily_data_job",
    selection=dg.AssetSelection.assets(RAW_EVENTS, HISTORIES, PREDICTIONS, EXPLANATIONS, STATES, MONITORING)
    - FRESHNESS_CHECKS,
    tags=DAY_RUNTIME,
    description="Ingest one day of landing files, build its snapshot, score it with the model in service and monitor "
    "it.",
)

catalogue_job = dg.define_asset_job(
    name="catalogue_job",
    selection=dg.AssetSelection.assets(ARTICLE_CATALOGUE),
    tags=DAY_RUNTIME,
    description="Validate one day's catalogue export; daily_histories of the day is rebuilt when it had been built "
    "without it.",
)
labels_job = dg.define_asset_job(
    name="labels_job",
    selection=dg.AssetSelection.assets(LABELS),
    tags=DAY_RUNTIME,
    description="Label the snapshot of day D with the orders of D+1..D+H, once those days are ingested.",
)

training_job = dg.define_asset_job(
    name="training_job",
    selection=dg.AssetSelection.assets(TRAINED_LSTM),
    tags={**GPU_JOB_TAGS, **TRAINING_RUNTIME, **PREEMPTIBLE},
    description="Train a candidate on a GPU node (when the launcher offers one); evaluation_job judges it on a CPU.",
)

# Evaluation is CPU work (baselines, bootstrap, a smoke test in a fresh process): its own run, so the GPU is free as
# soon as the candidate is saved. candidate_evaluation's automation condition starts it after trained_lstm.
evaluation_job = dg.define_asset_job(
    name="evaluation_job",
    selection=dg.AssetSelection.assets(CANDIDATE_EVALUATION, VALIDATED_MODEL),
    tags=DAY_RUNTIME,
    description="Evaluate day T's candidate beside the baselines and the model in service, run the blocking checks, "
    "promote it if they pass.",
)

scoring_job = dg.define_asset_job(
    name="scoring_job",
    selection=dg.AssetSelection.assets(PREDICTIONS, EXPLANATIONS, STATES, MONITORING) - FRESHNESS_CHECKS,
    tags=DAY_RUNTIME,
    description="Score every profile of day D's snapshot with the model in service (CPU), then monitor the day.",
)


@dg.job(
    description="Roll back (or forward) to a version the gate passed: the one way besides validated_model that moves "
    "models/serving.json, as a run the UI shows. `consumer-assets models promote VERSION` launches it.",
    tags={"dagster/max_runtime": "600"},
)
def promote_model_job():
    promote_version()
