"""Web-document intake: raw shards in, clean versioned documents, a quarantine and embeddings out."""

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table
from ops.webdocs.cleaning import CleaningRules, clean_documents
from ops.webdocs.quality_rules import QUALITY_REASONS, RULE_SETS, QualityRules
from ops.webdocs.reading import read_shard_or_record, unreadable_shard
from pipelines.partitions import web_doc_shards
from resources.inputs import InputFoldersResource
from resources.scale import ScaleResource

GROUP = "webdocs"


class WebDocsQualityConfig(dg.Config):
    """Thresholds of the Gopher, C4 and FineWeb quality rules (DataTrove's defaults; null turns a rule off).

    `ops.webdocs.quality_rules.QualityRules` documents each; n-gram thresholds are keyed by n.
    """

    rule_sets: list[str] = list(RULE_SETS)
    gopher_max_dup_paragraph_share: float | None = 0.3
    gopher_max_dup_paragraph_char_share: float | None = 0.2
    gopher_max_dup_line_share: float | None = 0.3
    gopher_max_dup_line_char_share: float | None = 0.2
    gopher_max_top_ngram_char_share: dict[str, float] = {"2": 0.2, "3": 0.18, "4": 0.16}
    gopher_max_dup_ngram_char_share: dict[str, float] = {
        "5": 0.15, "6": 0.14, "7": 0.13, "8": 0.12, "9": 0.11, "10": 0.10,
    }  # fmt: skip
    gopher_min_words: int | None = 50
    gopher_max_words: int | None = 100_000
    gopher_min_mean_word_length: float | None = 3.0
    gopher_max_mean_word_length: float | None = 10.0
    gopher_max_symbol_word_ratio: float | None = 0.1
    gopher_max_bullet_line_share: float | None = 0.9
    gopher_max_ellipsis_line_share: float | None = 0.3
    gopher_min_alpha_word_share: float | None = 0.8
    gopher_min_stop_words: int | None = 2
    c4_min_sentences: int | None = 5
    c4_min_words_per_line: int = 3
    c4_max_word_length: int = 1000
    c4_lorem_ipsum: bool = True
    c4_curly_bracket: bool = True
    fineweb_min_line_punctuation_share: float | None = 0.12
    fineweb_max_short_line_share: float | None = 0.67
    fineweb_short_line_chars: int = 30
    fineweb_max_dup_line_char_share: float | None = 0.01
    fineweb_max_newlines_per_word: float | None = 0.3

    def rules(self) -> QualityRules:
        """The plain quality rules object."""
        return QualityRules.from_dict(self.model_dump())


class WebDocsCleaningConfig(dg.Config):
    """Bounds a kept document must meet (run config of `web_docs`); `quality.rule_sets: []` skips the quality rules."""

    min_chars: int = 200
    max_chars: int = 100_000
    languages: list[str] = ["en"]
    min_language_score: float = 0.5
    max_markup_share: float = 0.3
    quality: WebDocsQualityConfig = WebDocsQualityConfig()

    def rules(self) -> CleaningRules:
        """The plain rules object that `ops.webdocs.cleaning` applies."""
        return CleaningRules(
            min_chars=self.min_chars,
            max_chars=self.max_chars,
            languages=tuple(self.languages),
            min_language_score=self.min_language_score,
            max_markup_share=self.max_markup_share,
            quality=self.quality.rules(),
        )


@dg.asset(partitions_def=web_doc_shards, group_name=GROUP, code_version="2", kinds={"polars", "parquet"})
def raw_web_docs(context: dg.AssetExecutionContext, inputs: InputFoldersResource, scale: ScaleResource) -> dg.Output:
    """Every record of one input shard (a JSONL or Parquet file), one row per non-blank line.

    The source's id and url are kept; lines that cannot be read are kept too, with `read_error`
    saying why, so that cleaning quarantines them instead of losing them. A file that cannot be read
    at all (missing, empty, not Parquet) becomes one line-0 row saying why: the shard is recorded
    as unreadable and the corpus proceeds without it. The profile may read only the first
    `web_docs_records_per_shard` records (the local sample: everything downstream shrinks with it).
    """
    path = inputs.web_docs_shard(context.partition_key)
    whole = read_shard_or_record(path, context.partition_key)
    raw = whole.head(scale.web_docs_records_per_shard) if scale.web_docs_records_per_shard else whole
    unreadable = unreadable_shard(raw)
    if unreadable:
        context.log.warning(f"shard {context.partition_key} has no readable record: {raw['read_error'][0]}")
    return frame_output(
        raw,
        {
            "source_file": dg.MetadataValue.path(str(path)),
            "records_in_file": whole.height,
            "unreadable_records": int(raw["read_error"].is_not_null().sum()),
            "unreadable_shard": unreadable,
        },
    )


@dg.multi_asset(
    outs={
        "web_docs": dg.AssetOut(
            group_name=GROUP,
            code_version="2",
            kinds={"polars", "parquet"},
            description="Clean documents of one shard: NFC text without control characters, whitespace "
            "folded, language identified, within length bounds, passing the Gopher/C4/FineWeb quality "
            "rules, exact duplicates removed.",
        ),
        "web_docs_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="2",
            kinds={"polars", "parquet"},
            description="Every raw record that `web_docs` did not keep: the shared quarantine table (doc id, "
            "reason code, detail, excerpt) plus shard, line, url and length (a shard with no readable record is "
            "quarantined whole as `unreadable_shard`).",
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
    quality_filtered = int(result.quarantined["reason"].is_in(QUALITY_REASONS).sum())
    yield frame_output(
        result.kept,
        output_name="web_docs",
        metadata={
            **result.metadata(),
            "cleaning_rules": rules.to_json(),
            "languages": markdown_table(languages),
            "mean_chars": round(float(result.kept["chars"].mean() or 0), 4),
            "quality_filtered": quality_filtered,
            "unreadable_shard": unreadable_shard(raw_web_docs),
        },
    )
    yield frame_output(
        result.quarantined,
        output_name="web_docs_quarantine",
        metadata={**result.metadata(), "reasons": markdown_table(reasons)},
    )
