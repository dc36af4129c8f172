"""Corpus-level accounting of the intake: what each shard kept and quarantined, and why."""

from __future__ import annotations

import polars as pl


def shard_summary(kept: pl.LazyFrame, quarantined: pl.LazyFrame) -> pl.DataFrame:
    """One row per shard: rows in, kept, quarantined by reason, mean length and share English."""
    kept_by_shard = kept.group_by("shard").agg(
        pl.len().alias("kept"),
        pl.col("chars").mean().alias("mean_chars"),
        (pl.col("language") == "en").mean().alias("share_en"),
    )
    reasons = (
        quarantined.group_by("shard", "reason")
        .agg(pl.len().alias("n"))
        .collect()
        .pivot(on="reason", index="shard", values="n", aggregate_function="sum")
        .fill_null(0)
    )
    reason_columns = sorted(c for c in reasons.columns if c != "shard")
    summary = (
        kept_by_shard.collect()
        .join(reasons, on="shard", how="full", coalesce=True)
        .with_columns(pl.col(["kept", *reason_columns]).fill_null(0))
        .with_columns(pl.sum_horizontal(reason_columns or [pl.lit(0)]).alias("quarantined"))
        .with_columns((pl.col("kept") + pl.col("quarantined")).alias("rows_in"))
    )
    return summary.select("shard", "rows_in", "kept", "quarantined", *reason_columns, "mean_chars", "share_en").sort(
        "shard"
    )


def summary_chart_series(summary: pl.DataFrame) -> dict[str, list[float]]:
    """Kept rows and each quarantine reason, per shard, for a stacked bar chart."""
    outcomes = [c for c in summary.columns if c not in ("shard", "rows_in", "quarantined", "mean_chars", "share_en")]
    return {name: summary[name].cast(pl.Float64).to_list() for name in outcomes}
