"""RESD's comparison: success per arm on held-out tasks, rollouts spent, and internalization.

Arms: `base` (the student, no playbook), `playbook` (the same model with the playbook in context, no
training), `resd` (the self-distilled student, evaluated without the playbook) and `grpo` (GRPO with
several samples per prompt, given the same number of rollouts RESD spent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import polars as pl

EVAL_ARMS = ("base", "playbook", "resd", "grpo")
SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "round": pl.Int64,
    "arm": pl.String,
    "tasks": pl.Int64,
    "successes": pl.Int64,
    "success_rate": pl.Float64,
    "rollouts": pl.Int64,
}


def success_summary(scored: pl.DataFrame, rollouts: Mapping[str, int]) -> pl.DataFrame:
    """Tasks, successes and success rate per (round, arm), with the training rollouts each arm spent."""
    summary = (
        scored.group_by("round", "arm")
        .agg(pl.len().cast(pl.Int64).alias("tasks"), (pl.col("reward") >= 1.0).sum().cast(pl.Int64).alias("successes"))
        .with_columns((pl.col("successes") / pl.col("tasks")).alias("success_rate"))
        .with_columns(pl.col("arm").replace_strict(dict(rollouts), default=0, return_dtype=pl.Int64).alias("rollouts"))
    )
    order = {arm: i for i, arm in enumerate(EVAL_ARMS)}
    return summary.sort("round", pl.col("arm").replace_strict(order, default=len(order))).select(list(SUMMARY_SCHEMA))


def internalization(base: float, playbook: float, resd: float) -> float | None:
    """(RESD - base) / (playbook - base): the share of the in-context gain the weights absorbed.

    None when the playbook gave no gain (denominator 0): the ratio is undefined, not 0 or 1."""
    gain = playbook - base
    if gain == 0 or not all(math.isfinite(v) for v in (base, playbook, resd)):
        return None
    return (resd - base) / gain


def grpo_steps(rollouts: int, prompts_per_step: int, generations: int) -> int:
    """GRPO steps that spend about `rollouts` completions (at least one step)."""
    return max(1, rollouts // (prompts_per_step * generations))
