"""The network, its encoding and its store: masking, round trips, refusals, warm start, determinism."""

import hashlib
import json

import numpy as np
import pyarrow as pa
import pytest
import torch

from consumer_assets.model.calibration import fit_platt
from consumer_assets.model.encoding import (
    CONTINUOUS,
    OOV,
    PAD,
    PROFILE,
    Vocabulary,
    encode,
    seconds_into_day,
    step_features,
)
from consumer_assets.model.network import ConsumerLSTM, ModelConfig
from consumer_assets.model.predict import score_table
from consumer_assets.model.store import GateVerdict, ModelLoadError, ModelStore, NoServingModelError
from consumer_assets.storage import StorageRoot
from consumer_assets.training.dataset import EncodedRows
from consumer_assets.training.train import TrainConfig, train, warm_start

VOCAB = Vocabulary(
    {
        "event_type": [PAD, OOV, "view", "add_to_cart", "order"],
        "article_id": [PAD, OOV, "a1", "a2", "a3"],
        "category_id": [PAD, OOV, "c1", "c2"],
        "brand_id": [PAD, OOV, "b1"],
    }
)
CONFIG = ModelConfig(
    targets=("order_any", "order_c1"),
    hidden_size=8,
    embedding_dims={"event_type": 2, "article_id": 3, "category_id": 2, "brand_id": 2},
)


def _histories(lengths: list[int], seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    types, articles = ["view", "add_to_cart", "order", "click"], ["a1", "a2", "a3", "a9"]

    def lists(choices, kind=str):
        return [[kind(rng.choice(choices)) for _ in range(n)] for n in lengths]

    return pa.table(
        {
            "profile_id": [f"p{i}" for i in range(len(lengths))],
            "length": lengths,
            "event_type": lists(types),
            "article_id": lists(articles),
            "category_id": lists(["c1", "c2"]),
            "brand_id": lists(["b1", "b2"]),
            "price": [[float(rng.uniform(5, 50)) for _ in range(n)] for n in lengths],
            "dt_prev_s": [[float(rng.uniform(0, 1e4)) for _ in range(n)] for n in lengths],
            "dt_cutoff_s": [[float(rng.uniform(0, 1e6)) for _ in range(n)] for n in lengths],
            "hour": lists(range(24), int),
            "weekday": lists(range(7), int),
            **{name: [float(rng.integers(0, 50)) for _ in lengths] for name in PROFILE},
        }
    )


def _network(seed: int = 0) -> ConsumerLSTM:
    torch.manual_seed(seed)
    return ConsumerLSTM.for_vocabulary(CONFIG, VOCAB).eval()


def test_vocabulary_maps_unknown_and_null_ids_to_oov():
    assert VOCAB.lookup("article_id", pa.array(["a2", "zzz", None])).tolist() == [3, 1, 1]


def test_encoding_keeps_the_last_events_and_pads_at_the_end():
    table = _histories([3, 7, 0])
    batch = encode(table, VOCAB, max_length=5)
    assert batch.categorical.shape == (3, 5, 4)
    assert batch.lengths.tolist() == [3, 5, 1]  # an empty history still gets one step
    assert (batch.categorical[0, 3:] == 0).all()  # padding
    last_type = table.column("event_type")[1].as_py()[-1]
    assert batch.categorical[1, 4, 0].item() == VOCAB.lookup("event_type", pa.array([last_type]))[0]
    assert (batch.categorical[2] == 0).all()


def test_step_inputs_mark_new_days_and_sessions_on_the_day_scale():
    # gaps: none (first event), 5 min, 2 h within the day, 10 min across midnight, 3 days
    gaps = np.array([0.0, 300.0, 7_200.0, 600.0, 3 * 86_400.0])
    since_midnight = np.array([50_000.0, 50_300.0, 57_500.0, 300.0, 300.0])
    features = step_features(gaps, np.zeros(5), np.zeros(5), np.zeros(5), since_midnight, np.array([0, 1, 1, 0, 1]))
    column = {name: features[:, k] for k, name in enumerate(CONTINUOUS)}
    assert column["new_day"].tolist() == [0, 0, 0, 1, 1]
    assert column["new_session"].tolist() == [0, 0, 1, 0, 1]
    assert column["days_prev"][4] == pytest.approx(3 / 30)  # linear in days: 3 days apart from 1 day as 1 from 0
    assert (column["day_step"] == 0).all() and column["same_category"].tolist() == [0, 1, 1, 0, 1]
    # In a batch, an event is in the same category as the one before it in the row (never the first).
    table = _histories([6], seed=5)
    batch = encode(table, VOCAB, max_length=10)
    categories = table.column("category_id")[0].as_py()
    expected = [0.0] + [float(a == b) for a, b in zip(categories[1:], categories[:-1])]
    assert batch.continuous[0, :6, CONTINUOUS.index("same_category")].tolist() == expected and 0 < sum(expected) < 5
    # The batch derives the time since midnight from the distance to the cut-off (a midnight).
    assert seconds_into_day(np.array([1.0, 86_400.0, 86_400.0 + 3_600.0])).tolist() == [86_399.0, 0.0, 82_800.0]


def test_padding_never_changes_a_prediction():
    network = _network()
    table = _histories([4, 9, 2])
    alone = [network.predict_proba(encode(table.slice(i, 1), VOCAB, 20)) for i in range(3)]
    together = network.predict_proba(encode(table, VOCAB, 20))  # rows 0 and 2 padded to 9
    assert torch.allclose(torch.cat(alone), together, atol=1e-6)
    wide = encode(table, VOCAB, 20)
    wider = type(wide)(
        torch.nn.functional.pad(wide.categorical, (0, 0, 0, 6)),
        torch.nn.functional.pad(wide.continuous, (0, 0, 0, 6)),
        wide.profile,
        wide.lengths,
    )
    assert torch.allclose(network.predict_proba(wider), together, atol=1e-6)


def test_save_load_round_trip_gives_identical_predictions(tmp_path):
    store = ModelStore(StorageRoot(str(tmp_path)))
    network = _network(seed=3)
    store.save_candidate("v1", network, VOCAB, {"note": "test"})
    loaded = store.load("v1")
    batch = encode(_histories([5, 1, 12]), VOCAB, 10)
    assert torch.equal(loaded.network.predict_proba(batch), network.predict_proba(batch))
    assert loaded.config == CONFIG and loaded.vocabulary.tokens == VOCAB.tokens
    assert sorted(p.name for p in (tmp_path / "models/candidates/v1").iterdir()) == [
        "config.json",
        "manifest.json",
        "model.safetensors",
        "training.json",
        "vocab.json",
    ]
    with pytest.raises(Exception, match="never overwritten"):
        store.save_candidate("v1", network, VOCAB, {})


def test_a_corrupted_weights_file_is_refused(tmp_path):
    root = StorageRoot(str(tmp_path))
    store = ModelStore(root)
    store.save_candidate("v1", _network(), VOCAB, {})
    path = tmp_path / "models/candidates/v1/model.safetensors"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelLoadError, match="model.safetensors was changed after training"):
        store.load("v1")


def test_weights_that_do_not_match_config_and_vocabulary_are_refused(tmp_path):
    root = StorageRoot(str(tmp_path))
    store = ModelStore(root)
    store.save_candidate("v1", _network(), VOCAB, {})
    # Re-sign a config with a bigger hidden size, as a careless hand edit with a fixed manifest would.
    folder = tmp_path / "models/candidates/v1"
    config = json.loads((folder / "config.json").read_text())
    config["hidden_size"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"]["config.json"] = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ModelLoadError,
        match=r"weights do not match config.json and vocab.json: .*lstm.weight_hh_l0 has shape \(32, 8\) but "
        r"config\+vocab need \(64, 16\)",
    ):
        store.load("v1")


def test_a_missing_candidate_and_a_missing_serving_model_say_so(tmp_path):
    store = ModelStore(StorageRoot(str(tmp_path)))
    with pytest.raises(ModelLoadError, match="No complete candidate 'v9'"):
        store.load("v9")
    with pytest.raises(NoServingModelError, match="No model in service"):
        store.serving_version()


def test_serving_trusts_no_name_only_a_verdict_and_a_manifest(tmp_path):
    root = StorageRoot(str(tmp_path))
    store = ModelStore(root)
    store.save_candidate("v1", _network(), VOCAB, {})
    store.save_candidate("v2", _network(seed=1), VOCAB, {})
    with pytest.raises(ModelLoadError, match="the gate never judged it"):
        store.promote("v1", run_id="by hand")
    root.write_json(
        "models/serving.json", {"version": "v1", "since": "by hand"}
    )  # serving.json pointed at a model the gate never saw
    with pytest.raises(
        ModelLoadError,
        match=r"refusing to serve v1: the gate never judged it\. .*consumer-assets models promote VERSION",
    ):
        store.load_serving()
    store.write_verdict(GateVerdict("v1", False, {"check_beats_baselines": "worse than random_forest"}))
    with pytest.raises(ModelLoadError, match="the gate refused it: check_beats_baselines: worse than random_forest"):
        store.load_serving()
    store.write_verdict(GateVerdict("v1", True))
    assert store.load_serving().version == "v1"
    # Another candidate's files, manifest and all, copied under a third name, do not load as that name.
    for path in (tmp_path / "models/candidates/v2").iterdir():
        (tmp_path / "models/candidates/v3").mkdir(exist_ok=True)
        (tmp_path / "models/candidates/v3" / path.name).write_bytes(path.read_bytes())
    with pytest.raises(ModelLoadError, match="the folder of v3 holds the files of 'v2'"):
        store.load("v3")
    for text, message in (
        ("{not json", "is not valid JSON"),
        ('{"since": "yesterday"}', "names no version"),
        ('{"version": "../../../../x"}', "is not a model version"),
    ):
        (tmp_path / "models/serving.json").write_text(text)
        with pytest.raises(ModelLoadError, match=f"{message}.*consumer-assets models promote VERSION"):
            store.load_serving()


def test_warm_start_with_a_grown_vocabulary_keeps_what_was_learnt(tmp_path):
    store = ModelStore(StorageRoot(str(tmp_path)))
    old = _network(seed=5)
    store.save_candidate("v1", old, VOCAB, {})
    grown = Vocabulary({**VOCAB.tokens, "article_id": [PAD, OOV, "a4", "a2", "a1", "a3"]})  # a new id, a new order
    new = ConsumerLSTM.for_vocabulary(CONFIG, grown).eval()
    assert warm_start(new, grown, store.load("v1")) is None
    assert torch.equal(new.embeddings["article_id"].weight[4], old.embeddings["article_id"].weight[2])  # a1
    assert torch.equal(new.embeddings["article_id"].weight[3], old.embeddings["article_id"].weight[3])  # a2
    table = _histories([6, 3]).set_column(
        3, "article_id", pa.array([["a1", "a2", "a3", "a1", "a2", "a3"], ["a3", "a3", "a1"]])
    )
    assert torch.allclose(
        new.predict_proba(encode(table, grown, 10)), old.predict_proba(encode(table, VOCAB, 10)), atol=1e-6
    )


def test_warm_start_refuses_an_incompatible_model(tmp_path):
    store = ModelStore(StorageRoot(str(tmp_path)))
    store.save_candidate("v1", _network(), VOCAB, {})
    other = ConsumerLSTM.for_vocabulary(
        ModelConfig(targets=("order_any",), hidden_size=8, embedding_dims=CONFIG.embedding_dims), VOCAB
    )
    assert "targets differs" in warm_start(other, VOCAB, store.load("v1"))


def _toy_rows(seed: int, rows: int = 256) -> EncodedRows:
    """Sequences whose label is whether a cart add came last: learnable only from the sequence."""
    table = _histories([int(n) for n in np.random.default_rng(seed).integers(1, 12, rows)], seed)
    last = np.array([types[-1] == "add_to_cart" for types in table.column("event_type").to_pylist()], np.float32)
    labels = np.stack([last, last], axis=1)
    return EncodedRows.encode(((table.slice(i, 64), labels[i : i + 64]) for i in range(0, rows, 64)), VOCAB, 12)


def test_training_is_deterministic_on_cpu_and_learns_from_the_sequence():
    train_batches, validation = _toy_rows(1, 512), _toy_rows(2)
    config = TrainConfig(max_epochs=6, patience=6, learning_rate=1e-2, batch_size=64, seed=7, device="cpu")
    first = train(train_batches, validation, CONFIG, VOCAB, config, log=lambda _: None)
    second = train(train_batches, validation, CONFIG, VOCAB, config, log=lambda _: None)
    for a, b in zip(first.network.state_dict().values(), second.network.state_dict().values()):
        assert torch.equal(a, b)
    assert first.history[-1]["validation_auc"] > 0.9
    assert first.initialisation == "cold start: no model in service"
    # Calibration is fitted on the validation rows: at the maximum-likelihood fit the mean prediction equals the
    # observed rate.
    figures = first.calibration_figures
    assert figures["fitted_on_rows"] == 256
    assert figures["mean_prediction_after"] == pytest.approx(figures["observed_rate"], abs=1e-4)
    assert figures["log_likelihood_after"] >= figures["log_likelihood_before"] - 1e-9
    assert first.network.calibration_scale.tolist() == pytest.approx(list(first.calibration.scale))


def test_platt_scaling_recovers_a_known_distortion():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 1.5, (40_000, 2))
    truth = 1 / (1 + np.exp(-(0.5 * logits - 1.0)))  # the model is over-confident and too high
    labels = (rng.random(truth.shape) < truth).astype(float)
    labels[:, 1] = 0.0  # a target without positives keeps the identity
    scaling = fit_platt(logits, labels)
    assert scaling.scale[0] == pytest.approx(0.5, abs=0.03) and scaling.bias[0] == pytest.approx(-1.0, abs=0.04)
    assert (scaling.scale[1], scaling.bias[1]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="must both be"):
        fit_platt(logits[:, 0], labels[:, 0])


def test_calibration_is_stored_with_the_weights_and_applied_when_scoring(tmp_path):
    store = ModelStore(StorageRoot(str(tmp_path)))
    network = _network(seed=4)
    table = _histories([5, 1, 12, 7])
    batch = encode(table, VOCAB, CONFIG.max_length)
    identity = network.predict_proba(batch)
    with torch.no_grad():
        network.calibration_scale.copy_(torch.tensor([0.5, 2.0]))
        network.calibration_bias.copy_(torch.tensor([-1.0, 0.3]))
    calibrated = network.predict_proba(batch)
    logits = network(batch.categorical, batch.continuous, batch.profile, batch.lengths)
    assert torch.allclose(calibrated, torch.sigmoid(logits * torch.tensor([0.5, 2.0]) + torch.tensor([-1.0, 0.3])))
    assert not torch.allclose(calibrated, identity)
    store.save_candidate("v1", network, VOCAB, {})
    loaded = store.load("v1")
    assert loaded.network.calibration_scale.tolist() == [0.5, 2.0]
    # The path every scorer takes (evaluation, smoke test, batch, Spark) gives the calibrated scores.
    assert np.allclose(score_table(loaded, table), calibrated.detach().numpy(), atol=1e-6)


def test_a_refused_model_cannot_serve_by_editing_files_short_of_forging_its_verdict(tmp_path):
    """The issue's two edits: a passed verdict copied to a refused candidate; a refused candidate's files in a passed
    folder."""
    root = StorageRoot(str(tmp_path))
    store = ModelStore(root)
    store.save_candidate("good", _network(), VOCAB, {})
    store.save_candidate("bad", _network(seed=1), VOCAB, {"learning_rate": 0})
    store.write_verdict(GateVerdict("good", True))
    store.write_verdict(GateVerdict("bad", False, {"check_value_thresholds": "AUC 0.50"}))
    store.promote("good", run_id="validated_model")
    assert store.load_serving().version == "good"
    candidates = tmp_path / "models/candidates"
    good_verdict = (candidates / "good/verdict.json").read_bytes()

    # 1. The passed verdict copied into the refused candidate's folder (as is, then with its version edited).
    (candidates / "bad/verdict.json").write_bytes(good_verdict)
    root.write_json("models/serving.json", {"version": "bad"})
    with pytest.raises(ModelLoadError, match="refusing to serve bad: its verdict.json is the verdict on 'good'"):
        store.load_serving()
    (candidates / "bad/verdict.json").write_text(good_verdict.decode().replace('"version": "good"', '"version": "bad"'))
    with pytest.raises(ModelLoadError, match="refusing to serve bad: its files are not the ones the gate judged"):
        store.load_serving()

    # 2. The refused candidate's files and manifest put into the served folder, the manifest's version edited.
    for name in ("model.safetensors", "config.json", "vocab.json", "training.json"):
        (candidates / "good" / name).write_bytes((candidates / "bad" / name).read_bytes())
    manifest = json.loads((candidates / "bad/manifest.json").read_text())
    (candidates / "good/manifest.json").write_text(json.dumps({**manifest, "version": "good"}))
    root.write_json("models/serving.json", {"version": "good"})
    assert store.load("good").training == {"learning_rate": 0}  # the files agree with their manifest ...
    with pytest.raises(ModelLoadError, match="refusing to serve good: its files are not the ones the gate judged"):
        store.load_serving()  # ... but not with the verdict
    with pytest.raises(ModelLoadError, match="refusing to serve good"):
        store.promote("good")


@pytest.mark.parametrize("version", ["../../../../x", "a/b", "..", "", "x" * 200, "v\u0000", "/etc"])
def test_a_version_is_a_folder_name_never_a_path(tmp_path, version):
    store = ModelStore(StorageRoot(str(tmp_path / "root")))
    (tmp_path / "x").mkdir()
    with pytest.raises(ModelLoadError, match="is not a model version"):
        store.load(version)
