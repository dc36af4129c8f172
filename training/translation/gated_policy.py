"""Train the translate-or-not policy with the shared trainer in GSPO mode, and evaluate its decisions.

The trainer never knows the domain: it gets prompt rows and the gated reward from
`ops.translation.reward`. GSPO hyper-parameters follow TRL's GSPO recipe (paper notes, section 3):
sequence-level importance sampling, beta 0, epsilon 3e-4. TRL's `epsilon_high=4e-4` and
`steps_per_generation=4` are not exposed by `training.rl.GRPOSettings`, so clipping is symmetric
and each generation is used for one step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ops.common.llm import ChatRequest
from ops.translation.cipher import answer_matches
from ops.translation.reward import GateConfig, call_budgets, parse_decision, policy_messages, trainer_reward
from training.rl.config import GRPOSettings, PolicyConfig
from training.rl.policy import PolicyClient, load_policy
from training.rl.trainer import TrainingResult, train_grpo

REWARD_COLUMNS = ("task_id", "answer", "call_cost", "translated_accuracy")
DECISION_SCHEMA: dict[str, pl.DataType] = {
    "policy": pl.String(),
    "task_id": pl.String(),
    "language": pl.String(),
    "tier": pl.String(),
    "held_out": pl.Boolean(),
    "called": pl.Boolean(),
    "correct": pl.Float64(),
    "cost": pl.Float64(),
    "output": pl.String(),
}


@dataclass(frozen=True)
class GatedTraining:
    """GSPO size and the gated reward's lambda, tau and gate switch."""

    gate: GateConfig
    max_steps: int = 1
    prompts_per_step: int = 2
    num_generations: int = 2
    max_completion_length: int = 64
    learning_rate: float = 1e-5
    temperature: float = 1.0
    seed: int = 0


def training_rows(tasks: pl.DataFrame, summary: pl.DataFrame) -> list[dict[str, Any]]:
    """One prompt row per training-language task: the decision prompt plus the reward's columns."""
    joined = tasks.join(summary.select("task_id", "held_out", "p_translated"), on="task_id").filter(~pl.col("held_out"))
    return [
        {
            "prompt": policy_messages(row["question"]),
            "task_id": row["task_id"],
            "answer": row["answer"],
            "call_cost": float(row["call_cost"]),
            "translated_accuracy": float(row["p_translated"]),
        }
        for row in joined.iter_rows(named=True)
    ]


def gspo_settings(policy: PolicyConfig, training: GatedTraining) -> GRPOSettings:
    """The trainer's settings for GSPO on this task."""
    return GRPOSettings(
        policy,
        mode="gspo",
        max_steps=training.max_steps,
        prompts_per_step=training.prompts_per_step,
        num_generations=training.num_generations,
        max_completion_length=training.max_completion_length,
        learning_rate=training.learning_rate,
        beta=0.0,
        epsilon=3e-4,
        temperature=training.temperature,
        seed=training.seed,
    )


def train_gated_policy(
    rows: Sequence[Mapping[str, Any]], policy: PolicyConfig, training: GatedTraining, checkpoint_dir: Path, log=None
) -> TrainingResult:
    """GSPO on the gated reward; resumes from `checkpoint_dir` after a kill (the trainer's rule)."""
    return train_grpo(
        rows,
        [trainer_reward(training.gate)],
        gspo_settings(policy, training),
        checkpoint_dir,
        reward_columns=REWARD_COLUMNS,
        log=log,
    )


def decisions(
    client: Any, name: str, tasks: pl.DataFrame, summary: pl.DataFrame, count_tokens: Callable[[list[str]], list[int]]
) -> pl.DataFrame:
    """Greedy decisions of a policy (`LLMClient`) on every task, scored like the reward (`DECISION_SCHEMA`).

    Each request has room for its call (`call_budgets` under `count_tokens`, the policy's tokenizer). A call
    scores the base policy's measured accuracy on the tool's English text and costs the call.
    """
    joined = tasks.join(summary.select("task_id", "held_out", "p_translated"), on="task_id", maintain_order="left")
    budgets = call_budgets(joined["question"].to_list(), count_tokens)
    requests = [
        ChatRequest(tuple(policy_messages(row["question"])), max_tokens=budget, request_id=row["task_id"])
        for row, budget in zip(joined.iter_rows(named=True), budgets, strict=True)
    ]
    results = client.chat(requests)
    rows = []
    for row, result in zip(joined.iter_rows(named=True), results, strict=True):
        text = result.text or ""
        called = result.ok and parse_decision(text).called
        correct = row["p_translated"] if called else float(result.ok and answer_matches(text, row["answer"]))
        rows.append(
            {
                "policy": name,
                "task_id": row["task_id"],
                "language": row["language"],
                "tier": row["tier"],
                "held_out": row["held_out"],
                "called": called,
                "correct": float(correct),
                "cost": float(row["call_cost"]) if called else 0.0,
                "output": text,
            }
        )
    return pl.DataFrame(rows, schema=DECISION_SCHEMA)


def token_counter(tokenizer: Any) -> Callable[[list[str]], list[int]]:
    """Token counts of texts under a Hugging Face tokenizer, without special tokens."""
    return lambda texts: [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def evaluate_policies(policy: PolicyConfig, adapter: Path, tasks: pl.DataFrame, summary: pl.DataFrame) -> pl.DataFrame:
    """Decisions of the base policy and of the trained adapter on the same tasks, greedy. One model load: the
    base policy is the adapter's model with the adapter switched off (LoRA off = the base weights)."""
    loaded = load_policy(policy, adapter)
    count = token_counter(loaded.tokenizer)
    trained = decisions(PolicyClient(loaded, "gated_gspo"), "gated_gspo", tasks, summary, count)
    with loaded.model.disable_adapter():
        base = decisions(PolicyClient(loaded, "base"), "base", tasks, summary, count)
    return pl.concat([base, trained])
