"""RESD's task families: ShopTrajQA tasks from the RL dataset (long-context rows, smallest budget, customers held
out), their exact-match verifier and feedback, the GRPO arm's reward agreeing with the verifier for both families,
reflection prompts that keep a long task's question (no model), and the evaluation's adapter swap on one loaded
base (a tiny random Llama, slow lane)."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ops.agents.resd.reflections import reflection_requests
from ops.agents.resd.rollouts import (
    SHOPTRAJQA,
    TOOLUSE,
    score_rollouts,
    shoptrajqa_tasks,
    split_family,
    task_reward,
    verify,
)
from ops.shopping.evaluation import RL_SCHEMA
from ops.tooluse.reward import tool_reward
from tests.test_resd_playbook import ORACLE, TASKS


def rl_row(question: str, customer: str, mode: str, budget: int | None, history: str, gold: str) -> dict:
    """One row of `shoptrajqa_rl_dataset` (verl layout) for a question about `customer`."""
    content = f"Shopping history:\n{history}\n\nQuestion: how much did I spend on {question}?"
    return {
        "data_source": "shoptrajqa",
        "prompt": [
            {"role": "system", "content": 'Reply with JSON: {"answer": "..."}.'},
            {"role": "user", "content": content},
        ],
        "ability": "long_context_qa",
        "reward_model": {"style": "rule", "ground_truth": gold},
        "extra_info": {
            "question_id": question,
            "customer_id": customer,
            "kind": "sum_spent",
            "difficulty": "easy",
            "mode": mode,
            "budget_tokens": budget,
            "sql": "SELECT sum(price) AS answer FROM events",
            "evaluated_reward": None,
        },
        "ground_truth": gold,
    }


DATASET = pl.DataFrame(
    [
        rl_row("q1", "c1", "agent", None, "", "12.5"),
        rl_row("q1", "c1", "long_context", 2048, "x " * 400, "12.5"),
        rl_row("q1", "c1", "long_context", 512, "x " * 50, "12.5"),
        rl_row("q2", "c1", "long_context", 512, "y " * 60, "3"),
        rl_row("q3", "c2", "long_context", 512, "z " * 80, "2024-03-05"),
        rl_row("q4", "c3", "long_context", 512, "w " * 90, "none"),
    ],
    schema=RL_SCHEMA,
)


def test_shoptrajqa_tasks_are_long_context_rows_at_their_smallest_budget():
    tasks = {task["id"]: task for task in shoptrajqa_tasks(DATASET)}
    assert sorted(tasks) == [f"{SHOPTRAJQA}_q{i}" for i in range(1, 5)]  # the agent-mode row is not a task
    first = tasks[f"{SHOPTRAJQA}_q1"]
    assert first["family"] == SHOPTRAJQA and first["group"] == "c1"
    assert first["prompt"][1]["content"].count("x ") == 50  # the 512-token history, not the 2048 one
    assert json.loads(first["oracle"])["ground_truth"] == "12.5"


def test_held_out_shopping_tasks_belong_to_customers_never_trained_on():
    train, held_out = split_family(shoptrajqa_tasks(DATASET), 1, 5, 0)
    assert [t["id"] for t in train] == [f"{SHOPTRAJQA}_q1"]
    assert [t["group"] for t in held_out] == ["c2", "c3"]  # q2 (customer c1) is neither trained on nor held out
    with pytest.raises(ValueError, match="none left to hold out"):
        split_family(
            shoptrajqa_tasks(DATASET.filter(pl.col("extra_info").struct.field("customer_id") == "c1")), 1, 1, 0
        )


def test_shopping_verifier_scores_exact_match_and_says_what_it_read():
    oracle = json.loads(shoptrajqa_tasks(DATASET)[0]["oracle"])
    text = json.dumps(oracle)
    assert verify('{"answer": "£12.50"}', text, SHOPTRAJQA) == (1.0, "correct", "answer '12.5' matches the gold")
    wrong = verify('{"answer": "13"}', text, SHOPTRAJQA)
    assert (
        wrong.score == 0.0 and wrong.outcome == "wrong_answer" and "'13'" in wrong.detail and "'12.5'" in wrong.detail
    )
    assert verify("", text, SHOPTRAJQA).outcome == "no_answer"
    with pytest.raises(ValueError, match="unknown RESD task family"):
        verify("x", text, "chess")


def test_grpo_reward_agrees_with_the_verifier_for_both_families():
    shop = shoptrajqa_tasks(DATASET)[0]
    completions = ['[get_weather(city="Paris")]', "[get_weather()]", '{"answer": "12.5"}', '{"answer": "1"}']
    oracles = [ORACLE, ORACLE, shop["oracle"], shop["oracle"]]
    families = [TOOLUSE, TOOLUSE, SHOPTRAJQA, SHOPTRAJQA]
    scores = task_reward(completions, oracles, families, prompts=["ignored"] * 4)
    assert scores == [1.0, 0.0, 1.0, 0.0]
    assert scores == [verify(c, o, f).score for c, o, f in zip(completions, oracles, families, strict=True)]
    assert scores[:2] == tool_reward(completions[:2], oracles[:2])


def test_rollouts_of_both_families_carry_their_family_and_feedback():
    shop = shoptrajqa_tasks(DATASET)[:1]
    frame = score_rollouts([*TASKS[:1], *shop], ["[get_weather()]", '{"answer": "7"}'], 1, "student", "")
    assert frame["family"].to_list() == [TOOLUSE, SHOPTRAJQA]
    assert frame["failed"].all() and frame["feedback"][1].startswith("wrong_answer: answered '7'")


def test_a_long_task_keeps_its_question_in_the_reflection_prompt():
    long_task = {**shoptrajqa_tasks(DATASET)[0], "prompt": [{"role": "user", "content": "h " * 2000 + "Question: Q?"}]}
    failed = score_rollouts([long_task], ['{"answer": "7"}'], 1, "student", "")
    content = reflection_requests(failed, 32)[0].messages[1]["content"]
    assert "Question: Q?" in content and "characters left out" in content


def _random_adapter(policy, seed: int, folder):
    """A LoRA adapter with random (non-zero) B matrices, saved to `folder`."""
    import torch
    from peft import get_peft_model

    from training.rl.config import LoraSettings
    from training.rl.policy import load_policy, lora_config

    torch.manual_seed(seed)
    model = get_peft_model(load_policy(policy).model, lora_config(LoraSettings()))
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            weight.data.normal_(0.0, 0.5)
    model.save_pretrained(str(folder))
    return folder


@pytest.mark.slow
def test_each_evaluated_arm_answers_as_a_fresh_load_of_its_adapter(tmp_path):
    """`evaluate_arms` loads the base once and swaps LoRAs on it: RESD and GRPO must answer exactly as the base
    loaded afresh with their own adapter (no leftover adapter), and base as the plain base."""
    from assets.agents.resd import evaluate_arms
    from ops.agents.resd.playbook import Playbook
    from training.rl.config import PolicyConfig
    from training.rl.policy import generate, load_policy
    from training.webdocs.generative_student import byte_tokenizer, tiny_base

    policy = PolicyConfig(base_model=str(tiny_base(tmp_path / "tiny", byte_tokenizer(), layers=2, hidden=64)))
    distilled, grpo = _random_adapter(policy, 1, tmp_path / "sd"), _random_adapter(policy, 2, tmp_path / "grpo")
    files = {path.name: path.read_bytes() for path in distilled.iterdir() if path.is_file()}
    scored = evaluate_arms(TASKS, Playbook(), policy, files, grpo, 6, 1)
    prompts = [task["prompt"] for task in TASKS]
    expected = {
        "base": generate(load_policy(policy), prompts, 6),
        "resd": generate(load_policy(policy, distilled), prompts, 6),
        "grpo": generate(load_policy(policy, grpo), prompts, 6),
    }
    assert expected["resd"] != expected["grpo"] != expected["base"]  # the adapters change the answers
    for arm, completions in expected.items():
        assert scored.filter(pl.col("arm") == arm)["completion"].to_list() == completions
