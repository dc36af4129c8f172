"""Plan and stream document embeddings into a vector table, resuming where a run stopped.

Rows are keyed by (doc_id, text_hash) per embedding model: a document whose text did not change
is never embedded twice, and each written batch is committed on its own, so a killed run keeps
every finished batch and the next run embeds only what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from ops.common.versioning import combine_versions, frame_version


@dataclass(frozen=True)
class EmbeddingPlan:
    """What to embed and what to delete so the table matches the shard's current documents."""

    to_embed: pl.DataFrame  # doc_id, text_hash, text
    stale_doc_ids: list[str]  # stored rows whose document left the shard or changed text


@dataclass(frozen=True)
class EmbeddingProgress:
    """Counters reported after each written batch."""

    done: int
    total: int
    seconds: float


def embeddings_schema(dim: int) -> pa.Schema:
    """Arrow schema of an embeddings table for vectors of `dim` float32 values."""
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("shard", pa.string()),
            ("text_hash", pa.string()),
            ("model_id", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


def plan_embeddings(docs: pl.DataFrame, stored: pl.DataFrame) -> EmbeddingPlan:
    """Compare the shard's documents with the (doc_id, text_hash) pairs already stored."""
    stored_pairs = stored.select("doc_id", "text_hash")
    to_embed = docs.select("doc_id", "text_hash", "text").join(stored_pairs, on=["doc_id", "text_hash"], how="anti")
    stale = stored_pairs.join(docs.select("doc_id", "text_hash"), on=["doc_id", "text_hash"], how="anti")
    return EmbeddingPlan(to_embed=to_embed, stale_doc_ids=stale["doc_id"].to_list())


def stream_embeddings(
    plan: EmbeddingPlan,
    *,
    shard: str,
    model_id: str,
    embed: Callable[[Sequence[str]], np.ndarray],
    write: Callable[[pa.Table], None],
    batch_size: int,
    on_progress: Callable[[EmbeddingProgress], None] | None = None,
) -> int:
    """Embed the planned documents batch by batch, writing each batch before the next; return rows written."""
    total, done, started = plan.to_embed.height, 0, time.perf_counter()
    for batch in plan.to_embed.iter_slices(n_rows=batch_size):
        vectors = np.asarray(embed(batch["text"].to_list()), dtype=np.float32)
        if vectors.shape[0] != batch.height:
            raise ValueError(f"embedder returned {vectors.shape[0]} vectors for {batch.height} texts")
        write(
            pa.table(
                {
                    "doc_id": batch["doc_id"].to_arrow(),
                    "shard": pa.array([shard] * batch.height, pa.string()),
                    "text_hash": batch["text_hash"].to_arrow(),
                    "model_id": pa.array([model_id] * batch.height, pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(vectors.reshape(-1), vectors.shape[1]),
                },
                schema=embeddings_schema(vectors.shape[1]),
            )
        )
        done += batch.height
        if on_progress is not None:
            on_progress(EmbeddingProgress(done=done, total=total, seconds=time.perf_counter() - started))
    return done


def embeddings_content_version(docs: pl.DataFrame, model_id: str) -> str:
    """Version of a shard's embeddings: which model embedded which (doc_id, text_hash) pairs."""
    pairs = docs.select("doc_id", "text_hash").sort("doc_id")
    return combine_versions([model_id, frame_version(pairs)])
