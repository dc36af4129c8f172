"""The whole corpus labelled by the MLP filter, at the speed of an MLP."""

import dagster as dg
import numpy as np
import polars as pl

from assets.models import load_model_files
from assets.outputs import frame_output
from assets.webdocs.embeddings import embeddings_table_name
from ops.webdocs.embedding import embeddings_schema
from pipelines.partitions import web_doc_shards
from resources.artifact_store import ArtifactStoreResource
from resources.embedder import EmbedderResource
from resources.lancedb import LanceDBResource, vectors_for

GROUP = "webdocs"
LABEL_BATCH_DOCS = 4_096


@dg.asset(
    partitions_def=web_doc_shards,
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "parquet"},
    deps=["mlp_filter", "web_doc_embeddings"],
)
def web_doc_labels(
    context: dg.AssetExecutionContext,
    web_docs: pl.DataFrame,
    embedder: EmbedderResource,
    lancedb: LanceDBResource,
    artifact_store: ArtifactStoreResource,
) -> dg.Output:
    """Every kept document of the shard labelled by the MLP filter from its stored embedding, in
    batches: primary and secondary code per dimension plus the per-label probabilities, so that later
    filters can threshold them."""
    # torch student modules imported here, not at module level: loading the code location skips torch
    from training.webdocs.mlp_filter import load_mlp, predict_proba, predictions_frame

    trained = load_mlp(load_model_files(context.instance, artifact_store.get_store(), "mlp_filter"))
    if trained.input_dim != embedder.dim:
        raise ValueError(
            f"mlp_filter was trained on {trained.input_dim}-d embeddings, the embedder gives {embedder.dim}"
        )
    table = lancedb.table(embeddings_table_name(embedder.model_id), embeddings_schema(embedder.dim))
    frames = []
    for batch in web_docs.select("doc_id").iter_slices(LABEL_BATCH_DOCS):
        ids = batch["doc_id"].to_list()
        vectors = vectors_for(table, ids)
        missing = [doc_id for doc_id in ids if doc_id not in vectors]
        if missing:
            raise ValueError(
                f"{len(missing)} documents of the shard have no embedding, e.g. {missing[0]!r}: "
                "materialize web_doc_embeddings for this shard"
            )
        frames.append(
            predictions_frame(ids, predict_proba(trained, np.stack([vectors[d] for d in ids])), trained.vocabularies)
        )
        context.log.info(f"labelled {sum(f.height for f in frames)}/{web_docs.height} documents")
    empty = {d: np.zeros((0, len(codes)), dtype=np.float32) for d, codes in trained.vocabularies.items()}
    labels = pl.concat(frames) if frames else predictions_frame([], empty, trained.vocabularies)
    return frame_output(labels, {"embedding_model": embedder.model_id, "rows_in": web_docs.height})
