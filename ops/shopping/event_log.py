"""Summaries of simulated event logs for the UI: the event mix and the spend, month by month."""

from __future__ import annotations

import polars as pl

EVENT_TYPES = ("search", "view", "add_to_cart", "remove_from_cart", "purchase", "return", "review")


def monthly_activity(events: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """Per calendar month: events of each type, gross spend (purchases) and refunds (returns)."""
    lazy = events.lazy() if isinstance(events, pl.DataFrame) else events
    amount = pl.col("price").fill_null(0.0) * pl.col("quantity").fill_null(0).cast(pl.Float64)
    return (
        lazy.with_columns(pl.col("ts").dt.strftime("%Y-%m").alias("month"))
        .group_by("month")
        .agg(
            *[(pl.col("event_type") == kind).sum().alias(kind) for kind in EVENT_TYPES],
            amount.filter(pl.col("event_type") == "purchase").sum().round(2).alias("spend"),
            amount.filter(pl.col("event_type") == "return").sum().round(2).alias("refunds"),
            pl.col("customer_id").n_unique().alias("active_customers"),
        )
        .sort("month")
        .collect()
    )


def event_mix(activity: pl.DataFrame) -> dict[str, list[float]]:
    """Stacked-bar series (one per event type) from `monthly_activity`."""
    return {kind: activity[kind].cast(pl.Float64).to_list() for kind in EVENT_TYPES}
