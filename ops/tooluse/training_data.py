"""Tool-use trajectories as training data for the policy: a held-out split, SFT pairs and GRPO prompts.

The split is by category and by id: whole BFCL categories are held out (the policy never trains on
that kind of task), and within the training categories a seeded hash of the *base* trajectory id holds
out a share of examples. An augmented row follows its base, so an augmentation of a held-out example
never leaks into training. Training and evaluation see exactly the prompt the policy evaluation uses
(`policy_messages`), and only rows scored by the AST reward (`tool_reward`): judged behaviours
(asking for clarification, flagging an erroneous tool output) need a judge model, and locally the only
judge is the policy's own base, which must not grade itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ops.common.llm import LLMClient
from ops.common.stats import bootstrap_interval
from ops.common.text import sha256_hex
from ops.tooluse.augment import render_oracle_calls
from ops.tooluse.policy_eval import (
    JUDGED_BEHAVIOURS,
    NO_AUGMENTATION,
    REWARD_FUNCTION,
    policy_messages,
    policy_requests,
    score_policy,
)

NO_CALL_REPLY = "None of the available functions fits this request, so I will not call any."
TRAIN, HELDOUT = "train", "heldout"

COMPARISON_SCHEMA: dict[str, pl.DataType] = {
    "policy": pl.String(),
    "category": pl.String(),
    "n": pl.Int64(),
    "accuracy": pl.Float64(),
    "ci_low": pl.Float64(),
    "ci_high": pl.Float64(),
}


@dataclass(frozen=True)
class ToolSplit:
    """How trajectories are split: held-out categories, held-out share of the others' ids, seed."""

    heldout_categories: tuple[str, ...] = ("parallel_multiple",)
    heldout_share: float = 0.25
    seed: int = 0

    def describe(self) -> dict[str, Any]:
        """The split as model-card fields."""
        return {
            "heldout_categories": ",".join(self.heldout_categories),
            "heldout_id_share": self.heldout_share,
            "split_seed": self.seed,
            "split_rule": "category in heldout_categories, or sha256(seed|base id) in the held-out share",
        }


def _heldout_id(base_id: str, split: ToolSplit) -> bool:
    return int(sha256_hex(f"{split.seed}|{base_id}")[:8], 16) / 0xFFFFFFFF < split.heldout_share


def all_trajectories(base: pl.DataFrame, augmented: pl.DataFrame) -> pl.DataFrame:
    """Base and augmented trajectories in one frame (base rows: augmentation "none", behaviour "call")."""
    base_rows = base.with_columns(
        pl.col("trajectory_id").alias("base_trajectory_id"),
        pl.lit(NO_AUGMENTATION).alias("augmentation"),
        pl.lit("call").alias("expected_behaviour"),
    )
    return pl.concat([base_rows, augmented], how="diagonal_relaxed")


def assign_split(trajectories: pl.DataFrame, split: ToolSplit) -> pl.DataFrame:
    """`trajectories` with a `split` column ("train" / "heldout"), by category and by base id."""
    base_ids = pl.coalesce(pl.col("base_trajectory_id"), pl.col("trajectory_id"))
    heldout = pl.col("category").is_in(list(split.heldout_categories)) | base_ids.map_elements(
        lambda value: _heldout_id(value, split), return_dtype=pl.Boolean
    )
    return trajectories.with_columns(pl.when(heldout).then(pl.lit(HELDOUT)).otherwise(pl.lit(TRAIN)).alias("split"))


def ast_scored(trajectories: pl.DataFrame) -> pl.DataFrame:
    """Rows whose reward is the AST reward (not a judged behaviour)."""
    return trajectories.filter(~pl.col("expected_behaviour").is_in(list(JUDGED_BEHAVIOURS)))


def chat_chars(messages: Sequence[Mapping[str, Any]]) -> int:
    """Length of a chat in characters (the CPU cost of a prompt grows with it)."""
    return sum(len(message["content"]) for message in messages)


def prompt_chars(row: Mapping[str, Any]) -> int:
    """Length of the policy's prompt for a trajectory row, in characters."""
    return chat_chars(policy_messages(row))


def shortest(trajectories: pl.DataFrame, limit: int, max_prompt_chars: int) -> pl.DataFrame:
    """Up to `limit` rows (0: all) with prompts of at most `max_prompt_chars` (0: any), shortest first, then id."""
    sizes = [prompt_chars(row) for row in trajectories.iter_rows(named=True)]
    ranked = trajectories.with_columns(pl.Series("_chars", sizes, dtype=pl.Int64)).sort("_chars", "trajectory_id")
    if max_prompt_chars > 0:
        ranked = ranked.filter(pl.col("_chars") <= max_prompt_chars)
    return (ranked.head(limit) if limit > 0 else ranked).drop("_chars")


def target_reply(row: Mapping[str, Any]) -> str:
    """The reply SFT teaches: the oracle calls as a JSON list, or a plain no-call sentence when there are none."""
    calls = render_oracle_calls(json.loads(row["oracle_json"]), json.loads(row["tools_json"]))
    return json.dumps(calls, sort_keys=True) if calls else NO_CALL_REPLY


def sft_rows(trajectories: pl.DataFrame) -> list[dict[str, Any]]:
    """Prompt/completion chats for SFT, one per AST-scored row."""
    return [
        {
            "id": row["trajectory_id"],
            "prompt": policy_messages(row),
            "completion": [{"role": "assistant", "content": target_reply(row)}],
        }
        for row in ast_scored(trajectories).iter_rows(named=True)
    ]


def grpo_rows(environment: Sequence[Mapping[str, Any]], ids: set[str]) -> list[dict[str, Any]]:
    """GRPO prompts from `tool_rl_environment` lines whose id is in `ids` and whose reward is `tool_reward`.

    The oracle travels as JSON text (`tool_reward` accepts it), so the dataset keeps one simple column.
    """
    return [
        {"id": line["id"], "prompt": line["prompt"], "oracle": json.dumps(line["oracle"], sort_keys=True)}
        for line in environment
        if line["id"] in ids and line["reward"]["name"] == REWARD_FUNCTION
    ]


def shortest_rows(rows: Sequence[Mapping[str, Any]], limit: int, max_prompt_chars: int) -> list[dict[str, Any]]:
    """Up to `limit` chat-prompt rows (0: all) of at most `max_prompt_chars` (0: any), shortest first, then id."""
    ranked = sorted(rows, key=lambda row: (chat_chars(row["prompt"]), row["id"]))
    kept = [dict(row) for row in ranked if max_prompt_chars <= 0 or chat_chars(row["prompt"]) <= max_prompt_chars]
    return kept[:limit] if limit > 0 else kept


def score_checkpoints(sample: pl.DataFrame, clients: Mapping[str, LLMClient], max_tokens: int) -> pl.DataFrame:
    """Every policy under test answers every sampled row (the policy-eval prompt); AST-scored, one frame with
    a `policy` column. Rows must be AST-scored (`ast_scored`): judged behaviours would need a judge."""
    if sample.filter(pl.col("expected_behaviour").is_in(list(JUDGED_BEHAVIOURS))).height:
        raise ValueError("judged rows need a judge model; pass AST-scored rows only")
    frames = []
    for name, client in clients.items():
        results = client.chat(policy_requests(sample, max_tokens))
        frames.append(score_policy(sample, results).with_columns(pl.lit(name).alias("policy")))
    return pl.concat(frames)


def policy_comparison(scored: pl.DataFrame, seed: int = 0) -> pl.DataFrame:
    """Accuracy per policy and category (and "all"): examples, accuracy and a 95% bootstrap interval."""
    rows = []
    for policy in scored["policy"].unique(maintain_order=True).to_list():
        mine = scored.filter(pl.col("policy") == policy)
        groups = [(c, mine.filter(pl.col("category") == c)) for c in sorted(mine["category"].unique().to_list())]
        for category, group in [*groups, ("all", mine)]:
            rewards = group["reward"].to_list()
            low, high = bootstrap_interval(rewards, seed=seed)
            rows.append(
                {
                    "policy": policy,
                    "category": category,
                    "n": len(rewards),
                    "accuracy": sum(rewards) / len(rewards),
                    "ci_low": low,
                    "ci_high": high,
                }
            )
    return pl.DataFrame(rows, schema=COMPARISON_SCHEMA)
