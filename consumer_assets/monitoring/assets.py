"""monitoring_stats: the day's input, its predictions, and how earlier predictions fared, with alerting checks.

The checks are not blocking: drift is a reason to look, not to stop scoring. Their
ERROR results are what the alert sensor forwards.
"""

from datetime import timedelta

import dagster as dg

from consumer_assets.asset_keys import EXPLANATIONS, LABELS, MONITORING
from consumer_assets.features.assets import daily_histories
from consumer_assets.features.resources import FeatureResource
from consumer_assets.ingest.assets import raw_events
from consumer_assets.metadata import count_table, png_markdown
from consumer_assets.monitoring.daily import (
    DayMonitoring,
    MonitoringInputError,
    drift_table,
    monitor_day,
    realised_series,
)
from consumer_assets.monitoring.report import html_report, rendered_plots, score_buckets
from consumer_assets.monitoring.resources import MonitoringResource
from consumer_assets.partitions import daily_partitions, partition_day
from consumer_assets.serving.assets import batch_predictions, score_explanations
from consumer_assets.serving.explain import attribution_drift
from consumer_assets.serving.resources import ExplanationResource
from consumer_assets.storage.resources import STORAGE_RETRY, StorageResource
from consumer_assets.timeline import Timeline


def monitoring_asset(timeline: Timeline) -> dg.AssetsDefinition:
    """monitoring_stats, reading (and drawn as reading) the labels of the scored day that matured H days ago."""
    matured_labels = dg.TimeWindowPartitionMapping(
        start_offset=-timeline.label_horizon_days,
        end_offset=-timeline.label_horizon_days,
        allow_nonexistent_upstream_partitions=True,
    )

    @dg.asset(
        name=MONITORING,
        io_manager_key="partition_io_manager",
        partitions_def=daily_partitions,
        retry_policy=STORAGE_RETRY,
        group_name="monitoring",
        deps=[raw_events, daily_histories, batch_predictions, dg.AssetDep(LABELS, partition_mapping=matured_labels)],
        kinds={"parquet", "html"},
        owners=["team:ml"],
        tags={"stage": "monitoring"},
        code_version="1",
    )
    def monitoring_stats(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        features: FeatureResource,
        monitoring: MonitoringResource,
    ) -> dg.MaterializeResult:
        """Input and prediction drift of day D against the previous days, and earlier predictions against what happened.

        PSI per input feature (0.1/0.25 bands) and KS for continuous ones; the score
        distribution and mean predicted rate; for the newest scored day whose labels have
        matured (D-H, or D-H-1 in the daily flow), the realised AUC, log-likelihood,
        calibration, expected against realised orders and the top decile's lift and share
        of orders, with a time series over earlier days.
        """
        day = partition_day(context)
        root = storage.open()
        config = monitoring.config(features, timeline.label_horizon_days)
        try:
            found = monitor_day(root, day, config)
        except MonitoringInputError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from exc
        series = realised_series(root, day, found.realised, config)
        plots = rendered_plots(found, series)
        attachments = {"report.html": html_report(day, found, plots)} if monitoring.html_report else {}
        manifest = root.write_partition(
            MONITORING, day, drift_table(found), properties=found.to_json(), attachments=attachments
        )

        sketch = found.sketch
        metadata: dict = {
            "events": sketch["events"],
            "active_profiles": sketch["active_profiles"],
            "snapshot_profiles": sketch["profiles"],
            "reference_days": len(found.reference_days),
            "event_type_mix": count_table(sketch["features"]["event_type"]["counts"], "event type", "events"),
            "drift_features": manifest.rows,
        }
        for name, figure in found.articles.items():
            if isinstance(figure, dict) and figure["n"]:
                low, high = figure["interval_95"]
                metadata[f"events_{name}"] = dg.MetadataValue.text(
                    f"{figure['share']:.4f} ({low:.4f}-{high:.4f}) of {figure['n']:,} events"
                )
        alerting = [row for row in found.input_drift if row["alerting"]]
        if alerting:
            worst = max(alerting, key=lambda row: row["psi"])
            metadata["max_input_psi"] = worst["psi"]
            metadata["max_input_psi_feature"] = worst["feature"]
        if found.input_drift:
            metadata["input_psi"] = count_table(
                {row["feature"]: round(row["psi"], 4) for row in found.input_drift}, "feature", "PSI"
            )
        if found.prediction_drift:
            metadata["prediction_psi"] = found.prediction_drift["psi"]
        if sketch["scores"]:
            metadata["mean_predicted_rate"] = sketch["scores"]["sum"] / max(sketch["scores"]["n"], 1)
            metadata["score_distribution"] = count_table(score_buckets(sketch["scores"]), "p_order_any", "profiles")
        matured = found.realised
        if matured:
            metadata |= {
                f"realised_{name}": matured[name]
                for name in (
                    "auc",
                    "mean_log_likelihood",
                    "expected_orders",
                    "realised_orders",
                    "top_decile_lift",
                    "top_decile_share_of_orders",
                )
                if matured[name] is not None
            }
        for name, png in plots.items():
            metadata[f"{name}_plot"] = png_markdown(png, name)
        if attachments:
            metadata["report"] = dg.MetadataValue.path(root.path(root.partition_key(MONITORING, day), "report.html"))
        context.log.info(
            "%s: %d events, %d reference days, max input PSI %s, realised AUC %s",
            day,
            sketch["events"],
            len(found.reference_days),
            f"{metadata['max_input_psi']:.3f}" if "max_input_psi" in metadata else "n/a",
            f"{matured['auc']:.3f}" if matured else "not matured yet",
        )
        return dg.MaterializeResult(metadata=metadata)

    return monitoring_stats


def _stored(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> DayMonitoring:
    """What monitoring_stats stored for the checked day."""
    return DayMonitoring.from_json(storage.open().manifest(MONITORING, context.partition_key).properties)


def _psi_result(
    psi: float | None, feature: str | None, monitoring: MonitoringResource, metadata: dict
) -> dg.AssetCheckResult:
    if psi is None:
        return dg.AssetCheckResult(passed=True, metadata={**metadata, "note": "no reference yet"})
    severity = dg.AssetCheckSeverity.ERROR if psi > monitoring.psi_error else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=psi <= monitoring.psi_warn,
        severity=severity,
        metadata={**metadata, "psi": psi, "feature": feature or ""},
    )


@dg.asset_check(asset=MONITORING, partitions_def=daily_partitions)
def check_input_drift(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    """The largest PSI of an input feature against the reference: WARN above 0.1, ERROR above 0.25."""
    rows = [row for row in _stored(context, storage).input_drift if row["alerting"]]
    if not rows:
        return _psi_result(None, None, monitoring, {})
    worst = max(rows, key=lambda row: row["psi"])
    drifted = {row["feature"]: round(row["psi"], 4) for row in rows if row["psi"] > monitoring.psi_warn}
    return _psi_result(worst["psi"], worst["feature"], monitoring, {"drifted_features": dg.MetadataValue.json(drifted)})


@dg.asset_check(asset=MONITORING, partitions_def=daily_partitions)
def check_prediction_drift(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    """PSI of the day's scores against the reference window's: WARN above 0.1, ERROR above 0.25."""
    scores = _stored(context, storage).prediction_drift
    if scores is None:
        return _psi_result(None, None, monitoring, {})
    return _psi_result(
        scores["psi"],
        "p_order_any",
        monitoring,
        {"mean_predicted_rate": scores["mean"], "reference_mean": scores["reference_mean"]},
    )


@dg.asset_check(asset=MONITORING, partitions_def=daily_partitions)
def check_event_volume(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    """Events of the day against the reference daily mean: a collapse usually means broken tracking."""
    volume = _stored(context, storage).event_volume
    if volume is None or volume["ratio"] is None:
        return dg.AssetCheckResult(passed=True, metadata={"note": "no reference yet"})
    return dg.AssetCheckResult(
        passed=volume["ratio"] >= monitoring.min_volume_ratio,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={**volume, "min_ratio": monitoring.min_volume_ratio},
    )


def _matured(context: dg.AssetCheckExecutionContext, storage: StorageResource) -> dict | None:
    return _stored(context, storage).realised


def _too_few(matured: dict, monitoring: MonitoringResource) -> dg.AssetCheckResult | None:
    """A pass that says "too little data to judge" when the matured predictions hold too few orders (or non-orders)."""
    positives = matured.get("positives", 0)
    if (
        positives >= monitoring.min_realised_positives
        and matured["rows"] - positives >= monitoring.min_realised_positives
    ):
        return None
    note = (
        f"too little data to judge: {matured['rows']} matured predictions with {positives} orders "
        f"(needs {monitoring.min_realised_positives})"
    )
    return dg.AssetCheckResult(
        passed=True,
        description=note,
        metadata={"note": note, "rows": matured["rows"], "orders": positives, "scored_day": matured["scored_day"]},
    )


@dg.asset_check(asset=MONITORING, partitions_def=daily_partitions)
def check_realised_auc(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    """The AUC of the predictions made H days ago, now that their orders are known: ERROR when its 95 % interval lies
    below the floor."""
    matured = _matured(context, storage)
    if matured is None:
        return dg.AssetCheckResult(passed=True, metadata={"note": "no labelled predictions from H days ago yet"})
    if scarce := _too_few(matured, monitoring):
        return scarce
    auc, high = matured["auc"], matured["auc_ci_high"]
    return dg.AssetCheckResult(
        passed=high >= monitoring.min_realised_auc,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"realised AUC {auc:.3f} (95 % interval {matured['auc_ci_low']:.3f}-{high:.3f}) on "
        f"{matured['rows']} predictions with {matured['positives']} orders; floor {monitoring.min_realised_auc}",
        metadata={
            "realised_auc": auc,
            "realised_auc_ci_low": matured["auc_ci_low"],
            "realised_auc_ci_high": high,
            "floor": monitoring.min_realised_auc,
            "rows": matured["rows"],
            "orders": matured["positives"],
            "scored_day": matured["scored_day"],
        },
    )


@dg.asset_check(asset=MONITORING, partitions_def=daily_partitions)
def check_realised_rate(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, monitoring: MonitoringResource
) -> dg.AssetCheckResult:
    """Realised over predicted order rate of the predictions made H days ago: ERROR when its 95 % interval lies wholly
    outside the band."""
    matured = _matured(context, storage)
    if matured is None or matured["realised_over_predicted"] is None:
        return dg.AssetCheckResult(passed=True, metadata={"note": "no labelled predictions from H days ago yet"})
    if scarce := _too_few(matured, monitoring):
        return scarce
    ratio, ratio_low, ratio_high = (
        matured["realised_over_predicted"],
        matured["realised_over_predicted_ci_low"],
        matured["realised_over_predicted_ci_high"],
    )
    low, high = monitoring.min_realised_over_predicted, monitoring.max_realised_over_predicted
    return dg.AssetCheckResult(
        passed=not (ratio_high < low or ratio_low > high),
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"realised/predicted {ratio:.3f} (95 % interval {ratio_low:.3f}-{ratio_high:.3f}) on "
        f"{matured['rows']} predictions; band {low}-{high}",
        metadata={
            "realised_over_predicted": ratio,
            "realised_over_predicted_ci_low": ratio_low,
            "realised_over_predicted_ci_high": ratio_high,
            "band_low": low,
            "band_high": high,
            "expected_orders": matured["expected_orders"],
            "realised_orders": matured["realised_orders"],
            "rows": matured["rows"],
        },
    )


@dg.asset_check(asset=score_explanations, partitions_def=daily_partitions)
def check_attribution_drift(
    context: dg.AssetCheckExecutionContext, storage: StorageResource, explanations: ExplanationResource
) -> dg.AssetCheckResult:
    """What drives the scores, against the earlier days explained by the same model: WARN when an event type's share
    moves.

    Compares each event type's share of the total |contribution| with its mean over
    the reference days; a type is flagged only when the whole 95 % interval (profiles
    resampled) of the day's share lies beyond the tolerated shift. Another model
    explains differently by design, so only days of the same model version count.
    """
    root = storage.open()
    day = partition_day(context)
    version = root.manifest(EXPLANATIONS, day).properties["model_version"]
    reference = []
    for earlier in root.list_partitions(EXPLANATIONS):
        if day - timedelta(days=explanations.reference_days) <= earlier < day:
            properties = root.manifest(EXPLANATIONS, earlier).properties
            if properties["model_version"] == version:
                reference.append(properties["attribution_shares"])
    events = root.read_partition(EXPLANATIONS, day, columns=["profile_id", "event_type", "contribution"])
    drift = attribution_drift(events, reference, explanations.min_events_for_drift, explanations.attribution_shift_warn)
    metadata = {
        "model_version": version,
        "explained_events": drift["events"],
        "explained_profiles": drift["profiles"],
        "reference_days": drift["reference_days"],
    }
    if not drift["judged"]:
        return dg.AssetCheckResult(
            passed=True, description=f"not judged: {drift['reason']}", metadata={**metadata, "note": drift["reason"]}
        )
    table = dg.MetadataValue.table(
        records=[
            dg.TableRecord({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
            for row in drift["rows"]
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("event_type", "string"),
                *[
                    dg.TableColumn(c, "float")
                    for c in ("share", "share_ci_low", "share_ci_high", "reference_share", "shift")
                ],
            ]
        ),
    )
    flagged = ", ".join(drift["flagged"]) or "none"
    return dg.AssetCheckResult(
        passed=not drift["flagged"],
        severity=dg.AssetCheckSeverity.WARN,
        description=f"event types whose share of the attribution moved beyond {explanations.attribution_shift_warn}: "
        f"{flagged}",
        metadata={**metadata, "max_shift": drift["max_shift"], "flagged": flagged, "shares": table},
    )


monitoring_checks = [
    check_input_drift,
    check_prediction_drift,
    check_event_volume,
    check_realised_auc,
    check_realised_rate,
]
attribution_checks = [check_attribution_drift]  # on score_explanations
