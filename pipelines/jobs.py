"""Jobs: one per domain, plus `sample`, which covers every asset on the bundled sample data."""

import dagster as dg

from pipelines.partitions import web_doc_shards

# The per-shard part of the web-document intake: what the shard sensor and backfills run.
webdocs_job = dg.define_asset_job(
    name="webdocs",
    selection=dg.AssetSelection.groups("webdocs") - dg.AssetSelection.assets("web_corpus_summary"),
    partitions_def=web_doc_shards,
    description="Read, clean, quarantine and embed one shard of web documents.",
)

# Corpus-wide assets that read every shard; refreshed after shards change.
webdocs_corpus_job = dg.define_asset_job(
    name="webdocs_corpus",
    selection=dg.AssetSelection.assets("web_corpus_summary"),
    description="Summarize every shard and load the clean corpus into DuckDB.",
)

# Everything. `python -m pipelines.sample` runs it once per shard for the partitioned assets, then
# once for the unpartitioned ones.
sample_job = dg.define_asset_job(
    name="sample",
    selection=dg.AssetSelection.all(),
    description="Every asset on the bundled sample data (see `python -m pipelines.sample`).",
)
