"""E5 passage embeddings of the clean documents, in a LanceDB table per embedding model."""

import re

import dagster as dg
import polars as pl

from assets.outputs import PREVIEW_ROWS, markdown_table
from ops.webdocs.embedding import (
    EmbeddingProgress,
    embeddings_content_version,
    embeddings_schema,
    plan_embeddings,
    stream_embeddings,
)
from pipelines.partitions import web_doc_shards
from resources.embedder import EmbedderResource
from resources.io_manager import latest_materialization
from resources.lancedb import LanceDBResource, rows_where, sql_literal

GROUP = "webdocs"
OPTIMIZE_AFTER_ROWS = 10_000
LOG_EVERY_BATCHES = 10


def embeddings_table_name(model_id: str) -> str:
    """One table per embedding model, so switching models never mixes vector spaces."""
    return "web_doc_embeddings__" + re.sub(r"[^A-Za-z0-9]+", "_", model_id).strip("_").lower()


@dg.asset(partitions_def=web_doc_shards, group_name=GROUP, code_version="1", kinds={"lancedb"}, pool="gpu")
def web_doc_embeddings(
    context: dg.AssetExecutionContext,
    web_docs: pl.DataFrame,
    embedder: EmbedderResource,
    lancedb: LanceDBResource,
) -> dg.MaterializeResult:
    """Passage embeddings (E5 prefixes where the model needs them) of one shard's documents.

    Stored in LanceDB keyed by (doc_id, text_hash): unchanged documents are never re-embedded, each
    batch is committed as written (a killed run resumes), and the data version names the content
    and the Lance table version that holds it.
    """
    shard = context.partition_key
    table = lancedb.table(embeddings_table_name(embedder.model_id), embeddings_schema(embedder.dim))
    stored = pl.from_arrow(rows_where(table, "shard", shard, ["doc_id", "text_hash"]))
    plan = plan_embeddings(web_docs, stored)
    if plan.stale_doc_ids:
        ids = ", ".join(sql_literal(doc_id) for doc_id in plan.stale_doc_ids)
        table.delete(f"shard = {sql_literal(shard)} AND doc_id IN ({ids})")

    def report(progress: EmbeddingProgress) -> None:
        if progress.done < progress.total and progress.done % (embedder.batch_size * LOG_EVERY_BATCHES):
            return
        context.log.info(
            f"embedded {progress.done}/{progress.total} documents "
            f"({progress.done / max(progress.seconds, 1e-9):.1f} docs/s)"
        )

    written = stream_embeddings(
        plan,
        shard=shard,
        model_id=embedder.model_id,
        embed=embedder.embed_passages,
        write=table.add,
        batch_size=embedder.batch_size,
        on_progress=report,
    )
    if written >= OPTIMIZE_AFTER_ROWS:
        table.optimize()
    content = embeddings_content_version(web_docs, embedder.model_id)
    previous = latest_materialization(context.instance, context.asset_key, shard)
    previous_version = previous.tags.get("dagster/data_version") if previous is not None and previous.tags else None
    unchanged = not written and not plan.stale_doc_ids and (previous_version or "").startswith(content)
    version = previous_version if unchanged else f"{content}-lance{table.version}"
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            "dagster/row_count": web_docs.height,
            "preview": markdown_table(web_docs.select("doc_id", "text_hash", "chars", "language").head(PREVIEW_ROWS)),
            "embedded_now": written,
            "reused": web_docs.height - written,
            "deleted_stale": len(plan.stale_doc_ids),
            "model_id": embedder.model_id,
            "dim": embedder.dim,
            "lance_table": embeddings_table_name(embedder.model_id),
            "lance_uri": dg.MetadataValue.path(lancedb.uri),
            "lance_table_version": table.version,
        },
    )
