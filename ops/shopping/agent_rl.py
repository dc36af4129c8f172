"""RLVR of the Customer Agent: prompts from `shoptrajqa_rl_dataset`, a verifiable SQL reward, a customer split.

The policy sees the agent's own system prompt (the customer's tables, the JSON protocol) and the
question, and writes one action. A SQL action runs in that customer's read-only sandbox and its result,
when it is one value, is the answer; an answer action is taken as written. The answer is scored by exact
match against the gold (`ops.shopping.answers.shoptrajqa_reward`). Training is one step of the agent
loop (query -> its result is the answer); the evaluation runs the full multi-step agent (`run_agent`).
Customers are split by a seeded hash of their id, so evaluation questions belong to customers the
policy never trained on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl

from ops.common.text import sha256_hex
from ops.shopping.agent import agent_system_prompt
from ops.shopping.answers import load_json_object, shoptrajqa_reward
from ops.shopping.evaluation import AGENT
from ops.shopping.sandbox import CustomerSandbox, observation_text

TRAIN, HELDOUT = "train", "heldout"


def customer_split(customer_id: str, heldout_share: float, seed: int) -> str:
    """ "train" or "heldout" for a customer, by a seeded hash of the id."""
    return HELDOUT if int(sha256_hex(f"{seed}|{customer_id}")[:8], 16) / 0xFFFFFFFF < heldout_share else TRAIN


def agent_prompts(
    rl_dataset: pl.DataFrame, schema_text: Callable[[str], str], max_steps: int, split: str, share: float, seed: int
) -> list[dict[str, Any]]:
    """Agent-mode rows of `shoptrajqa_rl_dataset` for one side of the customer split, as GRPO rows:
    id, the agent's chat prompt, gold (`ground_truth`) and `customer_id` (the reward's sandbox key)."""
    rows = []
    for row in rl_dataset.iter_rows(named=True):
        info = row["extra_info"]
        if info["mode"] != AGENT or customer_split(info["customer_id"], share, seed) != split:
            continue
        question = row["prompt"][-1]["content"]
        prompt = [
            {"role": "system", "content": agent_system_prompt(schema_text(info["customer_id"]), max_steps)},
            {"role": "user", "content": f"Question: {question}"},
        ]
        rows.append(
            {
                "id": info["question_id"],
                "prompt": prompt,
                "ground_truth": row["ground_truth"],
                "customer_id": info["customer_id"],
            }
        )
    return rows


def action_answer(completion: Any, sandbox: CustomerSandbox) -> str | None:
    """The answer one agent action gives: an answer action's content, or the single value its SQL returns."""
    text = completion[-1].get("content", "") if isinstance(completion, list) and completion else completion
    data = load_json_object(text) if isinstance(text, str) else None
    if data is None or not isinstance(data.get("content"), str | int | float):
        return None
    if data.get("action") == "answer":
        return str(data["content"])
    if data.get("action") != "sql":
        return None
    observation = sandbox.run_query(str(data["content"]))
    if not observation.ok or len(observation.rows) != 1 or len(observation.rows[0]) != 1:
        return None
    return observation_text(observation).split("\n", 1)[1]


def sql_agent_reward(sandboxes: Mapping[str, CustomerSandbox]) -> Callable[..., list[float]]:
    """A TRL reward over `customer_id` and `ground_truth` columns: run the action, exact-match its answer."""

    def customer_agent_reward(
        completions: Sequence[Any], ground_truth: Sequence[str], customer_id: Sequence[str], **kwargs: Any
    ) -> list[float]:
        del kwargs
        answers = [
            action_answer(completion, sandboxes[customer])
            for completion, customer in zip(completions, customer_id, strict=True)
        ]
        answered = [json.dumps({"action": "answer", "content": a}) if a is not None else "" for a in answers]
        return shoptrajqa_reward(answered, ground_truth)

    return customer_agent_reward
