"""The learnability filter: which query-rubric pairs a policy can learn from.

p̂ = the mean normalized rubric score (weighted pass rate) of the G policy samples of a query. A pair is
kept when floor < p̂ < ceiling and its scores vary (spread > tolerance); kept pairs are ranked by
p̂(1 - p̂), the variance of a Bernoulli with mean p̂ (largest when the policy passes half the time). Every
dropped pair says why: `all_fail` (p̂ ≤ floor: the fabricated-reference symptom), `all_pass` (p̂ ≥ ceiling),
`zero_spread` (every sample scored the same), `no_criteria` (no criterion survived the consistency check)
or `ungraded` (the judge gave no verdict on any sample).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from training.rl.group_filter import ZeroVarianceFilter

LEARNABILITY_SCHEMA: dict[str, pl.DataType] = {
    "query_id": pl.String(),
    "n_samples": pl.Int64(),
    "n_scored": pl.Int64(),
    "sample_scores": pl.List(pl.Float64()),
    "p_hat": pl.Float64(),
    "spread": pl.Float64(),
    "learnability": pl.Float64(),
    "kept": pl.Boolean(),
    "reason": pl.String(),
    "rank": pl.Int64(),
}
LEARNABLE = "learnable"
DROP_REASONS = ("all_fail", "all_pass", "zero_spread", "no_criteria", "ungraded")
REASONS = (LEARNABLE, *DROP_REASONS)


@dataclass(frozen=True)
class LearnabilityRule:
    """Keep a pair when floor < p̂ < ceiling and the spread of its sample scores exceeds `tolerance`."""

    floor: float = 0.1
    ceiling: float = 0.9
    tolerance: float = 1e-6

    def __post_init__(self) -> None:
        if not 0.0 <= self.floor < self.ceiling <= 1.0:
            raise ValueError(f"need 0 <= floor < ceiling <= 1, got floor={self.floor}, ceiling={self.ceiling}")

    def decide(self, scores: Sequence[float | None]) -> tuple[str, float | None, float | None]:
        """`(reason, p̂, spread)` for one query's sample scores (None = ungraded sample, left out)."""
        scored = np.array([score for score in scores if score is not None], dtype=float)
        if scored.size == 0:
            return "ungraded", None, None
        p_hat, spread = float(scored.mean()), float(scored.max() - scored.min())
        if p_hat <= self.floor:
            return "all_fail", p_hat, spread
        if p_hat >= self.ceiling:
            return "all_pass", p_hat, spread
        varies = scored.size >= 2 and bool(ZeroVarianceFilter(self.tolerance).keep(scored[None, :])[0])
        return (LEARNABLE if varies else "zero_spread"), p_hat, spread


def learnability_frame(
    query_ids: Sequence[str], scores: Mapping[str, Sequence[float | None]], rule: LearnabilityRule
) -> pl.DataFrame:
    """One row per query (`LEARNABILITY_SCHEMA`); a query absent from `scores` has no criteria. Kept rows are
    ranked 1.. by p̂(1 - p̂), ties by query id."""
    rows = []
    for query_id in query_ids:
        samples = list(scores.get(query_id, ()))
        reason, p_hat, spread = rule.decide(samples) if query_id in scores else ("no_criteria", None, None)
        rows.append(
            {
                "query_id": query_id,
                "n_samples": len(samples),
                "n_scored": sum(score is not None for score in samples),
                "sample_scores": [float("nan") if score is None else score for score in samples],
                "p_hat": p_hat,
                "spread": spread,
                "learnability": None if p_hat is None else p_hat * (1 - p_hat),
                "kept": reason == LEARNABLE,
                "reason": reason,
                "rank": None,
            }
        )
    frame = pl.DataFrame(rows, schema=LEARNABILITY_SCHEMA)
    ranked = frame.filter(pl.col("kept")).sort(["learnability", "query_id"], descending=[True, False])
    ranks = {query_id: index for index, query_id in enumerate(ranked["query_id"].to_list(), start=1)}
    return frame.with_columns(
        pl.col("query_id").replace_strict(ranks, default=None, return_dtype=pl.Int64).alias("rank")
    ).sort("query_id")


P_HAT_BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def p_hat_histogram(values: Sequence[float | None]) -> dict[str, int]:
    """Counts of p̂ per bin of `P_HAT_BINS` ("low-high", the last bin closed at 1); None is left out."""
    numbers = [value for value in values if value is not None]
    bins = list(itertools.pairwise(P_HAT_BINS))
    return {
        f"{low:.1f}-{high:.1f}": sum(low <= v < high or (high == bins[-1][1] and v == high) for v in numbers)
        for low, high in bins
    }
