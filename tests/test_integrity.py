"""The invariants behind the blocking checks on students, evaluations and labels: sound inputs pass,
each kind of damage is named."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import save as save_safetensors

from ops.shopbench.integrity import draft_problems, response_problems, score_problems
from ops.shopping.event_log import EVENT_TYPES
from ops.shopping.integrity import event_log_problems, rl_dataset_problems
from ops.tooluse.integrity import backend_problems, environment_problems, index_problems, policy_eval_problems
from ops.tooluse.sampling import NO_CALL, evaluation_sample
from ops.webdocs.integrity import agreement_problems, label_problems, nmi_problems
from training.webdocs.generative_student import ADAPTER_CONFIG, ADAPTER_WEIGHTS, STUDENT_CONFIG
from training.webdocs.integrity import non_finite_numbers, student_problems
from training.webdocs.mlp_filter import MLPConfig, save_mlp, train_mlp_filter

VOCABULARIES = {"topic": ["-1", "1", "2"]}


@pytest.fixture(scope="module")
def mlp_files() -> dict[str, bytes]:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 8)).astype(np.float32)
    labels = {"topic": [str(1 + int(v > 0)) for v in x[:, 0]]}
    config = MLPConfig(hidden_sizes=(8,), max_epochs=2, batch_size=16)
    return save_mlp(
        train_mlp_filter(
            x[:30], {"topic": labels["topic"][:30]}, x[30:], {"topic": labels["topic"][30:]}, VOCABULARIES, config
        )
    )


def test_a_trained_mlp_is_sound_and_damage_is_named(mlp_files):
    assert student_problems("mlp_filter", mlp_files) == []
    config = json.loads(mlp_files["config.json"])
    config["history"][0]["val_loss"] = math.nan
    broken = {**mlp_files, "config.json": json.dumps(config).encode()}
    assert student_problems("mlp_filter", broken) == ["training metric history[0].val_loss is not finite"]
    assert student_problems("mlp_filter", {"config.json": mlp_files["config.json"]}) == [
        "does not load: file 'model.safetensors' is missing"
    ]
    truncated = {**mlp_files, "model.safetensors": mlp_files["model.safetensors"][:100]}
    assert student_problems("mlp_filter", truncated)[0].startswith("does not load: ")
    with pytest.raises(ValueError, match="unknown student kind"):
        student_problems("svm", mlp_files)


def test_generative_adapter_with_a_nan_weight_is_refused():
    student = {"metrics": [{"epoch": 1, "train_loss": 1.5, "val_loss": 1.2}], "config": {}, "best_epoch": 1}
    files = {
        STUDENT_CONFIG: json.dumps(student).encode(),
        ADAPTER_CONFIG: b"{}",
        ADAPTER_WEIGHTS: save_safetensors({"lora_A": torch.ones(2, 2), "lora_B": torch.zeros(2, 2)}),
    }
    assert student_problems("distilled_classifier", files) == []
    files[ADAPTER_WEIGHTS] = save_safetensors({"lora_A": torch.tensor([[1.0, math.inf]])})
    assert student_problems("distilled_classifier", files) == ["adapter weight lora_A is not finite"]


def test_non_finite_numbers_are_found_anywhere():
    assert non_finite_numbers({"a": [1, {"b": math.inf}], "c": True, "d": "nan"}) == ["a[1].b"]


def _labels(doc_ids: list[str], probs: list[list[float]], primary: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"doc_id": doc_ids, "topic__primary": primary, "topic__probs": probs},
        schema={"doc_id": pl.String, "topic__primary": pl.String, "topic__probs": pl.List(pl.Float32)},
    )


def test_label_problems():
    sound = _labels(["a", "b"], [[0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], ["1", "2"])
    assert label_problems(sound, ["a", "b"], VOCABULARIES) == []
    assert label_problems(sound, ["a", "b", "c"], VOCABULARIES) == [
        "2 label rows for 3 documents (1 missing, 0 unexpected)"
    ]
    unnormalised = _labels(["a", "b"], [[0.5, 0.8, 0.1], [0.2, 0.2, 0.6]], ["1", "7"])
    assert label_problems(unnormalised, ["a", "b"], VOCABULARIES) == [
        "topic: primary codes outside the label set: ['7']",
        "topic: probabilities not finite or not summing to 1",
    ]


def test_nmi_problems():
    names = ["x", "y"]
    sound = pl.DataFrame({"dimension": names, "x": [1.0, 0.3], "y": [0.3, math.nan]})
    assert nmi_problems(sound, names) == []
    skewed = pl.DataFrame({"dimension": names, "x": [1.0, 0.3], "y": [0.4, 1.0]})
    assert nmi_problems(skewed, names) == ["the matrix is not symmetric"]
    out_of_range = pl.DataFrame({"dimension": names, "x": [0.9, 1.2], "y": [1.2, 1.0]})
    assert nmi_problems(out_of_range, names) == ["an NMI lies outside [0, 1]", "a diagonal entry is neither 1 nor NaN"]
    assert "are not the dimensions" in nmi_problems(sound, ["y", "x"])[0]


def test_agreement_problems():
    table = pl.DataFrame(
        {
            "student": ["s", "s"],
            "dimension": ["x", "y"],
            "n": [10, 10],
            "accuracy": [0.5, 1.0],
            "cohens_kappa": [math.nan, -0.2],  # undefined kappa is allowed (one code only)
            "eai_agreement": [0.6, 1.0],
        }
    )
    assert agreement_problems(table, ["s"], ["x", "y"]) == []
    assert agreement_problems(table, ["s", "t"], ["x", "y"]) == ["2 rows; expected one per student and dimension (4)"]
    bad = table.with_columns(pl.Series("accuracy", [math.nan, 1.5]), pl.Series("n", [0, 10]))
    assert agreement_problems(bad, ["s"], ["x", "y"]) == [
        "compared on no document: [('s', 'x')]",
        "accuracy is undefined for a compared dimension",
        "accuracy outside [0, 1]",
    ]


def test_draft_and_response_problems():
    drafts = pl.DataFrame({"draft_id": ["d1", "d2"], "status": ["draft", "reviewed"]})
    rejects = pl.DataFrame({"record_id": ["d3"]}, schema={"record_id": pl.String})
    assert draft_problems(drafts, rejects, 3) == []
    assert draft_problems(drafts, rejects.with_columns(record_id=pl.lit("d2")), 3) == [
        "a draft id occurs twice (among drafts and rejects)"
    ]
    assert draft_problems(drafts.with_columns(status=pl.lit("graded")), rejects, 4) == [
        "2 drafts + 1 rejects != 4 requested",
        "unknown draft statuses ['graded']",
    ]
    missions = pl.DataFrame({"mission_id": ["m1", "m2"], "n_turns": [1, 2]})
    responses = pl.DataFrame(
        {
            "mission_id": ["m1", "m2", "m2"],
            "turn_index": [0, 0, 1],
            "response": ["ok", None, None],
            "error": [None, "timeout", "skipped: turn 0 failed"],
        }
    )
    assert response_problems(responses, missions) == []
    assert response_problems(responses.head(2), missions) == [
        "2 response rows for 3 mission turns (1 missing, 0 unexpected, 0 repeated)"
    ]
    silent = responses.with_columns(pl.lit(None, pl.String).alias("error"))
    assert response_problems(silent, missions) == ["2 turns have neither a response nor an error"]


def test_score_problems_count_criteria_across_breakdowns():
    breakdowns = pl.DataFrame(
        {
            "dimension": ["model", "required", "required"],
            "model": ["m", "m", "m"],
            "value": ["m", "required", "optional"],
            "weighted_pass_rate": [0.5, 0.6, None],
            "n_criteria": [5, 3, 2],
            "n_ungraded": [1, 0, 1],
        }
    )
    assert score_problems(breakdowns) == []
    lost = breakdowns.with_columns(pl.Series("n_criteria", [5, 3, 1]), pl.Series("weighted_pass_rate", [0.5, 1.2, 0.0]))
    assert score_problems(lost) == [
        "a weighted pass rate lies outside [0, 1]",
        "criteria of a breakdown do not add up to the model's: [('required', 'm')]",
    ]


def test_backend_and_policy_eval_problems():
    probes = pl.DataFrame(
        {
            "tool_id": ["a", "b"],
            "n_required": [1, 0],
            "empty_call": ["MissingArgument", "ok"],
            "unknown_argument_call": ["UnexpectedArgument", "UnexpectedArgument"],
            "deterministic": [True, True],
        }
    )
    assert backend_problems(probes, ["a", "b"]) == []
    assert backend_problems(probes.with_columns(unknown_argument_call=pl.lit("MissingArgument")), ["a", "b"]) == [
        "accept an unknown argument: ['b']"  # "a" may refuse the probe for its missing required argument first
    ]
    lax = probes.with_columns(pl.Series("empty_call", ["ok", "ok"]), pl.Series("deterministic", [True, False]))
    assert backend_problems(lax, ["a", "b", "c"]) == [
        "2 probes for 3 tools",
        "not deterministic: ['b']",
        "accept a call without their required arguments: ['a']",
    ]
    scored = pl.DataFrame(
        {
            "trajectory_id": ["1", "2"],
            "category": ["simple", None],
            "augmentation": ["none", "format_xml"],
            "outcome": ["correct", "wrong"],
            "reward": [1.0, 0.0],
        }
    )
    assert policy_eval_problems(scored) == []
    assert policy_eval_problems(scored.with_columns(pl.Series("reward", [1.0, 2.0]))) == [
        "a reward lies outside [0, 1]"
    ]


def test_irrelevance_examples_expect_no_call():
    base = pl.DataFrame(
        {
            "trajectory_id": ["irr", "simple"],
            "category": ["irrelevance", "simple"],
            "oracle_json": ["[]", '[{"f": {}}]'],
        }
    )
    augmented = pl.DataFrame(
        {
            "trajectory_id": ["irr~xml", "simple~err"],
            "category": ["irrelevance", "simple"],
            "oracle_json": ["[]", '[{"f": {}}]'],
            "augmentation": ["format_xml", "erroneous_output"],
            "expected_behaviour": ["call", "detect_error"],
        }
    )
    sample = evaluation_sample(base, augmented, per_group=0, seed=0)
    assert dict(zip(sample["trajectory_id"], sample["expected_behaviour"], strict=True)) == {
        "irr": NO_CALL,
        "irr~xml": NO_CALL,
        "simple": "call",
        "simple~err": "detect_error",
    }


def test_environment_and_index_problems():
    line = json.dumps({"prompt": [], "tools": [], "oracle": {}, "reward": {}})
    assert environment_problems(line + "\n" + line + "\n", 2) == []
    assert environment_problems(line + "\n", 2) == ["1 lines for 2 examples"]
    assert environment_problems('{"prompt": []}\n', 1) == ["line 1 lacks ['tools', 'oracle', 'reward']"]
    assert environment_problems("not json\n", 1) == ["line 1 is not a JSON object"]
    vectors = np.ones((2, 3), dtype=np.float32)
    assert index_problems(["a", "b"], vectors, ["b", "a"], 3) == []
    vectors[1, 2] = np.nan
    assert index_problems(["a"], vectors[:1], ["a", "b"], 4) == [
        "1 indexed rows for 2 tool specs",
        "vectors are not finite 4-d vectors (shape (1, 3))",
    ]
    assert index_problems(["a", "b"], vectors, ["a", "b"], 3) == ["vectors are not finite 3-d vectors (shape (2, 3))"]


def test_event_log_counts_add_up():
    activity = pl.DataFrame(
        {
            "month": ["2025-01", "2025-02"],
            **{kind: [1, 2] for kind in EVENT_TYPES},
            "spend": [3.0, 0.0],
            "refunds": [0.0, 1.0],
        }
    )
    total = 3 * len(EVENT_TYPES)
    assert event_log_problems(activity, total) == []
    assert event_log_problems(activity, total + 1) == [
        f"monthly event counts add up to {total}, the view holds {total + 1}"
    ]


def test_rl_dataset_has_one_prompt_per_question_and_budget():
    def row(question: str, mode: str) -> dict:
        return {
            "prompt": [{"role": "user", "content": "q"}],
            "ground_truth": "4",
            "extra_info": {"question_id": question, "mode": mode},
        }

    rows = pl.DataFrame([row("q1", "agent"), row("q2", "agent"), row("q1", "long_context")])
    assert rl_dataset_problems(rows, ["q1", "q2"], 1) == []
    assert rl_dataset_problems(rows, ["q1", "q2", "q3"], 2) == [
        "2 agent rows for 3 questions",
        "1 long-context rows for 2 answerable (question, budget) pairs",
    ]
