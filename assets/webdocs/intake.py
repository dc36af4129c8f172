"""Web-document intake: raw shards in, clean versioned documents, a quarantine and embeddings out."""

import json

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table
from ops.webdocs.cleaning import CleaningRules, clean_documents
from ops.webdocs.reading import read_shard
from pipelines.partitions import web_doc_shards
from resources.inputs import InputFoldersResource

GROUP = "webdocs"


class WebDocsCleaningConfig(dg.Config):
    """Bounds a kept document must meet (run config of `web_docs`)."""

    min_chars: int = 200
    max_chars: int = 100_000
    languages: list[str] = ["en"]
    min_language_score: float = 0.5
    max_markup_share: float = 0.3

    def rules(self) -> CleaningRules:
        """The plain rules object that `ops.webdocs.cleaning` applies."""
        return CleaningRules(
            min_chars=self.min_chars,
            max_chars=self.max_chars,
            languages=tuple(self.languages),
            min_language_score=self.min_language_score,
            max_markup_share=self.max_markup_share,
        )


@dg.asset(partitions_def=web_doc_shards, group_name=GROUP, code_version="1", kinds={"polars", "parquet"})
def raw_web_docs(context: dg.AssetExecutionContext, inputs: InputFoldersResource) -> dg.Output:
    """Every record of one input shard (a JSONL or Parquet file), one row per non-blank line.

    The source's id and url are kept; lines that cannot be read are kept too, with `read_error`
    saying why, so that cleaning quarantines them instead of losing them.
    """
    path = inputs.web_docs_shard(context.partition_key)
    raw = read_shard(path, context.partition_key)
    return frame_output(
        raw,
        {
            "source_file": dg.MetadataValue.path(str(path)),
            "unreadable_records": int(raw["read_error"].is_not_null().sum()),
        },
    )


@dg.multi_asset(
    outs={
        "web_docs": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Clean documents of one shard: NFC text without control characters, whitespace "
            "folded, language identified, within length bounds, exact duplicates removed.",
        ),
        "web_docs_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Every raw record that `web_docs` did not keep, with its reason and an excerpt.",
        ),
    },
    partitions_def=web_doc_shards,
)
def clean_web_docs(config: WebDocsCleaningConfig, raw_web_docs: pl.DataFrame):
    """Split a shard's raw records into kept documents and quarantined ones (rows in = kept + quarantined)."""
    rules = config.rules()
    result = clean_documents(raw_web_docs, rules)
    languages = result.kept.group_by("language").len().sort("len", descending=True)
    reasons = result.quarantined.group_by("reason").len().sort("len", descending=True)
    yield frame_output(
        result.kept,
        output_name="web_docs",
        metadata={
            "rows_in": raw_web_docs.height,
            "cleaning_rules": json.dumps(vars(rules), default=list),
            "languages": markdown_table(languages),
            "mean_chars": float(result.kept["chars"].mean() or 0),
        },
    )
    yield frame_output(
        result.quarantined,
        output_name="web_docs_quarantine",
        metadata={
            "rows_in": raw_web_docs.height,
            "reasons": markdown_table(reasons),
        },
    )
