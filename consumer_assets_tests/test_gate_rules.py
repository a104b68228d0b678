"""Every gate rule on hand-made evaluations: real figures (metrics.py) of scores whose quality the test sets, no
training. The slow gate tests (test_validation.py) show the same rules on trained candidates."""

import json
from dataclasses import fields

import numpy as np
import pytest

from consumer_assets import metrics
from consumer_assets.cli import _gate_state
from consumer_assets.model.store import ModelStore
from consumer_assets.storage import StorageRoot
from consumer_assets.validation import gate
from consumer_assets.validation.evaluation import Comparison, Evaluation, Figures
from consumer_assets.validation.gate import PASS, REFUSE, RULES, TOO_LITTLE_DATA, GateConfig, Verdict, judge
from consumer_assets.validation.resources import GateResource

ROWS, PER_PROFILE = 4_000, 2
SMOKE_OK = {"loaded": True, "load_seconds": 0.4, "score_seconds": 0.1, "rows": 1000, "valid_scores": True}


def shop(rows: int = ROWS, rate_shift: float = -2.6, seed: int = 0):
    """Outcomes drawn from known probabilities: rows of profiles seen twice, about 8 % positive."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=rows)
    truth = 1 / (1 + np.exp(-(rate_shift + 1.2 * signal)))
    y = (rng.random(rows) < truth).astype(float)
    groups = np.repeat(np.arange(rows // PER_PROFILE), PER_PROFILE)[:rows]
    return truth, y, groups, rng


def evaluation_of(
    candidate: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    serving: np.ndarray | None = None,
    baselines: dict[str, np.ndarray] | None = None,
    slices: dict[str, np.ndarray] | None = None,
    sanity: dict | None = None,
    smoke: dict | None = SMOKE_OK,
) -> Evaluation:
    """An evaluation as evaluate.py builds it, from given scores instead of a trained model."""
    baselines = baselines if baselines is not None else {"logistic_regression": np.full(len(y), y.mean())}
    comparisons = {name: metrics.paired_differences(candidate, p, y, groups) for name, p in baselines.items()}
    served = None
    if serving is not None:
        served = {"version": "served-1", **metrics.summarise(serving, y, groups)}
        comparisons["serving"] = metrics.paired_differences(candidate, serving, y, groups)
    summaries = {name: metrics.summarise(p, y, groups) for name, p in baselines.items()}
    slice_entries = {}
    for name, mask in (slices or {}).items():
        entry = {"rows": int(mask.sum()), "positives": int(y[mask].sum())}
        entry["candidate"] = metrics.summarise(candidate[mask], y[mask], groups[mask])
        if serving is not None:
            entry["serving"] = metrics.auc(serving[mask], y[mask])
            entry["comparison"] = metrics.paired_differences(candidate[mask], serving[mask], y[mask], groups[mask])
        slice_entries[name] = entry
    return Evaluation.from_json(
        {
            "version": "candidate-1",
            "train_days": ["2026-11-01"],
            "test_days": ["2026-11-20", "2026-11-21"],
            "targets": ["order_any"],
            "test_data": {"rows": len(y), "positives": int(y.sum()), "profiles": len(np.unique(groups))},
            "candidate": {"order_any": metrics.summarise(candidate, y, groups)},
            "sanity": {
                "finite_weights": True,
                "finite_predictions": True,
                "prediction_std": float(np.std(candidate)),
                "distinct_predictions": len(np.unique(candidate)),
                **(sanity or {}),
            },
            "comparisons": comparisons,
            "serving": served,
            "baselines": summaries,
            "strongest_baseline": max(summaries, key=lambda name: summaries[name]["auc"]),
            "slices": slice_entries,
            "smoke": smoke,
        }
    )


def _noisy(truth: np.ndarray, rng, scale: float) -> np.ndarray:
    """The true probabilities blurred on the logit scale: a weaker model with the same base rate."""
    logit = np.log(truth / (1 - truth)) + rng.normal(scale=scale, size=len(truth))
    return 1 / (1 + np.exp(-logit))


def cases():
    """(rule, what the case shows, evaluation, expected outcome): a pass and a refusal for every rule, and the
    too-little-data outcome where the rule needs test rows."""
    truth, y, groups, rng = shop()
    weak = _noisy(truth, rng, 3.0)
    noise = rng.random(len(y))
    small_truth, small_y, small_groups, _ = shop(rows=300)
    active = np.arange(len(y)) < len(y) // 2
    tiny = np.arange(len(y)) < 60
    yield "check_value_thresholds", "the true probabilities", evaluation_of(truth, y, groups), PASS
    yield "check_value_thresholds", "random scores", evaluation_of(noise, y, groups), REFUSE
    yield "check_value_thresholds", "300 rows", evaluation_of(small_truth, small_y, small_groups), TOO_LITTLE_DATA
    yield "check_not_worse_than_serving", "the first model", evaluation_of(weak, y, groups), PASS
    yield "check_not_worse_than_serving", "as good as served", evaluation_of(truth, y, groups, serving=truth), PASS
    yield "check_not_worse_than_serving", "far worse than served", evaluation_of(weak, y, groups, serving=truth), REFUSE
    yield "check_beats_baselines", "beats the base rate", evaluation_of(truth, y, groups), PASS
    yield (
        "check_beats_baselines",
        "loses to a strong baseline",
        evaluation_of(weak, y, groups, baselines={"logistic_regression": truth, "random_forest": noise}),
        REFUSE,
    )
    yield "check_slices", "good on every slice", evaluation_of(truth, y, groups, slices={"active": active}), PASS
    blind = np.where(active, noise, truth)
    yield "check_slices", "random on one slice", evaluation_of(blind, y, groups, slices={"active": active}), REFUSE
    yield "check_slices", "a slice too small", evaluation_of(truth, y, groups, slices={"tiny": tiny}), PASS
    yield "check_sanity", "calibrated", evaluation_of(truth, y, groups), PASS
    yield "check_sanity", "twice the rate", evaluation_of(np.minimum(2 * truth, 1), y, groups), REFUSE
    yield "check_sanity", "NaN weights", evaluation_of(truth, y, groups, sanity={"finite_weights": False}), REFUSE
    constant = np.full(len(y), y.mean())
    yield "check_sanity", "constant", evaluation_of(constant, y, groups), REFUSE
    yield "check_sanity", "300 rows", evaluation_of(small_truth, small_y, small_groups), TOO_LITTLE_DATA
    yield "check_serving_smoke_test", "loads and scores", evaluation_of(truth, y, groups), PASS
    yield "check_serving_smoke_test", "not run", evaluation_of(truth, y, groups, smoke=None), REFUSE
    failed = {"loaded": False, "error": "safetensors header", "exit_code": 1}
    yield "check_serving_smoke_test", "does not load", evaluation_of(truth, y, groups, smoke=failed), REFUSE
    slow = {**SMOKE_OK, "score_seconds": 9.0}
    yield "check_serving_smoke_test", "too slow", evaluation_of(truth, y, groups, smoke=slow), REFUSE


CASES = list(cases())


@pytest.mark.parametrize(("name", "case", "evaluation", "outcome"), CASES, ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_each_rule_on_a_hand_made_evaluation(name, case, evaluation, outcome):
    verdict = RULES[name].judge(evaluation, GateConfig())
    assert verdict.outcome == outcome, verdict.reason
    assert verdict.passed == (outcome == PASS)
    assert verdict.reason


def test_every_rule_has_a_passing_and_a_refusing_case():
    outcomes = {(name, outcome) for name, _, _, outcome in CASES}
    assert {(name, o) for name in RULES for o in (PASS, REFUSE)} <= outcomes


def test_a_small_slice_is_named_not_passed_silently():
    truth, y, groups, _ = shop()
    tiny = np.arange(len(y)) < 60
    verdict = RULES["check_slices"].judge(evaluation_of(truth, y, groups, slices={"tiny": tiny}), GateConfig())
    assert "too small to judge: tiny" in verdict.reason and verdict.figures["too_small_to_judge"].startswith("tiny")


def test_too_little_data_says_how_many_rows_a_verdict_needs():
    truth, y, groups, _ = shop(rows=300)
    verdict = judge(evaluation_of(truth, y, groups), GateConfig())["check_value_thresholds"]
    rate = y.mean()
    assert verdict.figures["rows_needed"] == int(np.ceil(100 / min(rate, 1 - rate)))
    assert f"{y.sum():.0f} positives" in verdict.reason


def test_a_load_error_fails_every_rule():
    broken = Evaluation("candidate-1", [], ["2026-11-20"], load_error="weights.safetensors: truncated")
    verdicts = judge(broken, GateConfig())
    assert set(verdicts) == set(RULES)
    assert not any(v.passed for v in verdicts.values())


def test_a_threshold_moves_the_verdict():
    """The settings reach the rules: a floor above the candidate's interval refuses what the default passes."""
    truth, y, groups, _ = shop()
    evaluation = evaluation_of(truth, y, groups)
    assert RULES["check_value_thresholds"].judge(evaluation, GateConfig()).passed
    strict = GateConfig(min_auc=evaluation.primary.auc_ci_high + 0.01)
    assert not RULES["check_value_thresholds"].judge(evaluation, strict).passed


def test_adding_a_rule_is_one_declaration(monkeypatch):
    """A declared rule is judged with the others (so promotion requires it) and listed in the docs' table."""
    monkeypatch.setattr(gate, "RULES", dict(gate.RULES))

    @gate.rule("check_profiles", "Fewer than `min_positives` profiles were tested.", ("min_positives",))
    def enough_profiles(evaluation: Evaluation, config: GateConfig) -> Verdict:
        return Verdict(evaluation.test_data.profiles >= config.min_positives, "profiles counted")

    truth, y, groups, _ = shop(rows=100)
    assert gate.judge(evaluation_of(truth, y, groups), GateConfig())["check_profiles"].passed is False
    assert "| `check_profiles` | Fewer than `min_positives` profiles were tested. | `min_positives` (100) |" in (
        gate.rules_markdown()
    )
    with pytest.raises(ValueError, match="min_profiles"):
        gate.rule("check_other", "never", ("min_profiles",))(enough_profiles)


def test_the_resource_is_the_config_field_by_field():
    config_fields = {f.name: (f.default, f.metadata["description"]) for f in fields(GateConfig)}
    resource_fields = {name: (f.default, f.description) for name, f in GateResource.model_fields.items()}
    assert resource_fields == config_fields
    assert GateResource(min_auc=0.7, min_positives=10).config() == GateConfig(min_auc=0.7, min_positives=10)


def test_every_setting_is_read_by_a_rule():
    read = {name for declared in RULES.values() for name in declared.settings}
    assert read == {f.name for f in fields(GateConfig)}


def test_the_typed_figures_hold_every_figure_the_metrics_compute():
    """Figures and Comparison name every key summarise and paired_differences return, so none is dropped on the
    way into the evaluation (and JSON stored by either reads back the same)."""
    truth, y, groups, _ = shop(rows=400)
    summary, comparison = metrics.summarise(truth, y, groups), metrics.paired_differences(truth, truth, y, groups)
    assert set(summary) <= {f.name for f in fields(Figures)}
    assert set(comparison) <= {f.name for f in fields(Comparison)}
    evaluation = evaluation_of(truth, y, groups, serving=truth)
    stored = json.dumps(evaluation.to_json())  # as the evaluation IO manager stores it
    assert json.dumps(Evaluation.from_json(json.loads(stored)).to_json()) == stored
    assert isinstance(evaluation.serving, Figures) and evaluation.serving.version == "served-1"


def test_models_list_judges_a_stored_evaluation_that_has_no_verdict(tmp_path):
    """A candidate whose blocking checks stopped its run has no verdict: `models list` judges its evaluation now."""
    store = ModelStore(StorageRoot(str(tmp_path)))
    truth, y, groups, rng = shop()
    good, weak = evaluation_of(truth, y, groups), evaluation_of(_noisy(truth, rng, 3.0), y, groups, serving=truth)
    assert _gate_state(store, "good", json.loads(json.dumps(good.to_json()))) == "passed*"
    assert _gate_state(store, "weak", json.loads(json.dumps(weak.to_json()))) == "REFUSED*"
    assert _gate_state(store, "none", {}) == "not judged"
