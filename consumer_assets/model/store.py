"""Model candidates and the serving pointer, on the storage root. Models are data, never code.

A candidate is a folder ``models/candidates/<version>/`` of plain files:
``model.safetensors`` (weights), ``config.json`` (sizes), ``vocab.json``
(vocabularies), ``training.json`` (how it was trained) and, written last,
``manifest.json`` with the SHA-256 of each file. Loading parses JSON and reads
tensors, executes nothing, and refuses files that were changed after training or
that do not belong together, with a message that says which.

``models/serving.json`` names the version in service. Only promotion writes it, and
every promotion is also kept in ``models/serving_history/``.

``verdict.json`` is the record that binds a version, the SHA-256 of each of its files and
the gate's decision; every load for serving checks all three against the files it reads.
A verdict copied to another candidate, or another candidate's files (manifest and all)
put in a judged folder, do not serve: only a forged verdict with the new files' hashes
would, and that takes a writer of the model store (see the README's reliability section).
Versions are names of a safe character set, so no record can point outside the store.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from consumer_assets.model.encoding import Vocabulary
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.records import JsonRecord
from consumer_assets.storage import StorageError, StorageRoot

CANDIDATES = "models/candidates"
SERVING = "models/serving.json"
SERVING_HISTORY = "models/serving_history"
BY_PARTITION = "models/by_partition"
FILES = ("model.safetensors", "config.json", "vocab.json", "training.json")
EVALUATION = "evaluation.json"  # the candidate's figures on held-out data, written beside it by candidate_evaluation
VERDICT = "verdict.json"  # the gate's verdict, written beside a candidate by validated_model; serving requires "passed"


VERSION_PATTERN = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
)  # no slashes, no "..": a version is a folder name, never a path


def is_version(name: object) -> bool:
    """Whether ``name`` is a safe folder name for a version."""
    return isinstance(name, str) and VERSION_PATTERN.fullmatch(name) is not None and ".." not in name


def check_version(version: object) -> str:
    """``version`` if it is a safe folder name; a ModelLoadError naming the rule otherwise."""
    if not is_version(version):
        raise ModelLoadError(
            f"{str(version)[:80]!r} is not a model version (letters, digits, '.', '_', '-'; at most 128; no '..')"
        )
    return version


class ModelLoadError(RuntimeError):
    """A stored model cannot be used as it is; the message says what is wrong with which file."""


class NoServingModelError(RuntimeError):
    """No model has been promoted into service yet."""


@dataclass(frozen=True)
class Candidate(JsonRecord):
    """What a training partition produced: the saved version, and the run that trained it."""

    version: str
    run_id: str = ""


@dataclass(frozen=True)
class GateVerdict(JsonRecord):
    """The gate's decision on a candidate (``verdict.json``, written by validated_model); serving requires ``passed``
    and the very files it judged (``sha256``, bound by ``ModelStore.write_verdict``)."""

    version: str
    passed: bool
    failed: dict[str, str] = field(default_factory=dict)  # check name -> why it refused
    gate: dict = field(default_factory=dict)  # the thresholds it was judged with
    run_id: str = ""
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> SHA-256 of the files judged


@dataclass(frozen=True)
class ServingRecord(JsonRecord):
    """``models/serving.json``: the version in service, since when, and what promoted it."""

    version: str
    since: str
    previous_version: str | None = None
    run_id: str | None = None  # the run of validated_model that promoted it
    partition: str | None = None
    metrics: dict = field(default_factory=dict)  # its test figures at promotion
    test_days: list[str] = field(default_factory=list)
    promoted_by: str | None = None  # e.g. the CLI, for a rollback
    reason: str | None = None


@dataclass
class LoadedModel:
    version: str
    config: ModelConfig
    vocabulary: Vocabulary
    network: ConsumerLSTM
    training: dict


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json_bytes(value: dict) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode()


class ModelStore:
    def __init__(self, root: StorageRoot):
        self.root = root

    def _key(self, version: str, name: str) -> str:
        return f"{CANDIDATES}/{check_version(version)}/{name}"

    def versions(self) -> list[str]:
        """Complete candidates (with a manifest), oldest first by name."""
        return [
            v
            for v in self.root.list_dirs(CANDIDATES)
            if is_version(v) and self.root.exists(self._key(v, "manifest.json"))
        ]

    def save_candidate(self, version: str, network: ConsumerLSTM, vocabulary: Vocabulary, training: dict) -> None:
        if self.root.exists(self._key(version, "manifest.json")):
            raise StorageError(f"candidate {version} exists already; versions are never overwritten")
        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in network.state_dict().items()}
        contents = {
            "model.safetensors": save_tensors(tensors, metadata={"version": version}),
            "config.json": _json_bytes(network.config.to_json()),
            "vocab.json": _json_bytes(vocabulary.to_json()),
            "training.json": _json_bytes(training),
        }
        for name, data in contents.items():
            self.root.write_bytes(self._key(version, name), data)
        manifest = {
            "version": version,
            "sha256": {name: _sha256(data) for name, data in contents.items()},
            "saved_at": datetime.now(UTC).isoformat(),
        }
        self.root.write_bytes(self._key(version, "manifest.json"), _json_bytes(manifest))

    def _read_verified(self, version: str) -> dict[str, bytes]:
        if not self.root.exists(self._key(version, "manifest.json")):
            known = ", ".join(self.versions()[-5:]) or "none"
            raise ModelLoadError(
                f"No complete candidate {version!r} under {self.root.uri}/{CANDIDATES} (latest: {known})"
            )
        try:
            manifest = json.loads(self.root.read_bytes(self._key(version, "manifest.json")))
        except ValueError as exc:
            raise ModelLoadError(f"{version}: manifest.json is not valid JSON ({exc}); refusing to load it") from exc
        if manifest.get("version") != version:
            raise ModelLoadError(
                f"the folder of {version} holds the files of {manifest.get('version')!r} (its manifest.json says so); "
                "refusing to load it under another name"
            )
        contents = {}
        for name in FILES:
            try:
                data = self.root.read_bytes(self._key(version, name))
            except StorageError as exc:
                raise ModelLoadError(f"{version}: {name} is missing") from exc
            if _sha256(data) != manifest["sha256"].get(name):
                raise ModelLoadError(
                    f"{version}: {name} was changed after training (SHA-256 differs from manifest.json); refusing to "
                    "load it"
                )
            contents[name] = data
        return contents

    def load(self, version: str) -> LoadedModel:
        """Load a candidate for inference (eval mode, CPU); every file checked first."""
        return self._loaded(version, self._read_verified(version))

    def _loaded(self, version: str, contents: dict[str, bytes]) -> LoadedModel:
        try:
            config = ModelConfig.from_json(json.loads(contents["config.json"]))
            vocabulary = Vocabulary.from_json(json.loads(contents["vocab.json"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{version}: config.json or vocab.json is not valid: {exc}") from exc
        try:
            tensors = load_tensors(contents["model.safetensors"])
        except (SafetensorError, ValueError) as exc:
            raise ModelLoadError(f"{version}: model.safetensors is not a readable safetensors file: {exc}") from exc
        network = ConsumerLSTM.for_vocabulary(config, vocabulary)
        check_weights_match(network, tensors, version)
        network.load_state_dict(tensors)
        network.eval()
        return LoadedModel(version, config, vocabulary, network, json.loads(contents["training.json"]))

    def read_vocabulary(self, version: str) -> Vocabulary | None:
        """A version's vocabularies alone, without its weights (monitoring's coverage of the day's articles)."""
        data = self.read_json(version, "vocab.json")
        return Vocabulary.from_json(data) if data is not None else None

    def read_training(self, version: str) -> dict:
        return json.loads(self.root.read_bytes(self._key(version, "training.json")))

    # --- which candidate a training partition produced ---------------------------------

    def record_partition(self, day: str, candidate: Candidate) -> None:
        self.root.write_json(f"{BY_PARTITION}/{day}.json", candidate.to_json())

    def candidate_for_partition(self, day: str) -> Candidate:
        key = f"{BY_PARTITION}/{day}.json"
        if not self.root.exists(key):
            raise ModelLoadError(
                f"trained_lstm {day} has produced no candidate under {self.root.uri}: materialise trained_lstm {day} "
                "first"
            )
        return Candidate.from_json(self.root.read_json(key))

    # --- evaluation, verdicts and the serving pointer ------------------------------------

    def write_json(self, version: str, name: str, value: dict) -> None:
        self.root.write_bytes(self._key(version, name), _json_bytes(value))

    def read_json(self, version: str, name: str) -> dict | None:
        key = self._key(version, name)
        return json.loads(self.root.read_bytes(key)) if self.root.exists(key) else None

    def read_evaluation(self, version: str) -> dict:
        evaluation = self.read_json(version, EVALUATION)
        if evaluation is None:
            raise ModelLoadError(
                f"{version} has no {EVALUATION}: it was never evaluated (materialise candidate_evaluation for its "
                "training day)"
            )
        return evaluation

    def serving(self) -> ServingRecord | None:
        """The serving record, or None before the first promotion."""
        if not self.root.exists(SERVING):
            return None
        fix = (
            "put a validated version back with `consumer-assets models promote VERSION` "
            "(see `consumer-assets models list`)"
        )
        try:
            record = json.loads(self.root.read_bytes(SERVING))
        except ValueError as exc:
            raise ModelLoadError(f"{self.root.uri}/{SERVING} is not valid JSON ({exc}): {fix}") from exc
        if not isinstance(record, dict) or not isinstance(record.get("version"), str):
            raise ModelLoadError(f"{self.root.uri}/{SERVING} names no version: {fix}")
        if not is_version(record["version"]):
            raise ModelLoadError(
                f"{self.root.uri}/{SERVING} names {record['version'][:80]!r}, which is not a model version: {fix}"
            )
        return ServingRecord.from_json({"since": "", **record})

    def serving_version(self) -> str:
        record = self.serving()
        if record is None:
            raise NoServingModelError(
                f"No model in service under {self.root.uri} ({SERVING} is missing): materialise trained_lstm and "
                "validated_model first, or promote a validated version with `consumer-assets models promote`."
            )
        return record.version

    def write_verdict(self, verdict: GateVerdict) -> None:
        """Store the gate's decision bound to the hashes of the candidate's files as they are now (checked first). A
        refusal is stored even when the files no longer verify: it serves nothing either way, and says why."""
        try:
            hashes = {name: _sha256(data) for name, data in self._read_verified(verdict.version).items()}
        except ModelLoadError:
            if verdict.passed:
                raise
            hashes = {}
        self.write_json(verdict.version, VERDICT, replace(verdict, sha256=hashes).to_json())

    def read_verdict(self, version: str) -> GateVerdict | None:
        data = self.read_json(version, VERDICT)
        return None if data is None else GateVerdict.from_json(data)

    def servable(self, version: str) -> dict[str, bytes]:
        """The verified files of ``version`` if its verdict passed them, these very bytes; else a ModelLoadError saying
        why not."""
        verdict = self.read_verdict(version)
        contents = self._read_verified(version)
        if verdict is None:
            why = "the gate never judged it"
        elif verdict.version != version:
            why = f"its verdict.json is the verdict on {verdict.version!r}"
        elif not verdict.passed:
            why = "the gate refused it: " + "; ".join(f"{k}: {v}" for k, v in verdict.failed.items())
        elif verdict.sha256 != {name: _sha256(data) for name, data in contents.items()}:
            why = "its files are not the ones the gate judged (SHA-256 differs from verdict.json)"
        else:
            return contents
        raise ModelLoadError(
            f"refusing to serve {version}: {why}. Put a validated version back with `consumer-assets models promote "
            "VERSION` "
            "(`consumer-assets models list` shows each verdict)."
        )

    def load_for_serving(self, version: str) -> LoadedModel:
        """Load ``version`` only if the gate passed these files: an edited pointer, verdict or folder cannot serve a
        refused model."""
        return self._loaded(version, self.servable(version))

    def load_serving(self) -> LoadedModel:
        """The model in service, checked as ``load_for_serving`` checks it."""
        return self.load_for_serving(self.serving_version())

    def promote(self, version: str, **details) -> ServingRecord:
        """Point serving at ``version`` in one atomic write; the history keeps every promotion. ``details``:
        ServingRecord's other fields."""
        self.servable(version)
        now = datetime.now(UTC)
        record = ServingRecord(version=version, since=now.isoformat(timespec="seconds"), **details)
        body = _json_bytes(record.to_json())
        self.root.write_bytes(f"{SERVING_HISTORY}/{now:%Y%m%dT%H%M%S%f}-{version}.json", body)
        self.root.write_bytes(SERVING, body)
        return record

    def serving_history(self) -> list[ServingRecord]:
        return [
            ServingRecord.from_json(json.loads(self.root.read_bytes(key)))
            for key in self.root.list_files(SERVING_HISTORY, ".json")
        ]


def check_weights_match(network: ConsumerLSTM, tensors: dict[str, torch.Tensor], version: str) -> None:
    """Weights, config and vocabularies must describe the same network, tensor for tensor."""
    expected = {name: tuple(t.shape) for name, t in network.state_dict().items()}
    found = {name: tuple(t.shape) for name, t in tensors.items()}
    problems = [f"missing {n}" for n in sorted(expected.keys() - found.keys())]
    problems += [f"unexpected {n}" for n in sorted(found.keys() - expected.keys())]
    problems += [
        f"{n} has shape {found[n]} but config+vocab need {expected[n]}"
        for n in sorted(expected.keys() & found.keys())
        if found[n] != expected[n]
    ]
    if problems:
        raise ModelLoadError(f"{version}: weights do not match config.json and vocab.json: " + "; ".join(problems[:5]))
