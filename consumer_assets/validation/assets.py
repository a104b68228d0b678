"""The gate in Dagster: the candidate's evaluation, a blocking check per rule on it, the promotion.

``candidate_evaluation(T)`` loads trained_lstm(T)'s candidate (its input, through the
candidate IO manager), evaluates it on the held-out days beside the baselines and the
model in service and runs the serving smoke test in a fresh process; the evaluation
is its value, stored beside the candidate. Each rule is its own blocking
``@asset_check`` on it (blocking is reliable on single-asset checks) and judges that
value. ``validated_model`` sits downstream, so a failed check stops it in the same
run; it judges the evaluation again before it writes ``models/serving.json``, so no
run of any kind can serve a candidate that fails, and it records the hand-off as a
materialisation of ``model_in_service``, which batch scoring depends on.
"""

from dataclasses import replace

import dagster as dg
from pydantic import Field

from consumer_assets.asset_keys import (
    CANDIDATE_EVALUATION,
    HISTORIES,
    LABELS,
    MODEL_IN_SERVICE,
    TRAINED_LSTM,
    VALIDATED_MODEL,
)
from consumer_assets.metadata import plot_markdown
from consumer_assets.model.store import Candidate, GateVerdict, ModelLoadError, ModelStore
from consumer_assets.partitions import daily_partitions
from consumer_assets.plots import calibration_plot, roc_curves
from consumer_assets.storage.resources import StorageResource
from consumer_assets.timeline import Timeline
from consumer_assets.training.assets import matured_snapshots
from consumer_assets.training.split import SnapshotSplit
from consumer_assets.validation.evaluation import Evaluation
from consumer_assets.validation.evaluator import evaluate_candidate, smoke_test
from consumer_assets.validation.gate import RULES, Rule, Verdict, judge
from consumer_assets.validation.resources import GateResource

METRIC_COLUMNS = ("auc", "mean_log_likelihood", "ece", "observed_over_predicted")


def _metrics_table(evaluation: Evaluation) -> dg.TableMetadataValue:
    """Each model on the same test rows: rows, positives, and every figure with its 95 % interval."""
    rows = {"candidate": evaluation.primary, **evaluation.baselines}
    if evaluation.serving:
        rows[f"serving ({evaluation.serving.version})"] = evaluation.serving
    columns = [name for c in METRIC_COLUMNS for name in (c, f"{c}_ci_low", f"{c}_ci_high")]
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "model": name,
                    "rows": m.rows,
                    "positives": m.positives,
                    **{c: round(float(getattr(m, c)), 4) for c in columns},
                }
            )
            for name, m in rows.items()
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("model", "string"),
                dg.TableColumn("rows", "int"),
                dg.TableColumn("positives", "int"),
                *[dg.TableColumn(c, "float") for c in columns],
            ]
        ),
    )


def _evaluation_metadata(evaluation: Evaluation) -> dict:
    """What the asset page shows: the candidate's test figures beside the baselines, ROC and calibration plots."""
    metadata: dict = {"version": evaluation.version}
    if evaluation.load_error is not None:
        return metadata | {"load_error": evaluation.load_error}
    m = evaluation.primary
    return metadata | {
        "test_days": ", ".join(evaluation.test_days),
        "test_rows": m.rows,
        "test_positives": m.positives,
        "test_auc": m.auc,
        "test_auc_95_interval": f"{m.auc_ci_low:.4f}-{m.auc_ci_high:.4f}",
        **{f"test_auc_{name}": b.auc for name, b in evaluation.baselines.items()},
        "test_mean_prediction": m.mean_prediction,
        "test_observed_rate": m.observed_rate,
        "metrics": _metrics_table(evaluation),
        "roc": plot_markdown(roc_curves(evaluation.roc), "ROC curves"),
        "calibration": plot_markdown(calibration_plot(evaluation.calibration), "calibration"),
    }


def evaluation_asset(timeline: Timeline) -> dg.AssetsDefinition:
    """candidate_evaluation, drawn as reading the snapshots and labels of trained_lstm's window (the baselines train
    on its training days, the test rows are its held-out days)."""

    @dg.asset(
        name=CANDIDATE_EVALUATION,
        partitions_def=daily_partitions,
        group_name="validation",
        io_manager_key="evaluation_io_manager",
        ins={TRAINED_LSTM: dg.AssetIn(TRAINED_LSTM)},
        deps=[
            dg.AssetDep(HISTORIES, partition_mapping=matured_snapshots(timeline)),
            dg.AssetDep(LABELS, partition_mapping=matured_snapshots(timeline)),
        ],
        automation_condition=dg.AutomationCondition.eager(),
        kinds={"pytorch", "scikitlearn", "json"},
        owners=["team:ml"],
        tags={"stage": "validation"},
        code_version="1",
    )
    def candidate_evaluation(
        context: dg.AssetExecutionContext, trained_lstm: Candidate, storage: StorageResource
    ) -> dg.Output[Evaluation]:
        """Day T's candidate on independent test data: every figure with its rows, positives and 95 % interval,
        beside the baselines (logistic regression, random forest, gradient-boosted trees) and the model in service,
        plus a smoke test that loads and scores it in a fresh process. Stored as ``evaluation.json`` beside the
        candidate; the blocking checks judge it.
        """
        root = storage.open()
        split = SnapshotSplit.from_json(ModelStore(root).read_training(trained_lstm.version)["split"])
        held_out = f"{split.held_out_days[0]}..{split.held_out_days[-1]}"
        context.log.info(
            f"evaluating {trained_lstm.version} on the test profiles of {held_out} beside the baselines and the model "
            "in service"
        )
        evaluation = evaluate_candidate(root, trained_lstm.version, split)
        context.log.info(f"loading and scoring {trained_lstm.version} in a fresh process")
        evaluation = replace(evaluation, smoke=smoke_test(root, trained_lstm.version))
        return dg.Output(evaluation, metadata=_evaluation_metadata(evaluation))

    return candidate_evaluation


def _result(verdict: Verdict, version: str, extra: dict | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=verdict.passed,
        description=verdict.reason,
        metadata={
            "version": version,
            "outcome": verdict.outcome,
            "reason": verdict.reason,
            **verdict.figures,
            **(extra or {}),
        },
    )


def _rule_check(rule: Rule) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=CANDIDATE_EVALUATION,
        name=rule.name,
        partitions_def=daily_partitions,
        blocking=True,
        description=f"Refuses when: {rule.refuses_when}",
    )
    def check(candidate_evaluation: Evaluation, gate: GateResource) -> dg.AssetCheckResult:
        evaluation = candidate_evaluation
        verdict = rule.judge(evaluation, gate.config())
        with_table = rule.shows_metrics and evaluation.load_error is None
        return _result(verdict, evaluation.version, {"metrics": _metrics_table(evaluation)} if with_table else None)

    return check


validation_checks = [_rule_check(rule) for rule in RULES.values()]


@dg.asset(
    name=VALIDATED_MODEL,
    partitions_def=daily_partitions,
    group_name="validation",
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    kinds={"json"},
    owners=["team:ml"],
    tags={"stage": "validation"},
    code_version="2",
)
def validated_model(
    context: dg.AssetExecutionContext, candidate_evaluation: Evaluation, storage: StorageResource, gate: GateResource
) -> dg.MaterializeResult:
    """Promotes day T's candidate into service by writing ``models/serving.json`` atomically (model_in_service).

    Runs only after every blocking check on the evaluation passed in the same run, and
    refuses by itself a candidate whose evaluation fails the gate, so a hand-started or
    re-executed run cannot serve it either.
    """
    evaluation = candidate_evaluation
    version = evaluation.version
    store = ModelStore(storage.open())
    config = gate.config()
    failed = {name: v.reason for name, v in judge(evaluation, config).items() if not v.passed}
    store.write_verdict(GateVerdict(version, not failed, failed, config.to_json(), context.run_id))
    if failed:
        serving = store.serving()
        raise dg.Failure(
            f"Refusing to serve {version}: "
            + "; ".join(f"{k}: {v}" for k, v in failed.items())
            + f". The model in service stays {serving.version if serving else 'none'}.",
            metadata={"version": version, **failed},
            allow_retries=False,
        )
    previous = store.serving()
    record = store.promote(
        version,
        run_id=context.run_id,
        partition=context.partition_key,
        previous_version=previous.version if previous else None,
        metrics={k: getattr(evaluation.primary, k) for k in ("auc", "mean_log_likelihood", "brier", "ece")},
        test_days=evaluation.test_days,
    )
    context.log.info("serving %s (was %s)", version, record.previous_version)
    context.log_event(
        dg.AssetMaterialization(
            MODEL_IN_SERVICE,
            metadata={
                "version": version,
                "promoted_by_partition": context.partition_key,
                "previous_version": record.previous_version or "none",
            },
        )
    )
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "previous_version": record.previous_version or "none",
            "since": record.since,
            "auc": record.metrics["auc"],
            "mean_log_likelihood": record.metrics["mean_log_likelihood"],
        }
    )


# The hand-off from training to scoring, as an edge the UI draws: validated_model(T)
# records a materialisation of this unpartitioned asset whenever it promotes a
# candidate, and batch_predictions depends on it (one model serves at a time).
model_in_service = dg.AssetSpec(
    MODEL_IN_SERVICE,
    deps=[validated_model],
    group_name="validation",
    kinds={"json"},
    owners=["team:ml"],
    tags={"stage": "validation"},
    description="The model that scores: models/serving.json, written atomically by validated_model when every blocking "
    "check on a candidate "
    "has passed (or by `consumer-assets models promote VERSION` for a version that passed). Its metadata names the "
    "version.",
)


class PromotionConfig(dg.Config):
    """Which version to put (back) into service, and why (kept in the serving history)."""

    version: str = Field(description="A version the gate passed: `consumer-assets models list` shows each verdict.")
    reason: str = Field(default="manual rollback", description="Why, for the serving history.")


@dg.op(
    description="Puts a version the gate passed (back) into service: models/serving.json, written atomically, and a "
    "materialisation "
    "of model_in_service, so the UI names it and batch_predictions shows its upstream changed. Refuses any other "
    "version.",
    tags={"stage": "validation"},
)
def promote_version(context: dg.OpExecutionContext, config: PromotionConfig, storage: StorageResource):
    store = ModelStore(storage.open())
    previous = store.serving()
    try:
        record = store.promote(
            config.version,
            run_id=context.run_id,
            promoted_by="promote_model job",
            reason=config.reason,
            previous_version=previous.version if previous else None,
        )
    except ModelLoadError as exc:
        raise dg.Failure(
            str(exc),
            metadata={"version": config.version, "in_service": previous.version if previous else "none"},
            allow_retries=False,
        ) from exc
    context.log.info("serving %s (was %s): %s", record.version, record.previous_version, config.reason)
    yield dg.AssetMaterialization(
        MODEL_IN_SERVICE,
        metadata={
            "version": record.version,
            "previous_version": record.previous_version or "none",
            "reason": config.reason,
        },
    )
    yield dg.Output(record.version)


validation_assets = [validated_model, model_in_service]
