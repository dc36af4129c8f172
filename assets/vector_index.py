"""Text embeddings in a LanceDB table that is rebuilt only when its texts or the embedding model change."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg
import polars as pl

from ops.common.versioning import combine_versions, frame_version
from resources.embedder import EmbedderResource
from resources.lancedb import LanceDBResource, table_exists

if TYPE_CHECKING:
    import lancedb

VERSION_COLUMN = "texts_version"


def index_table_name(prefix: str, model_id: str) -> str:
    """One table per embedding model, so switching models never mixes vector spaces."""
    return f"{prefix}__" + re.sub(r"[^A-Za-z0-9]+", "_", model_id).strip("_").lower()


def text_index(
    texts: pl.DataFrame, text_column: str, prefix: str, embedder: EmbedderResource, lancedb_resource: LanceDBResource
) -> tuple[lancedb.table.Table, bool]:
    """The LanceDB table holding `texts` (every column kept) with a `vector` of `text_column`, and
    whether it was (re)built now. The table records the content version it was built from, so an
    unchanged catalog or tool set is never embedded twice."""
    ordered = texts.sort(texts.columns[0])
    version = combine_versions([frame_version(ordered), embedder.model_id])
    name = index_table_name(prefix, embedder.model_id)
    connection = lancedb_resource.connect()
    if table_exists(connection, name):
        table = connection.open_table(name)
        if _stored_version(table) == version:
            return table, False
    dg.get_dagster_logger().info(f"embedding {ordered.height} texts into {name} with {embedder.model_id}")
    vectors = embedder.embed_passages(ordered[text_column].to_list())
    data = ordered.with_columns(
        pl.Series("vector", vectors.tolist(), dtype=pl.Array(pl.Float32, embedder.dim)),
        pl.lit(version).alias(VERSION_COLUMN),
    )
    return connection.create_table(name, data.to_arrow(), mode="overwrite"), True


def _stored_version(table: lancedb.table.Table) -> str | None:
    if VERSION_COLUMN not in table.schema.names or table.count_rows() == 0:
        return None
    return table.search().select([VERSION_COLUMN]).limit(1).to_arrow()[VERSION_COLUMN][0].as_py()


def nearest(table: lancedb.table.Table, vectors: Sequence[Any], k: int, columns: Sequence[str]) -> list[pl.DataFrame]:
    """The `k` nearest rows (`columns` plus `_distance`, closest first) of each query vector, in input order.

    One batched search: a flat LanceDB search shares one table scan across the query vectors, where one
    search per vector scanned the table once each (and logged one warning each).
    """
    if len(vectors) == 0:
        return []
    hits = pl.from_arrow(table.search(list(vectors)).limit(k).select([*columns, "_distance"]).to_arrow())
    if "query_index" not in hits.columns:  # a single query vector comes back without the index
        hits = hits.with_columns(pl.lit(0).alias("query_index"))
    hits = hits.sort("query_index", "_distance", maintain_order=True)
    parts = hits.partition_by("query_index", as_dict=True, include_key=False)
    empty = hits.clear().drop("query_index")
    return [parts.get((index,), empty) for index in range(len(vectors))]
