"""Invariants of the shopping event log and the ShopTrajQA RL dataset, as lists of problems.

Each function returns what is wrong (empty = sound), for the blocking asset checks to show.
"""

from __future__ import annotations

import polars as pl

from ops.shopping.evaluation import AGENT, LONG_CONTEXT
from ops.shopping.event_log import EVENT_TYPES


def event_log_problems(activity: pl.DataFrame, events_in_view: int) -> list[str]:
    """One row per month; the monthly counts add up to the events behind the view; no negative money."""
    problems = []
    if activity["month"].n_unique() != activity.height:
        problems.append("a month occurs twice")
    counted = int(activity.select(pl.sum_horizontal(EVENT_TYPES).sum()).item() or 0)
    if counted != events_in_view:
        problems.append(f"monthly event counts add up to {counted}, the view holds {events_in_view}")
    if (activity["spend"] < 0).any() or (activity["refunds"] < 0).any():
        problems.append("negative spend or refunds")
    return problems


def rl_dataset_problems(rows: pl.DataFrame, question_ids: list[str], answerable_pairs: int) -> list[str]:
    """Every question once in agent mode, every answerable (question, budget) once in long-context mode,
    each row with a prompt and a ground truth."""
    problems = []
    modes = rows.select(pl.col("extra_info").struct.field("mode"), pl.col("extra_info").struct.field("question_id"))
    agent = modes.filter(pl.col("mode") == AGENT)["question_id"].to_list()
    if sorted(agent) != sorted(question_ids):
        problems.append(f"{len(agent)} agent rows for {len(question_ids)} questions")
    long_context = modes.filter(pl.col("mode") == LONG_CONTEXT).height
    if long_context != answerable_pairs:
        problems.append(f"{long_context} long-context rows for {answerable_pairs} answerable (question, budget) pairs")
    empty = rows.filter((pl.col("prompt").list.len() == 0) | pl.col("ground_truth").is_null()).height
    if empty:
        problems.append(f"{empty} rows without a prompt or a ground truth")
    return problems
