"""Which trajectories a policy evaluation runs on: a seeded sample per BFCL category and per augmentation."""

from __future__ import annotations

import polars as pl

from ops.common.text import sha256_hex

# The expected behaviour of an example whose oracle has no call (BFCL irrelevance); scored by the
# AST reward like "call" (an empty oracle rewards an answer without calls), never sent to the judge.
NO_CALL = "no_call"


def evaluation_sample(base: pl.DataFrame, augmented: pl.DataFrame, per_group: int, seed: int) -> pl.DataFrame:
    """Up to `per_group` base trajectories of each category and augmented ones of each augmentation
    (0: all), chosen by a seeded hash of the id so that the sample is stable as the data grows.
    Base rows get augmentation "none" and expected behaviour "call"; a "call" row whose oracle is empty
    (BFCL irrelevance: no tool fits the query) expects "no_call" instead."""
    rows = pl.concat(
        [
            base.with_columns(
                pl.lit(None, pl.String).alias("base_trajectory_id"),
                pl.lit("none").alias("augmentation"),
                pl.lit("call").alias("expected_behaviour"),
                pl.col("category").alias("group"),
            ),
            augmented.with_columns(pl.col("augmentation").alias("group")),
        ],
        how="diagonal_relaxed",
    ).with_columns(
        pl.when((pl.col("expected_behaviour") == "call") & (pl.col("oracle_json") == "[]"))
        .then(pl.lit(NO_CALL))
        .otherwise(pl.col("expected_behaviour"))
        .alias("expected_behaviour")
    )
    ranked = rows.with_columns(
        pl.col("trajectory_id")
        .map_elements(lambda value: sha256_hex(f"{seed}|{value}"), return_dtype=pl.String)
        .alias("_key")
    ).sort("group", "_key")
    if per_group > 0:
        ranked = ranked.group_by("group", maintain_order=True).head(per_group)
    return ranked.drop("_key", "group").sort("trajectory_id")


def rewrite_bases(base: pl.DataFrame, limit: int, seed: int) -> pl.DataFrame:
    """Up to `limit` base trajectories (0: all) for the LLM query rewrites: only those whose oracle is a
    call (an irrelevance example has nothing to rewrite towards), in a seeded order across categories."""
    calls = base.filter(pl.col("oracle_json") != "[]")
    if limit <= 0:
        return calls
    keys = calls["trajectory_id"].map_elements(lambda value: sha256_hex(f"{seed}|{value}"), return_dtype=pl.String)
    return calls.with_columns(keys.alias("_key")).sort("_key").head(limit).drop("_key")
