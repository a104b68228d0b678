"""trained_lstm: a candidate model trained on matured snapshots, on a GPU when the launcher gives one."""

from datetime import date

import dagster as dg

from consumer_assets.asset_keys import HISTORIES, LABELS, TRAINED_LSTM
from consumer_assets.features.assets import daily_histories
from consumer_assets.features.resources import FeatureResource
from consumer_assets.metadata import count_table, plot_markdown
from consumer_assets.model.store import Candidate
from consumer_assets.partitions import daily_partitions, partition_day
from consumer_assets.plots import training_curves
from consumer_assets.storage.resources import StorageResource
from consumer_assets.timeline import Timeline
from consumer_assets.training.candidate import plan_training, train_candidate
from consumer_assets.training.gpu import GPU_OP_TAGS, GPU_POOL
from consumer_assets.training.resources import TrainingResource
from consumer_assets.training.split import NotEnoughDataError


def candidate_version(day: date, run_id: str) -> str:
    return f"lstm-{day:%Y%m%d}-{run_id[:8]}"


def matured_snapshots(timeline: Timeline) -> dg.TimeWindowPartitionMapping:
    """Lineage of training at T: the snapshots and labels it may read, T-H-span .. T-H (the code picks the matured
    ones among them)."""
    return dg.TimeWindowPartitionMapping(
        start_offset=-(timeline.label_horizon_days + timeline.training_span_days),
        end_offset=-timeline.label_horizon_days,
        allow_nonexistent_upstream_partitions=True,
    )


def training_asset(timeline: Timeline) -> dg.AssetsDefinition:
    """trained_lstm with its lineage drawn, and its training window read, from the code location's timeline."""

    @dg.asset(
        name=TRAINED_LSTM,
        partitions_def=daily_partitions,
        group_name="training",
        deps=[
            dg.AssetDep(daily_histories, partition_mapping=matured_snapshots(timeline)),
            dg.AssetDep(LABELS, partition_mapping=matured_snapshots(timeline)),
        ],
        io_manager_key="candidate_io_manager",
        kinds={"pytorch", "safetensors"},
        owners=["team:ml"],
        tags={"stage": "training", "compute": "gpu"},
        op_tags=GPU_OP_TAGS,
        pool=GPU_POOL,
        code_version="3",
    )
    def trained_lstm(
        context: dg.AssetExecutionContext,
        storage: StorageResource,
        training: TrainingResource,
        features: FeatureResource,
    ) -> dg.Output[Candidate]:
        """A candidate LSTM trained at day T on the snapshots whose labels matured by T.

        Saved as safetensors + JSON under ``models/candidates/<version>/``; its value, the
        candidate's version, goes to candidate_evaluation. It serves only after every
        blocking check on its evaluation has passed and validated_model promotes it.
        Warm-starts from the model in service when compatible; the metadata says which.
        """
        day = partition_day(context)
        root = storage.open()
        try:
            plan = plan_training(
                root,
                day,
                timeline,
                training.network_config(max_length=features.max_events),
                training.train_config(),
                training.vocabulary_limits(),
            )
        except NotEnoughDataError as exc:
            raise dg.Failure(f"{exc} ({HISTORIES} and {LABELS} under {root.uri})", allow_retries=False) from exc
        trained = train_candidate(
            root, plan, candidate_version(day, context.run_id), training.warm_start, context.log.info
        )
        result = trained.result
        best = result.history[result.best_epoch - 1]
        metadata = {
            "version": trained.version,
            "initialisation": result.initialisation,
            "device": result.device,
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "validation_auc": best["validation_auc"],
            "validation_log_loss": best["validation_log_loss"],
            "calibration": dg.MetadataValue.json(result.calibration_figures),
            "sequences_per_second": result.sequences_per_second,
            "batch_size": result.batch_size,
            "learning_rate": result.learning_rate,
            "training_seconds": result.seconds,
            "train_days": f"{plan.split.train_days[0]}..{plan.split.train_days[-1]}",
            "held_out_days": f"{plan.split.held_out_days[0]}..{plan.split.held_out_days[-1]}",
            "targets": dg.MetadataValue.json(list(plan.targets)),
            "vocabulary_sizes": count_table(trained.vocabulary.sizes(), "field", "tokens"),
            "training_curves": plot_markdown(training_curves(result.history), "training curves"),
            "path": dg.MetadataValue.path(root.path("models/candidates", trained.version)),
        }
        return dg.Output(Candidate(trained.version, context.run_id), metadata=metadata)

    return trained_lstm
