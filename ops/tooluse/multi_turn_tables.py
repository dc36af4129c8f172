"""Multi-turn tasks and episode scores as polars frames (the shapes the tooluse assets store and check).

A task is kept only if it can be scored: as many user turns as ground-truth turns, and its own ground
truth, executed on the backends, passes BFCL's scorer. Anything else is quarantined with a reason code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from ops.common.quarantine import Rejected, Split, split
from ops.tooluse.multi_turn import MultiTurnScore, MultiTurnTask, score_multi_turn
from ops.tooluse.multi_turn_policy import Episode

TASK_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "category": pl.String(),
    "n_turns": pl.Int64(),
    "n_truth_calls": pl.Int64(),
    "involved_classes": pl.String(),
    "turns_json": pl.String(),
    "initial_config_json": pl.String(),
    "ground_truth_json": pl.String(),
    "functions_json": pl.String(),
}
TASK_REJECTIONS = ("turn_count_mismatch", "missing_function_docs", "ground_truth_fails")
EPISODE_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "category": pl.String(),
    "valid": pl.Boolean(),
    "turns": pl.Int64(),
    "turns_passed": pl.Int64(),
    "failed_turn": pl.Int64(),
    "error": pl.String(),
    "detail": pl.String(),
    "model_calls": pl.Int64(),
    "steps": pl.Int64(),
    "executions": pl.Int64(),
    "llm_errors": pl.Int64(),
    "calls_json": pl.String(),
}


def task_row(task: MultiTurnTask) -> dict[str, Any]:
    """One task as a row of `TASK_SCHEMA`."""
    return {
        "task_id": task.id,
        "category": task.category,
        "n_turns": len(task.turns),
        "n_truth_calls": sum(len(turn) for turn in task.ground_truth),
        "involved_classes": ",".join(task.involved_classes),
        "turns_json": json.dumps(task.turns, ensure_ascii=False),
        "initial_config_json": json.dumps(task.initial_config, ensure_ascii=False, sort_keys=True),
        "ground_truth_json": json.dumps(task.ground_truth, ensure_ascii=False),
        "functions_json": json.dumps(task.functions, ensure_ascii=False, sort_keys=True),
    }


def task_from_row(row: dict[str, Any]) -> MultiTurnTask:
    """The task a `TASK_SCHEMA` row holds."""
    return MultiTurnTask(
        id=row["task_id"],
        category=row["category"],
        turns=json.loads(row["turns_json"]),
        involved_classes=tuple(row["involved_classes"].split(",")),
        initial_config=json.loads(row["initial_config_json"]),
        ground_truth=json.loads(row["ground_truth_json"]),
        functions=tuple(json.loads(row["functions_json"])),
    )


def split_tasks(tasks: Sequence[MultiTurnTask]) -> Split:
    """Keep the scorable tasks; quarantine the others with the reason (see the module docstring)."""
    kept, rejected = [], []
    for task in tasks:
        if task.problem is not None:
            reason = "missing_function_docs" if task.missing_docs else "turn_count_mismatch"
            rejected.append(Rejected(task.id, reason, task.problem, task.ground_truth))
            continue
        own = score_multi_turn(task, [[turn] for turn in task.ground_truth])
        if not own.valid:
            detail = f"turn {own.failed_turn}: {own.error} {own.detail}"
            rejected.append(Rejected(task.id, "ground_truth_fails", detail, task.ground_truth))
            continue
        kept.append(task_row(task))
    return split(kept, TASK_SCHEMA, rejected, rows_in=len(tasks), reasons=TASK_REJECTIONS)


def cheapest_tasks(tasks: pl.DataFrame, limit: int) -> pl.DataFrame:
    """Up to `limit` tasks (0: all, as given), the cheapest to play first: multi-turn ones (2+ user turns)
    before single-turn ones, then fewest turns, then the shortest function docs (the system prompt every
    step re-reads), then the id."""
    if limit <= 0:
        return tasks
    order = [pl.col("n_turns") < 2, pl.col("n_turns"), pl.col("functions_json").str.len_bytes(), pl.col("task_id")]
    return tasks.sort(order).head(limit)


def episode_frame(played: Sequence[tuple[Episode, MultiTurnScore]]) -> pl.DataFrame:
    """One row per played task: the score, where it failed, the calls it made and what they cost."""
    rows = [
        {
            "task_id": score.task_id,
            "category": episode.task.category,
            "valid": score.valid,
            "turns": score.turns,
            "turns_passed": score.turns_passed,
            "failed_turn": score.failed_turn,
            "error": score.error,
            "detail": score.detail,
            "model_calls": sum(len(step) for turn in episode.steps for step in turn),
            "steps": sum(len(turn) for turn in episode.steps),
            "executions": score.executions + episode.env.executions,
            "llm_errors": episode.errors,
            "calls_json": json.dumps(episode.steps, ensure_ascii=False),
        }
        for episode, score in played
    ]
    return pl.DataFrame(rows, schema=EPISODE_SCHEMA)
