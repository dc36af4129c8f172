"""Simulated product search: the ranked results of every query the simulator can issue.

The simulator only issues queries from a finite vocabulary (`ops.shopping.simulator.search_queries`),
so their results are ranked once by the vector index and stored as a table; simulating a cohort then
costs a dictionary lookup per search instead of an embedding and a vector query.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import polars as pl

RANKINGS_SCHEMA = {"query": pl.String, "rank": pl.Int32, "product_id": pl.String, "distance": pl.Float32}


def rankings_frame(
    queries: Sequence[str], ranked_ids: Sequence[Sequence[str]], distances: Sequence[Sequence[float]]
) -> pl.DataFrame:
    """One row per (query, rank): the product at that rank and its vector distance."""
    rows = [
        (query, rank, product_id, float(distance))
        for query, ids, scores in zip(queries, ranked_ids, distances, strict=True)
        for rank, (product_id, distance) in enumerate(zip(ids, scores, strict=True))
    ]
    return pl.DataFrame(rows, schema=RANKINGS_SCHEMA, orient="row")


def rankings_by_query(frame: pl.DataFrame) -> Mapping[str, Sequence[str]]:
    """The table back as query -> product ids, best first (what the simulator takes)."""
    ordered = frame.sort("query", "rank").group_by("query", maintain_order=True).agg("product_id")
    return dict(zip(ordered["query"].to_list(), ordered["product_id"].to_list(), strict=True))
