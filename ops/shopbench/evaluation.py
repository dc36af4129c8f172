"""Glue between missions, responses and the rubric engine: which missions to run, what to grade, and
the per-model summary the UI shows."""

from __future__ import annotations

import json

import polars as pl

from ops.rubrics.criteria import criteria_from_frame
from ops.rubrics.grading import GRADES_SCHEMA, UNGRADED, GradingItem
from ops.rubrics.scores import healthbench_score, score_breakdowns

NO_RESPONSE = "no response to grade: "


def select_missions(missions: pl.DataFrame, limit: int) -> pl.DataFrame:
    """Up to `limit` missions (0: all), alternating single-turn and multi-turn ones in id order, so a
    small run still exercises both kinds."""
    if limit <= 0 or missions.height <= limit:
        return missions
    single = missions.filter(pl.col("n_turns") == 1).sort("mission_id")["mission_id"].to_list()
    multi = missions.filter(pl.col("n_turns") > 1).sort("mission_id")["mission_id"].to_list()
    chosen: list[str] = []
    while len(chosen) < limit and (single or multi):
        for pool in (multi, single):
            if pool and len(chosen) < limit:
                chosen.append(pool.pop(0))
    return missions.filter(pl.col("mission_id").is_in(chosen))


def grading_items(responses: pl.DataFrame, criteria: pl.DataFrame) -> tuple[list[GradingItem], pl.DataFrame]:
    """One judge item per (answered turn, criterion of that turn); criteria of turns without a response
    come back as "ungraded" grades with the reason, never as passes or fails."""
    by_turn: dict[tuple[str, int], list] = {}
    for criterion in criteria_from_frame(criteria):
        by_turn.setdefault((criterion.item_id, criterion.turn_index), []).append(criterion)
    items, ungraded = [], []
    for row in responses.iter_rows(named=True):
        for criterion in by_turn.get((row["mission_id"], row["turn_index"]), []):
            if row["response"] is None:
                ungraded.append(
                    {
                        "item_id": row["mission_id"],
                        "response_id": row["response_id"],
                        "model": row["model"],
                        "criterion_id": criterion.criterion_id,
                        "turn_index": row["turn_index"],
                        "status": UNGRADED,
                        "explanation": None,
                        "error": NO_RESPONSE + (row["error"] or "unknown"),
                        "attempts": 0,
                        "judge_prompt_tokens": 0,
                        "judge_completion_tokens": 0,
                        "judge_latency_s": 0.0,
                    }
                )
            else:
                conversation = tuple(json.loads(row["conversation_json"]))
                items.append(
                    GradingItem(
                        row["response_id"], row["model"], row["mission_id"], row["turn_index"], conversation, criterion
                    )
                )
    return items, pl.DataFrame(ungraded, schema=GRADES_SCHEMA)


def model_summary(grades: pl.DataFrame, criteria: pl.DataFrame, n_bootstrap: int = 1000) -> pl.DataFrame:
    """Per model: the weighted pass rate overall and on required / optional criteria (the paper's
    scores), the HealthBench-style score with its bootstrap std, and how much went ungraded."""
    breakdowns = score_breakdowns(grades, criteria, by=("model", "required"))
    overall = breakdowns.filter(pl.col("dimension") == "model").select(
        "model", pl.col("weighted_pass_rate").alias("pass_rate"), "n_responses", "n_criteria", "n_ungraded"
    )
    required = breakdowns.filter(pl.col("dimension") == "required").pivot(
        on="value", index="model", values="weighted_pass_rate"
    )
    required = required.rename({name: f"pass_rate_required_{name}" for name in required.columns if name != "model"})
    healthbench = healthbench_score(grades, criteria, n_bootstrap=n_bootstrap).select(
        "model", pl.col("score").alias("healthbench_score"), "bootstrap_std"
    )
    return overall.join(required, on="model", how="left").join(healthbench, on="model", how="left").sort("model")


def turn_degradation(grades: pl.DataFrame, criteria: pl.DataFrame) -> pl.DataFrame:
    """Weighted pass rate per model and turn index (multi-turn missions only): how scores fall as the
    conversation goes on."""
    multi = criteria.group_by("item_id").agg(pl.col("turn_index").max().alias("last")).filter(pl.col("last") > 0)
    grades = grades.filter(pl.col("item_id").is_in(multi["item_id"].implode()))
    breakdowns = score_breakdowns(grades, criteria, by=("turn_index",))
    return breakdowns.select(
        "model", pl.col("value").cast(pl.Int64).alias("turn_index"), "weighted_pass_rate", "n_responses"
    ).sort("model", "turn_index")
