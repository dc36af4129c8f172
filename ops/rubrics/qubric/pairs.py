"""The query-rubric pair artifact: scenario query, key points, weighted criteria, p̂, spread, provenance;
its TRL/verl JSONL export, and the problems its blocking check looks for."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import polars as pl

from ops.rubrics.qubric.reward import criteria_json

CRITERION_STRUCT = pl.Struct(
    {"criterion_id": pl.String(), "text": pl.String(), "weight": pl.Float64(), "kind": pl.String()}
)
PAIRS_SCHEMA: dict[str, pl.DataType] = {
    "query_id": pl.String(),
    "query": pl.String(),
    "scenario_query": pl.String(),
    "key_points": pl.List(pl.String()),
    "criteria": pl.List(CRITERION_STRUCT),
    "p_hat": pl.Float64(),
    "spread": pl.Float64(),
    "learnability": pl.Float64(),
    "rank": pl.Int64(),
    "teacher": pl.String(),
    "policy": pl.String(),
    "judge": pl.String(),
    "prompt_version": pl.String(),
}


def build_pairs(
    scenarios: pl.DataFrame, criteria: pl.DataFrame, learnability: pl.DataFrame, provenance: Mapping[str, str]
) -> pl.DataFrame:
    """One row per learnable query (`PAIRS_SCHEMA`, ordered by rank): its kept criteria and its p̂.

    `scenarios` are the key-point rewrites, `criteria` the kept contrastive criteria, `learnability` the
    filter's rows; `provenance` names the teacher, policy and judge models.
    """
    kept = learnability.filter(pl.col("kept")).select("query_id", "p_hat", "spread", "learnability", "rank")
    rubric = criteria.group_by("item_id").agg(
        pl.struct(pl.col("criterion_id"), pl.col("text"), pl.col("weight"), pl.col("category").alias("kind")).alias(
            "criteria"
        )
    )
    pairs = (
        scenarios.select("query_id", "query", "scenario_query", "key_points", "prompt_version")
        .join(kept, on="query_id", how="inner")
        .join(rubric.rename({"item_id": "query_id"}), on="query_id", how="inner")
        .with_columns(
            pl.lit(provenance["teacher"]).alias("teacher"),
            pl.lit(provenance["policy"]).alias("policy"),
            pl.lit(provenance["judge"]).alias("judge"),
            pl.col("criteria").list.sort(),
        )
    )
    return pairs.select(list(PAIRS_SCHEMA)).cast(PAIRS_SCHEMA).sort("rank")  # type: ignore[arg-type]


def pair_problems(pairs: pl.DataFrame) -> list[str]:
    """What makes a pair unusable for training: no positive criterion, or a weight that is not finite/non-zero."""
    problems = []
    for row in pairs.iter_rows(named=True):
        weights = [criterion["weight"] for criterion in row["criteria"] or []]
        if not any(weight is not None and weight > 0 for weight in weights):
            problems.append(f"{row['query_id']}: no positive criterion")
        bad = [w for w in weights if w is None or not math.isfinite(w) or w == 0]
        if bad:
            problems.append(f"{row['query_id']}: invalid weights {bad}")
    return problems


def trl_rows(pairs: pl.DataFrame) -> list[dict[str, Any]]:
    """Training rows as TRL's GRPOTrainer (and verl) read them: a conversational `prompt`, the `criteria`
    column (JSON text) the rubric reward reads, and the pair's id and p̂ as extra columns."""
    return [
        {
            "prompt": [{"role": "user", "content": row["scenario_query"]}],
            "criteria": criteria_json(row["criteria"]),
            "query_id": row["query_id"],
            "p_hat": row["p_hat"],
        }
        for row in pairs.iter_rows(named=True)
    ]


def jsonl_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Rows as UTF-8 JSON Lines."""
    return "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows).encode("utf-8")
