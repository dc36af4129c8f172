"""Arena-Hard-style pairwise judging of two policies on held-out queries, both orders, with a bootstrap interval.

The verdict goes through the rubric engine: the judge sees the query and both answers (labelled Response 1
and Response 2, as data) and decides the criterion "Response 1 answers better than Response 2". Each
query is judged twice with the answers swapped (position bias cancels); the candidate's score per query
is the mean over its graded orders (1 = won both, 0.5 = split, 0 = lost both), and the win rate is the
mean over queries with a percentile bootstrap interval over queries.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from ops.common.llm import LLMClient
from ops.rubrics.criteria import Criterion
from ops.rubrics.grading import MET, UNGRADED
from ops.rubrics.qubric.judging import JudgeSettings, Response, grade_responses

PAIRWISE_SCHEMA: dict[str, pl.DataType] = {
    "query_id": pl.String(),
    "order": pl.String(),
    "status": pl.String(),
    "candidate_wins": pl.Float64(),
    "explanation": pl.String(),
    "attempts": pl.Int64(),
    "judge_latency_s": pl.Float64(),
}
CANDIDATE_FIRST, BASELINE_FIRST = "candidate_first", "baseline_first"
BETTER = "Of the two responses shown, Response 1 answers the user's request better than Response 2: more correct, \
more helpful and more complete."


def _both(first: str, second: str) -> str:
    return f"=== Response 1 ===\n{first}\n\n=== Response 2 ===\n{second}"


def pairwise_verdicts(
    judge: LLMClient,
    queries: Mapping[str, str],
    candidate: Mapping[str, str],
    baseline: Mapping[str, str],
    settings: JudgeSettings,
) -> pl.DataFrame:
    """Two verdicts per query (`PAIRWISE_SCHEMA`); `candidate_wins` is 1/0 from the candidate's side, null when
    the judge gave no verdict."""
    responses, criteria = [], {}
    for query_id, question in sorted(queries.items()):
        for order in (CANDIDATE_FIRST, BASELINE_FIRST):
            pair = (candidate[query_id], baseline[query_id])
            text = _both(*pair) if order == CANDIDATE_FIRST else _both(*reversed(pair))
            item = f"{query_id}|{order}"
            responses.append(Response(item, order, item, question, text))
            criteria[item] = [Criterion(f"{item}|better", item, 0, BETTER, 1.0)]
    grades = grade_responses(judge, responses, criteria, settings)
    rows = []
    for row in grades.iter_rows(named=True):
        query_id, order = row["item_id"].rsplit("|", 1)
        first_better = row["status"] == MET
        wins = None if row["status"] == UNGRADED else float(first_better == (order == CANDIDATE_FIRST))
        rows.append(
            {
                "query_id": query_id,
                "order": order,
                "status": row["status"],
                "candidate_wins": wins,
                "explanation": row["explanation"] or row["error"],
                "attempts": row["attempts"],
                "judge_latency_s": row["judge_latency_s"],
            }
        )
    return pl.DataFrame(rows, schema=PAIRWISE_SCHEMA)


def query_scores(verdicts: pl.DataFrame) -> pl.DataFrame:
    """Per query: the candidate's mean score over graded orders and whether both orders agreed."""
    return (
        verdicts.filter(pl.col("candidate_wins").is_not_null())
        .group_by("query_id")
        .agg(pl.col("candidate_wins").mean().alias("score"), pl.len().alias("orders"))
        .sort("query_id")
    )


def win_rate(
    verdicts: pl.DataFrame, n_bootstrap: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, float | int | None]:
    """Win rate of the candidate (ties 0.5), its percentile bootstrap interval over queries, the share of
    queries judged the same in both orders, and how many queries had a verdict."""
    scores = query_scores(verdicts)
    values = scores["score"].to_numpy()
    both = scores.filter(pl.col("orders") == 2)
    consistent = both.filter(pl.col("score") != 0.5).height / both.height if both.height else None
    if values.size == 0:
        return {"win_rate": None, "ci_low": None, "ci_high": None, "queries": 0, "order_consistency": consistent}
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(n_bootstrap, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return {
        "win_rate": float(values.mean()),
        "ci_low": float(np.percentile(means, tail)),
        "ci_high": float(np.percentile(means, 100 - tail)),
        "queries": int(values.size),
        "order_consistency": consistent,
    }
