"""Scoring filters from their proxy runs: Δ bits per byte against a random subset of equal yield.

A proxy run row is (filter, seed, target, bpb). A filter's score per seed is the mean bpb over the
target sets; Δ vs random is that minus the score of the random baseline at the filter's yield with the
same seed (paired, so seed noise shared by both cancels), averaged over seeds, with the spread over
seeds beside it. Negative Δ = the filter's documents teach the proxy more than random ones do.
"""

from __future__ import annotations

import math

import polars as pl

from ops.webdocs.filters import COMPOUND, NO_FILTER, SINGLE

RUN_SCHEMA: dict[str, pl.DataType] = {
    "filter": pl.String,
    "seed": pl.Int64,
    "target": pl.String,
    "bits_per_byte": pl.Float64,
    "tokens_trained": pl.Int64,
    "train_seconds": pl.Float64,
    "kept_docs": pl.Int64,
    "parameters": pl.Int64,
    "contaminated_docs": pl.Int64,
    "checkpoint_version": pl.String,
}


def seed_scores(runs: pl.DataFrame) -> pl.DataFrame:
    """Mean bpb over the target sets, per filter and seed."""
    return runs.group_by("filter", "seed").agg(pl.col("bits_per_byte").mean().alias("score")).sort("filter", "seed")


def _paired_delta(scores: pl.DataFrame, baseline: str | None, name: str) -> tuple[float, float]:
    """Mean and sample std over seeds of (filter - baseline), paired by seed; NaN when a side is missing."""
    if baseline is None:
        return math.nan, math.nan
    mine = scores.filter(pl.col("filter") == name).select("seed", "score")
    theirs = scores.filter(pl.col("filter") == baseline).select("seed", pl.col("score").alias("base"))
    paired = mine.join(theirs, on="seed")
    if paired.is_empty():
        return math.nan, math.nan
    delta = paired["score"] - paired["base"]
    spread = float(delta.std()) if delta.len() > 1 else math.nan
    return float(delta.mean()), spread


def score_filters(runs: pl.DataFrame, filters: pl.DataFrame, kinds: tuple[str, ...] = (SINGLE,)) -> pl.DataFrame:
    """Ranked table of the filters of `kinds` that have runs: yield, mean bpb (and per target), seed spread,
    Δ vs random at equal yield and Δ vs no filter (mean and spread over paired seeds); rank 1 = lowest Δ."""
    scores = seed_scores(runs)
    per_target = runs.group_by("filter").agg(
        [pl.col("bits_per_byte").filter(pl.col("target") == t).mean().alias(f"bpb_{t}") for t in _targets(runs)]
    )
    rows = []
    for row in filters.filter(pl.col("kind").is_in(kinds)).iter_rows(named=True):
        mine = scores.filter(pl.col("filter") == row["name"])["score"]
        if mine.is_empty():
            continue
        delta, delta_spread = _paired_delta(scores, row["baseline"], row["name"])
        delta_none, _ = _paired_delta(scores, NO_FILTER, row["name"])
        rows.append(
            {
                "name": row["name"],
                "kind": row["kind"],
                "dimension": row["dimension"],
                "expression": row["expression"],
                "yield": row["yield"],
                "kept_docs": row["kept_docs"],
                "baseline": row["baseline"],
                "seeds": mine.len(),
                "mean_bpb": float(mine.mean()),
                "seed_spread_bpb": float(mine.std()) if mine.len() > 1 else math.nan,
                "delta_vs_random": delta,
                "delta_spread": delta_spread,
                "delta_vs_none": delta_none,
            }
        )
    table = pl.DataFrame(rows, schema=SCORE_SCHEMA)
    table = table.join(per_target.rename({"filter": "name"}), on="name", how="left")
    table = table.sort(["delta_vs_random", "name"], nulls_last=True)
    return table.with_columns(rank=pl.int_range(1, table.height + 1, dtype=pl.Int64))


SCORE_SCHEMA: dict[str, pl.DataType] = {
    "name": pl.String,
    "kind": pl.String,
    "dimension": pl.String,
    "expression": pl.String,
    "yield": pl.Float64,
    "kept_docs": pl.Int64,
    "baseline": pl.String,
    "seeds": pl.Int64,
    "mean_bpb": pl.Float64,
    "seed_spread_bpb": pl.Float64,
    "delta_vs_random": pl.Float64,
    "delta_spread": pl.Float64,
    "delta_vs_none": pl.Float64,
}


def _targets(runs: pl.DataFrame) -> list[str]:
    return sorted(runs["target"].unique().to_list())


def pass2_table(
    pass1: pl.DataFrame, compound_scores: pl.DataFrame, fallback: pl.DataFrame | None = None
) -> pl.DataFrame:
    """The compounds' scores next to the best single filter, re-ranked together; `chosen` marks the winner
    (lowest Δ vs random; ties to the simpler single filter). When no filter was scored at all (no
    single filter had a usable yield), `fallback` (the no-filter baseline's score) is the winner."""
    best_single = pass1.sort("rank").head(1).drop("rank")
    both = pl.concat([compound_scores.drop("rank"), best_single], how="diagonal_relaxed")
    if both.is_empty() and fallback is not None:
        both = fallback.drop("rank")
    both = both.with_columns(is_single=pl.col("kind") != COMPOUND)
    both = both.sort(["delta_vs_random", "is_single", "name"], descending=[False, True, False], nulls_last=True)
    both = both.drop("is_single").with_columns(rank=pl.int_range(1, both.height + 1, dtype=pl.Int64))
    return both.with_columns(chosen=pl.col("rank") == 1)


def proxy_compute(pass1_runs: int, pass2_runs: int, singles: int, seeds: int, tokens_per_run: int) -> dict[str, int]:
    """Proxy tokens spent by the two-pass search and by a full grid (every single + AND/OR of every pair of
    singles, same seeds); baselines are counted in the two-pass figure, not in the grid's."""
    grid_runs = singles + 2 * singles * (singles - 1) // 2
    return {
        "two_pass_runs": pass1_runs + pass2_runs,
        "two_pass_tokens": (pass1_runs + pass2_runs) * seeds * tokens_per_run,
        "full_grid_runs": grid_runs,
        "full_grid_tokens": grid_runs * seeds * tokens_per_run,
    }
