"""The gate in Dagster: blocking checks on each candidate, and validated_model, the promotion.

Each rule is its own blocking ``@asset_check`` on ``trained_lstm`` (blocking is
reliable on single-asset checks), judging the ``evaluation.json`` computed once at
the end of training. ``validated_model`` sits downstream, so a failed check stops it
in the same run; and it judges the stored evaluation again before it writes
``models/serving.json``, so no run of any kind can serve a candidate that fails.
"""

import json
import subprocess
import sys

import dagster as dg

from consumer_assets.metadata import figure_markdown
from consumer_assets.model.store import VERDICT, ModelLoadError, ModelStore
from consumer_assets.partitions import daily_partitions
from consumer_assets.plots import calibration_plot, roc_curves
from consumer_assets.storage.resources import StorageResource
from consumer_assets.training.assets import trained_lstm
from consumer_assets.validation.gate import RULES, GateConfig, Verdict, judge
from consumer_assets.validation.resources import GateResource

SMOKE = "smoke.json"


def _candidate(context, storage: StorageResource) -> tuple[ModelStore, str]:
    store = ModelStore(storage.open())
    try:
        return store, store.candidate_for_partition(context.partition_key)
    except ModelLoadError as exc:
        raise dg.Failure(str(exc)) from exc


def _result(verdict: Verdict, version: str, extra: dict | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=verdict.passed,
        description=verdict.reason,
        metadata={"version": version, "outcome": verdict.outcome, "reason": verdict.reason, **verdict.figures, **(extra or {})},
    )


METRIC_COLUMNS = ("auc", "mean_log_likelihood", "ece", "observed_over_predicted")


def _metrics_table(evaluation: dict) -> dg.TableMetadataValue:
    """Each model on the same test rows: rows, positives, and every figure with its 95 % interval."""
    primary = evaluation["targets"][0]
    rows = {"candidate": evaluation["candidate"][primary], **evaluation["baselines"]}
    if evaluation.get("serving"):
        rows[f"serving ({evaluation['serving']['version']})"] = evaluation["serving"]
    columns = [name for c in METRIC_COLUMNS for name in (c, f"{c}_ci_low", f"{c}_ci_high")]
    return dg.MetadataValue.table(
        records=[
            dg.TableRecord({"model": name, "rows": m["rows"], "positives": m["positives"], **{c: round(float(m[c]), 4) for c in columns}})
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


def _rule_check(name: str, description: str):
    @dg.asset_check(asset=trained_lstm, name=name, partitions_def=daily_partitions, blocking=True, description=description)
    def check(context: dg.AssetCheckExecutionContext, storage: StorageResource, gate: GateResource) -> dg.AssetCheckResult:
        store, version = _candidate(context, storage)
        evaluation = store.read_evaluation(version)
        verdict = RULES[name](evaluation, gate.config())
        extra = {}
        if name in ("check_value_thresholds", "check_beats_baselines") and "load_error" not in evaluation:
            extra = {"metrics": _metrics_table(evaluation)}
        if name == "check_value_thresholds" and "load_error" not in evaluation:  # the plots once per candidate
            extra |= {
                "roc": figure_markdown(roc_curves(evaluation["roc"]), "ROC curves"),
                "calibration": figure_markdown(calibration_plot(evaluation["calibration"]), "calibration"),
            }
        return _result(verdict, version, extra)

    return check


rule_checks = [
    _rule_check("check_value_thresholds", "AUC and log-likelihood gain not shown below their floors (95 % intervals) on pooled, independent test data."),
    _rule_check("check_not_worse_than_serving", "Not shown worse than the model in service beyond the tolerance, by a paired bootstrap over profiles."),
    _rule_check(
        "check_beats_baselines",
        "Not shown worse than the strongest baseline (logistic regression, random forest, gradient-boosted trees on time-aware features), by a paired bootstrap.",
    ),
    _rule_check("check_slices", "The floor and the comparison with the model in service hold on every slice (activity level, platform) large enough to judge."),
    _rule_check("check_sanity", "Finite weights, predictions not constant, calibration judged with its interval (ECE, observed over predicted)."),
]


def run_smoke_test(store: ModelStore, version: str, endpoint_url: str | None) -> dict:
    """Load and score in a fresh Python process, as batch scoring will."""
    command = [sys.executable, "-m", "consumer_assets.serving.smoke", store.root.uri, version]
    if endpoint_url:
        command += ["--endpoint-url", endpoint_url]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    lines = completed.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {}
    if not result:
        result = {"loaded": False, "error": (completed.stderr or "no output")[-2000:]}
    result["exit_code"] = completed.returncode
    return result


def smoke_verdict(result: dict, config: GateConfig) -> Verdict:
    if not result.get("loaded"):
        return Verdict(False, f"the stored files do not load in a fresh process: {result.get('error')}", {"exit_code": result.get("exit_code")})
    seconds = result["load_seconds"] + result["score_seconds"]
    figures = {
        "load_seconds": result["load_seconds"],
        "score_seconds": result["score_seconds"],
        "rows": result["rows"],
        "max_seconds": config.max_smoke_latency_s,
    }
    if not result["valid_scores"]:
        return Verdict(False, "scores are not finite probabilities in [0, 1]", figures)
    if seconds > config.max_smoke_latency_s:
        return Verdict(False, f"loading and scoring {result['rows']} profiles took {seconds:.2f} s, over {config.max_smoke_latency_s} s", figures)
    return Verdict(True, f"loaded and scored {result['rows']} profiles in a fresh process in {seconds:.2f} s", figures)


@dg.asset_check(asset=trained_lstm, partitions_def=daily_partitions, blocking=True)
def check_serving_smoke_test(context: dg.AssetCheckExecutionContext, storage: StorageResource, gate: GateResource) -> dg.AssetCheckResult:
    """The stored files load in a fresh process exactly as scoring loads them and score a batch in time."""
    store, version = _candidate(context, storage)
    result = run_smoke_test(store, version, storage.endpoint_url)
    store.write_json(version, SMOKE, result)
    return _result(smoke_verdict(result, gate.config()), version)


MODEL_IN_SERVICE = "model_in_service"

# The hand-off from training to scoring, as an edge the UI draws: validated_model(T)
# records a materialisation of this unpartitioned asset whenever it promotes a
# candidate, and batch_predictions depends on it (one model serves at a time).
model_in_service = dg.AssetSpec(
    MODEL_IN_SERVICE,
    deps=["validated_model"],
    group_name="training",
    kinds={"json"},
    owners=["team:ml"],
    tags={"stage": "validation"},
    description="The model that scores: models/serving.json, written atomically by validated_model when every blocking check on a candidate "
    "has passed (or by `consumer-assets models promote VERSION` for a version that passed). Its metadata names the version.",
)


@dg.asset(
    partitions_def=daily_partitions,
    group_name="training",
    automation_condition=dg.AutomationCondition.eager() & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    deps=[trained_lstm],
    kinds={"json"},
    owners=["team:ml"],
    tags={"stage": "validation"},
    code_version="1",
)
def validated_model(context: dg.AssetExecutionContext, storage: StorageResource, gate: GateResource) -> dg.MaterializeResult:
    """Promotes day T's candidate into service by writing ``models/serving.json`` atomically (model_in_service).

    Runs only after every blocking check on the candidate passed in the same run, and
    refuses by itself a candidate whose stored evaluation or smoke test fails the
    gate, so a hand-started or re-executed run cannot serve it either.
    """
    store, version = _candidate(context, storage)
    config = gate.config()
    try:
        evaluation = store.read_evaluation(version)
    except ModelLoadError as exc:
        raise dg.Failure(str(exc)) from exc
    verdicts = judge(evaluation, config)
    smoke = store.read_json(version, SMOKE)
    verdicts["check_serving_smoke_test"] = smoke_verdict(smoke, config) if smoke else Verdict(False, "the serving smoke test has not run on this candidate")
    failed = {name: v.reason for name, v in verdicts.items() if not v.passed}
    store.write_json(version, VERDICT, {"version": version, "passed": not failed, "failed": failed, "gate": config.to_json(), "run_id": context.run_id})
    if failed:
        serving = store.serving()
        raise dg.Failure(
            f"Refusing to serve {version}: "
            + "; ".join(f"{k}: {v}" for k, v in failed.items())
            + f". The model in service stays {serving['version'] if serving else 'none'}.",
            metadata={"version": version, **{k: v for k, v in failed.items()}},
        )
    previous = store.serving()
    primary = evaluation["targets"][0]
    record = store.promote(
        version,
        {
            "run_id": context.run_id,
            "partition": context.partition_key,
            "previous_version": previous["version"] if previous else None,
            "metrics": {k: evaluation["candidate"][primary][k] for k in ("auc", "mean_log_likelihood", "brier", "ece")},
            "test_days": evaluation["test_days"],
        },
    )
    context.log.info("serving %s (was %s)", version, record["previous_version"])
    context.log_event(
        dg.AssetMaterialization(
            MODEL_IN_SERVICE,
            metadata={"version": version, "promoted_by_partition": context.partition_key, "previous_version": record["previous_version"] or "none"},
        )
    )
    return dg.MaterializeResult(
        metadata={
            "version": version,
            "previous_version": record["previous_version"] or "none",
            "since": record["since"],
            "auc": record["metrics"]["auc"],
            "mean_log_likelihood": record["metrics"]["mean_log_likelihood"],
        }
    )


validation_checks = [*rule_checks, check_serving_smoke_test]
