"""Invariants of the tool-use evaluation tables (backend probes, policy scores), as lists of problems.

Each function returns what is wrong (empty = sound), for the blocking asset checks to show.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from ops.tooluse.backends import ToolErrorType
from ops.tooluse.policy_eval import accuracy_table


def backend_problems(probes: pl.DataFrame, tool_ids: list[str]) -> list[str]:
    """One probe per tool; deterministic; a call without the required or with an unknown argument refused."""
    problems = []
    if sorted(probes["tool_id"]) != sorted(tool_ids):
        problems.append(f"{probes.height} probes for {len(tool_ids)} tools")
    nondeterministic = probes.filter(~pl.col("deterministic"))["tool_id"].to_list()
    if nondeterministic:
        problems.append(f"not deterministic: {nondeterministic[:5]}")
    lax = probes.filter((pl.col("n_required") > 0) & (pl.col("empty_call") != ToolErrorType.MISSING_ARGUMENT.value))
    if lax.height:
        problems.append(f"accept a call without their required arguments: {lax['tool_id'].to_list()[:5]}")
    # the unknown-argument probe sends no required argument, so a tool with required ones may refuse it
    # for that first; one without required parameters must name the unexpected argument
    expected = pl.when(pl.col("n_required") > 0).then(pl.col("unknown_argument_call") != "ok")
    named = expected.otherwise(pl.col("unknown_argument_call") == ToolErrorType.UNEXPECTED_ARGUMENT.value)
    unknown = probes.filter(~named)
    if unknown.height:
        problems.append(f"accept an unknown argument: {unknown['tool_id'].to_list()[:5]}")
    return problems


def policy_eval_problems(scored: pl.DataFrame) -> list[str]:
    """Rewards in [0, 1], an outcome per row, and per-category and per-augmentation counts adding up."""
    problems = []
    if ((scored["reward"] < 0) | (scored["reward"] > 1) | scored["reward"].is_nan()).any():
        problems.append("a reward lies outside [0, 1]")
    if scored["outcome"].null_count():
        problems.append(f"{scored['outcome'].null_count()} rows without an outcome")
    table = accuracy_table(scored)
    for dimension in ("category", "augmentation"):
        counted = table.filter(pl.col("dimension") == dimension)["n"].sum()
        if counted != scored.height:
            problems.append(f"per-{dimension} counts add up to {counted}, not {scored.height}")
    return problems


ENVIRONMENT_KEYS = ("prompt", "tools", "oracle", "reward")


def environment_problems(jsonl: str, expected_rows: int) -> list[str]:
    """One JSON object per example, each with the prompt, tools, oracle and reward spec a trainer needs."""
    lines = jsonl.splitlines()
    problems = [] if len(lines) == expected_rows else [f"{len(lines)} lines for {expected_rows} examples"]
    for number, line in enumerate(lines, start=1):
        try:
            missing = [key for key in ENVIRONMENT_KEYS if key not in json.loads(line)]
        except (json.JSONDecodeError, TypeError):
            return [*problems, f"line {number} is not a JSON object"]
        if missing:
            return [*problems, f"line {number} lacks {missing}"]
    return problems


def index_problems(ids: list[str], vectors: np.ndarray, expected_ids: list[str], dim: int) -> list[str]:
    """One finite vector of the embedder's size per tool spec, none for others."""
    problems = []
    if sorted(ids) != sorted(expected_ids):
        problems.append(f"{len(ids)} indexed rows for {len(expected_ids)} tool specs")
    if len(ids) and (vectors.shape[1] != dim or not np.isfinite(vectors).all()):
        problems.append(f"vectors are not finite {dim}-d vectors (shape {vectors.shape})")
    return problems
