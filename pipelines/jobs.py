"""Jobs: one per stage of a domain, plus `sample`, which covers every asset on the bundled sample data."""

import dagster as dg

from pipelines.partitions import web_doc_shards

# Per shard: read, clean, quarantine, embed and annotate. What the shard sensor and backfills run.
webdocs_job = dg.define_asset_job(
    name="webdocs",
    selection=dg.AssetSelection.assets(
        "raw_web_docs",
        "web_docs",
        "web_docs_quarantine",
        "web_doc_embeddings",
        "web_doc_annotations",
        "web_doc_annotations_quarantine",
    ),
    partitions_def=web_doc_shards,
    description="Read, clean, quarantine, embed and teacher-annotate one shard of web documents.",
)

# Over every shard: the corpus summary, the NMI matrix, the students and their agreement.
webdocs_corpus_job = dg.define_asset_job(
    name="webdocs_corpus",
    selection=dg.AssetSelection.assets(
        "web_corpus_summary",
        "taxonomy_nmi",
        "mlp_filter",
        "encoder_classifier",
        "distilled_classifier",
        "student_agreement",
    ),
    description="Summarize every shard, measure the taxonomy, train the students and compare them.",
)

# Per shard again: label every document with the MLP filter trained over the whole corpus.
webdocs_labels_job = dg.define_asset_job(
    name="webdocs_labels",
    selection=dg.AssetSelection.assets("web_doc_labels"),
    partitions_def=web_doc_shards,
    description="Label one shard's documents with the MLP filter.",
)

# Everything. `python -m pipelines.sample` runs it in stages: partitioned assets once per shard,
# unpartitioned ones once, in dependency order.
sample_job = dg.define_asset_job(
    name="sample",
    selection=dg.AssetSelection.all(),
    description="Every asset on the bundled sample data (see `python -m pipelines.sample`).",
)
