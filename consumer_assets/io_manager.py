"""IO managers: what an asset hands on is stored as plain data on the storage root, never pickled.

* ``PartitionIOManager``: the daily partitions the assets write themselves (atomically,
  in chunks or with Spark, under ``<dataset>/date=YYYY-MM-DD/``). A downstream asset
  that takes one as a parameter gets a :class:`StoredPartition`, a handle it reads as
  it needs (columns, chunks, Spark): the parameter, the edge and the read are one thing.
* ``ModelInServiceLoader``: the input manager of ``model_in_service``, the pointer
  ``models/serving.json``; the asset that takes it gets the served model, loaded and
  verified (files, gate verdict), or a clear failure when none serves.
* ``CandidateIOManager``: trained_lstm's value, the :class:`Candidate` a training
  day produced, recorded as ``models/by_partition/<day>.json``; candidate_evaluation
  loads it as its input.
* ``EvaluationIOManager``: candidate_evaluation's value, the evaluation, stored as
  ``evaluation.json`` beside the candidate; the blocking checks and validated_model
  load it as their input.
* ``JsonIOManager``: bound as the default ``io_manager``, so that any other value an
  asset or op returns lands on the storage root as JSON (``_values/...``), never
  pickled and never on a run pod's local disk; a value JSON cannot hold is refused.
"""

import json
from datetime import date

import dagster as dg

from consumer_assets.model.store import (
    EVALUATION,
    Candidate,
    LoadedModel,
    ModelLoadError,
    ModelStore,
    NoServingModelError,
)
from consumer_assets.storage.handle import StoredPartition
from consumer_assets.storage.resources import StorageResource
from consumer_assets.validation.evaluation import Evaluation


def dataset_name(asset_key: dg.AssetKey) -> str:
    return "/".join(asset_key.path)


def _partition(context: dg.OutputContext | dg.InputContext) -> str:
    if not context.has_asset_partitions:
        raise dg.DagsterInvariantViolationError(
            f"{context.asset_key.to_user_string()} is not partitioned; this IO manager stores daily partitions only."
        )
    return context.asset_partition_key


class PartitionIOManager(dg.ConfigurableIOManager):
    """Daily partitions written by their assets, handed on as lazy handles; see the module docstring."""

    storage: dg.ResourceDependency[StorageResource]

    def handle_output(self, context: dg.OutputContext, obj: None) -> None:
        if obj is not None:
            raise dg.DagsterInvariantViolationError(
                f"{context.step_key} returned a {type(obj).__name__}: a partitioned dataset writes its partition "
                "through the storage root and returns a MaterializeResult"
            )

    def load_input(self, context: dg.InputContext) -> StoredPartition:
        root = self.storage.open()
        handle = StoredPartition(root, dataset_name(context.asset_key), date.fromisoformat(_partition(context)))
        if not root.has_partition(handle.dataset, handle.day):
            raise dg.Failure(
                f"{handle.dataset} has no partition for {handle.day} under {root.uri}: materialise it first.",
                allow_retries=False,
            )
        return handle


def stored_input(asset_key: str) -> dg.AssetIn:
    """An asset input that arrives as a :class:`StoredPartition` of the same day, whoever stored it."""
    return dg.AssetIn(asset_key, input_manager_key="partition_io_manager")


class ModelInServiceLoader(dg.ConfigurableIOManager):
    """The model models/serving.json names, for the assets that score with it; see the module docstring."""

    storage: dg.ResourceDependency[StorageResource]

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        raise dg.DagsterInvariantViolationError("model_in_service is written by validated_model and promote_model_job")

    def load_input(self, context: dg.InputContext) -> LoadedModel:
        try:
            return ModelStore(self.storage.open()).load_serving()
        except (NoServingModelError, ModelLoadError) as exc:
            raise dg.Failure(str(exc), allow_retries=False) from exc


class CandidateIOManager(dg.ConfigurableIOManager):
    """trained_lstm's Candidate per training day, in the model store; see the module docstring."""

    storage: dg.ResourceDependency[StorageResource]

    def handle_output(self, context: dg.OutputContext, obj: Candidate) -> None:
        ModelStore(self.storage.open()).record_partition(_partition(context), obj)

    def load_input(self, context: dg.InputContext) -> Candidate:
        try:
            return ModelStore(self.storage.open()).candidate_for_partition(_partition(context))
        except ModelLoadError as exc:
            raise dg.Failure(str(exc)) from exc


class EvaluationIOManager(dg.ConfigurableIOManager):
    """candidate_evaluation's evaluation per training day, beside its candidate; see the module docstring."""

    storage: dg.ResourceDependency[StorageResource]

    def handle_output(self, context: dg.OutputContext, obj: Evaluation) -> None:
        store = ModelStore(self.storage.open())
        candidate = store.candidate_for_partition(_partition(context))
        if obj.version != candidate.version:
            raise dg.DagsterInvariantViolationError(
                f"evaluation of {obj.version} stored for day {_partition(context)}, whose candidate is "
                f"{candidate.version}"
            )
        store.write_json(candidate.version, EVALUATION, obj.to_json())

    def load_input(self, context: dg.InputContext) -> Evaluation:
        store = ModelStore(self.storage.open())
        try:
            return Evaluation.from_json(
                store.read_evaluation(store.candidate_for_partition(_partition(context)).version)
            )
        except ModelLoadError as exc:
            raise dg.Failure(str(exc)) from exc


class JsonIOManager(dg.ConfigurableIOManager):
    """The default IO manager: JSON on the storage root; see the module docstring."""

    storage: dg.ResourceDependency[StorageResource]

    @staticmethod
    def _key(context: dg.OutputContext | dg.InputContext) -> str:
        output = context if isinstance(context, dg.OutputContext) else context.upstream_output
        if output.has_asset_key:
            partition = output.asset_partition_key if output.has_asset_partitions else "value"
            return f"_values/{dataset_name(output.asset_key)}/{partition}.json"
        return f"_values/runs/{output.run_id}/{output.step_key}/{output.name}.json"

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        if obj is None:
            return
        try:
            body = json.dumps(obj.to_json() if hasattr(obj, "to_json") else obj)
        except TypeError as exc:
            raise dg.DagsterInvariantViolationError(
                f"{context.step_key} returned a {type(obj).__name__}, which is stored only as JSON (no pickle): return "
                "plain data, "
                "a MaterializeResult, or give the output an IO manager of its own"
            ) from exc
        self.storage.open().write_bytes(self._key(context), body.encode())

    def load_input(self, context: dg.InputContext):
        return self.storage.open().read_json(self._key(context))
