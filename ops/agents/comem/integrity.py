"""What CoMem's asset checks verify, as plain functions of the tables (invariant description -> holds)."""

from __future__ import annotations

import math

import polars as pl

_TIMES = ("wall_s", "critical_s", "agent_s", "memory_wait_s", "memory_s", "drain_s")


def _finite(frame: pl.DataFrame, columns: tuple[str, ...]) -> bool:
    return all(math.isfinite(v) and v >= 0 for c in columns if c in frame.columns for v in frame[c].to_list())


def episode_invariants(episodes: pl.DataFrame, steps: pl.DataFrame) -> dict[str, bool]:
    """Counts add up between the episode and step tables, timings are finite, token accounting closes."""
    per_episode = steps.group_by("condition", "task_id").len()
    joined = episodes.join(per_episode, on=["condition", "task_id"], how="left").with_columns(
        pl.col("len").fill_null(0)
    )
    memory = episodes["memory_prompt_tokens"] + episodes["memory_completion_tokens"]
    pairs = episodes.select("condition", "task_id").unique().height
    conditions, tasks = episodes["condition"].n_unique(), episodes["task_id"].n_unique()
    return {
        "one episode per (condition, task), every task under every condition": pairs
        == episodes.height
        == conditions * tasks,
        "episode steps == its rows in the step table": bool((joined["steps"] == joined["len"]).all()),
        "turns passed <= turns": bool((episodes["turns_passed"] <= episodes["turns"]).all()),
        "timings finite and >= 0": _finite(episodes, _TIMES) and _finite(steps, _TIMES),
        "memory tokens on + off the critical path == memory tokens": bool(
            (episodes["memory_tokens_on_path"] + episodes["memory_tokens_off_path"] == memory).all()
        ),
        "full history never calls the memory model": bool(
            (episodes.filter(pl.col("k") < 0)["memory_prompt_tokens"] == 0).all()
        ),
    }


def staleness_holds(steps: pl.DataFrame) -> bool:
    """Every action saw a summary at most t-k (t actions done before it); full history (k < 0) saw none."""
    for k, step, index in steps.select("k", "step", "summary_index").iter_rows():
        if (k < 0 and index != 0) or (k >= 0 and index > max(0, step - 1 - k)):
            return False
    return True
