"""Invariants of the shopbench evaluation tables (drafts, responses, scores), as lists of problems.

Each function returns what is wrong (empty = sound), for the blocking asset checks to show.
"""

from __future__ import annotations

import polars as pl

DRAFT_STATUSES = ("draft", "reviewed")


def draft_problems(drafts: pl.DataFrame, rejects: pl.DataFrame, requested: int) -> list[str]:
    """Every requested draft is a draft or a reject (a shared quarantine row, `record_id` = draft id), once;
    statuses known."""
    problems = []
    if drafts.height + rejects.height != requested:
        problems.append(f"{drafts.height} drafts + {rejects.height} rejects != {requested} requested")
    ids = [*drafts["draft_id"], *rejects["record_id"]]
    if len(ids) != len(set(ids)):
        problems.append("a draft id occurs twice (among drafts and rejects)")
    unknown = set(drafts["status"]) - set(DRAFT_STATUSES)
    if unknown:
        problems.append(f"unknown draft statuses {sorted(unknown)}")
    return problems


def response_problems(responses: pl.DataFrame, missions: pl.DataFrame) -> list[str]:
    """One row per turn of every selected mission, each with a response or an error."""
    problems = []
    expected = {(m, t) for m, n in zip(missions["mission_id"], missions["n_turns"], strict=True) for t in range(n)}
    found = list(zip(responses["mission_id"], responses["turn_index"], strict=True))
    if len(found) != len(set(found)) or set(found) != expected:
        problems.append(
            f"{len(found)} response rows for {len(expected)} mission turns "
            f"({len(expected - set(found))} missing, {len(set(found) - expected)} unexpected, "
            f"{len(found) - len(set(found))} repeated)"
        )
    empty = responses.filter(pl.col("response").is_null() & pl.col("error").is_null()).height
    if empty:
        problems.append(f"{empty} turns have neither a response nor an error")
    return problems


def score_problems(breakdowns: pl.DataFrame) -> list[str]:
    """Pass rates in [0, 1]; ungraded within criteria; each breakdown's criteria add up to the model's."""
    problems = []
    rates = breakdowns["weighted_pass_rate"].drop_nulls()
    if ((rates < 0) | (rates > 1)).any():
        problems.append("a weighted pass rate lies outside [0, 1]")
    if (breakdowns["n_ungraded"] > breakdowns["n_criteria"]).any():
        problems.append("more ungraded than graded criteria in a slice")
    totals = breakdowns.group_by("dimension", "model").agg(pl.col("n_criteria").sum())
    overall = totals.filter(pl.col("dimension") == "model").select("model", pl.col("n_criteria").alias("total"))
    mismatched = totals.join(overall, on="model").filter(pl.col("n_criteria") != pl.col("total"))
    if mismatched.height:
        pairs = list(zip(mismatched["dimension"], mismatched["model"], strict=True))
        problems.append(f"criteria of a breakdown do not add up to the model's: {pairs}")
    return problems
