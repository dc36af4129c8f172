"""Corpus-level accounting of the intake: what each shard kept and quarantined, and why."""

from __future__ import annotations

import polars as pl

from ops.webdocs.quality_rules import QUALITY_REASONS

UNREADABLE_SHARD = "unreadable_shard"


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


def unreadable_shards(summary: pl.DataFrame) -> list[str]:
    """Shards recorded as unreadable as a whole (every row quarantined as `unreadable_shard`), sorted."""
    if UNREADABLE_SHARD not in summary.columns:
        return []
    return summary.filter(pl.col(UNREADABLE_SHARD) == pl.col("rows_in"))["shard"].sort().to_list()


def quality_filter_effect(summary: pl.DataFrame) -> pl.DataFrame:
    """Per shard: documents that reached the quality rules, how many each rule refused, and the share refused.

    A document reaches the quality rules when it passed reading, markup, length and language checks:
    it is then kept, refused by a quality rule, or (after them) an exact duplicate.
    """
    rules = [c for c in summary.columns if c in QUALITY_REASONS]
    refused = pl.sum_horizontal(rules) if rules else pl.lit(0)
    duplicates = pl.col("duplicate") if "duplicate" in summary.columns else pl.lit(0)
    effect = summary.select(
        "shard",
        (pl.col("kept") + refused + duplicates).alias("reached_quality_rules"),
        refused.alias("quality_filtered"),
        *rules,
    )
    share = pl.col("quality_filtered") / pl.col("reached_quality_rules")
    return effect.with_columns(
        pl.when(pl.col("reached_quality_rules") > 0).then(share.round(4)).otherwise(0.0).alias("share_filtered")
    )
