"""Partition definitions, in their own module so that assets and pipelines share one object each."""

import dagster as dg

# One partition per input file of web documents (its file name), registered by the shard sensor
# or by `python -m pipelines.sample`.
web_doc_shards = dg.DynamicPartitionsDefinition(name="web_doc_shards")
