"""Blocking Great Expectations checks on every webdocs artifact, plus the no-row-lost invariant."""

import dagster as dg
import numpy as np
import polars as pl

from assets.outputs import markdown_table
from assets.quarantine import accounting, recorded_rows_in
from assets.webdocs.embeddings import embeddings_table_name
from ops.common.quarantine import ROWS_ACCOUNTED
from ops.webdocs.annotation_health import HealthThresholds, annotation_health
from ops.webdocs.cleaning import CleaningRules
from ops.webdocs.embedding import embeddings_schema
from ops.webdocs.suites import (
    raw_web_docs_suite,
    web_doc_annotations_suite,
    web_doc_embeddings_suite,
    web_docs_quarantine_suite,
    web_docs_suite,
)
from ops.webdocs.taxonomy import DIMENSIONS, vocabularies
from pipelines.partitions import web_doc_shards
from resources.embedder import EmbedderResource
from resources.io_manager import latest_materialization
from resources.lancedb import LanceDBResource, rows_where, vector_matrix
from resources.quality import QualityResource
from resources.scale import ScaleResource

IDS_ACCOUNTED = "every raw doc id is kept or quarantined"
ANNOTATED_OR_QUARANTINED = "no document is both annotated and quarantined"
SAME_DOCUMENTS = "one embedding per kept document, none for others"


@dg.asset_check(
    asset="raw_web_docs",
    blocking=True,
    partitions_def=web_doc_shards,
    description="Schema, ids and line positions of the raw records.",
)
def raw_web_docs_valid(raw_web_docs: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    return quality.validate(raw_web_docs, "raw_web_docs", raw_web_docs_suite()).to_check_result()


@dg.asset_check(
    asset="web_docs",
    blocking=True,
    partitions_def=web_doc_shards,
    additional_ins={"raw_web_docs": dg.AssetIn(), "web_docs_quarantine": dg.AssetIn()},
    description="Kept documents meet the cleaning rules, and every raw record is kept or quarantined.",
)
def web_docs_valid(
    context: dg.AssetCheckExecutionContext,
    web_docs: pl.DataFrame,
    raw_web_docs: pl.DataFrame,
    web_docs_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    materialization = latest_materialization(context.instance, dg.AssetKey("web_docs"), context.partition_key)
    rules = (
        CleaningRules.from_json(materialization.metadata["cleaning_rules"].value)
        if materialization
        else CleaningRules()
    )
    accounted, counts = accounting(raw_web_docs.height, web_docs.height, web_docs_quarantine.height)
    ids_accounted = set(raw_web_docs["doc_id"]) == set(web_docs["doc_id"]) | set(web_docs_quarantine["record_id"])
    return quality.validate(web_docs, "web_docs", web_docs_suite(rules)).to_check_result(
        extra={**accounted, IDS_ACCOUNTED: ids_accounted}, metadata=counts
    )


@dg.asset_check(
    asset="web_docs_quarantine",
    blocking=True,
    partitions_def=web_doc_shards,
    description="Every quarantine row names its record and reason.",
)
def web_docs_quarantine_valid(web_docs_quarantine: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    return quality.validate(web_docs_quarantine, "web_docs_quarantine", web_docs_quarantine_suite()).to_check_result()


@dg.asset_check(
    asset="web_doc_embeddings",
    blocking=True,
    partitions_def=web_doc_shards,
    additional_ins={"web_docs": dg.AssetIn()},
    description="One unit-norm vector of the right size per kept document of the shard.",
)
def web_doc_embeddings_valid(
    context: dg.AssetCheckExecutionContext,
    web_docs: pl.DataFrame,
    embedder: EmbedderResource,
    lancedb: LanceDBResource,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    table = lancedb.table(embeddings_table_name(embedder.model_id), embeddings_schema(embedder.dim))
    stored = rows_where(table, "shard", context.partition_key, ["doc_id", "text_hash", "vector"])
    vectors = vector_matrix(stored)
    frame = pl.DataFrame(
        {
            "doc_id": stored["doc_id"].to_pylist(),
            "text_hash": stored["text_hash"].to_pylist(),
            "norm": np.linalg.norm(vectors, axis=1) if len(stored) else np.zeros(0),
            "dim": [vectors.shape[1]] * len(stored),
        },
        schema={"doc_id": pl.String, "text_hash": pl.String, "norm": pl.Float64, "dim": pl.Int64},
    )
    expected = set(zip(web_docs["doc_id"], web_docs["text_hash"], strict=True))
    found = set(zip(frame["doc_id"], frame["text_hash"], strict=True))
    return quality.validate(frame, "web_doc_embeddings", web_doc_embeddings_suite(embedder.dim)).to_check_result(
        extra={SAME_DOCUMENTS: expected == found and frame.height == web_docs.height},
        metadata={
            "expected": len(expected),
            "stored": frame.height,
            "missing": len(expected - found),
            "unexpected": len(found - expected),
        },
    )


@dg.asset_check(
    asset="web_doc_annotations",
    blocking=True,
    partitions_def=web_doc_shards,
    additional_ins={"web_doc_annotations_quarantine": dg.AssetIn()},
    description="Labels inside the label sets, one row per document, every sampled document accounted for.",
)
def web_doc_annotations_valid(
    context: dg.AssetCheckExecutionContext,
    web_doc_annotations: pl.DataFrame,
    web_doc_annotations_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    rows_in = recorded_rows_in(context, "web_doc_annotations", context.partition_key)
    quarantined = web_doc_annotations_quarantine["record_id"].n_unique()
    accounted, counts = accounting(rows_in, web_doc_annotations.height, quarantined)
    overlap = set(web_doc_annotations["doc_id"]) & set(web_doc_annotations_quarantine["record_id"])
    suite = web_doc_annotations_suite(list(DIMENSIONS), vocabularies())
    return quality.validate(web_doc_annotations, "web_doc_annotations", suite).to_check_result(
        extra={**accounted, ANNOTATED_OR_QUARANTINED: not overlap}, metadata=counts
    )


@dg.asset_check(
    asset="web_doc_annotations",
    blocking=True,
    partitions_def=web_doc_shards,
    description="The teacher's labels depend on the document: label entropy per dimension across the shard, "
    "share of identical answers, abstain share. Fails (blocking) in the gpu/cluster profiles, warns locally.",
)
def web_doc_annotations_health(web_doc_annotations: pl.DataFrame, scale: ScaleResource) -> dg.AssetCheckResult:
    thresholds = HealthThresholds(
        min_documents=scale.annotation_health_min_documents,
        min_entropy_bits=scale.annotation_health_min_entropy_bits,
        max_constant_dimension_share=scale.annotation_health_max_constant_dimension_share,
        max_identical_answer_share=scale.annotation_health_max_identical_answer_share,
        max_abstain_share=scale.annotation_health_max_abstain_share,
    )
    health = annotation_health(web_doc_annotations, list(DIMENSIONS), thresholds)
    entropy = pl.DataFrame(
        {"dimension": list(health.entropy_bits), "entropy_bits": [round(v, 4) for v in health.entropy_bits.values()]}
    )
    severity = dg.AssetCheckSeverity.ERROR if scale.annotation_health_blocking else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        passed=health.healthy,
        severity=severity,
        metadata={**health.metadata(), "entropy_by_dimension": markdown_table(entropy), "thresholds": str(thresholds)},
    )


@dg.asset_check(
    asset="web_corpus_summary",
    blocking=True,
    description="One row per registered shard (unreadable ones included), and rows in = kept + quarantined in each.",
)
def web_corpus_summary_valid(
    context: dg.AssetCheckExecutionContext, web_corpus_summary: pl.DataFrame
) -> dg.AssetCheckResult:
    registered = set(context.instance.get_dynamic_partitions(web_doc_shards.name))
    summarized = set(web_corpus_summary["shard"])
    accounted = bool(
        (web_corpus_summary["rows_in"] == web_corpus_summary["kept"] + web_corpus_summary["quarantined"]).all()
    )
    return dg.AssetCheckResult(
        passed=accounted and summarized == registered,
        metadata={
            ROWS_ACCOUNTED: accounted,
            "shards_registered": len(registered),
            "shards_summarized": len(summarized),
            "shards_missing": ", ".join(sorted(registered - summarized)) or "none",
        },
    )
