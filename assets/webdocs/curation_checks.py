"""Blocking checks of the curation artifacts: GE suites plus the invariants each must keep."""

import math

import dagster as dg
import polars as pl

from assets.quarantine import accounting
from assets.webdocs.proxies import ALL_SHARDS, CHECKPOINTS_KEY
from ops.webdocs.curation_suites import (
    dedup_quarantine_suite,
    documents_suite,
    filters_suite,
    proxy_runs_suite,
    search_suite,
)
from ops.webdocs.filters import EMPTY, trained
from pipelines.partitions import curation_compounds, curation_filters
from resources.artifact_store import ArtifactStoreResource
from resources.quality import QualityResource
from resources.scale import ScaleResource
from training.webdocs.proxy_lm import load_proxy

DUPLICATES_POINT_AT_KEPT = "every duplicate_of is a kept document"
KEPT_OR_QUARANTINED = "no document is both kept and quarantined"
NOT_ITSELF = "no document is a duplicate of itself"
PARTITIONS_MATCH = "partitions == filters to train"
EMPTY_NOT_TRAINED = "filters keeping 0 documents are not partitions"
SEEDS = "at least 2 seeds per filter, every target per seed"
FINITE = "bits per byte finite"
MODEL_LOADS = "every seed's stored proxy loads"
ALL_SCORED = "every trained filter is scored"
ONE_CHOSEN = "exactly one chosen filter"
SAME_DOCUMENTS = "curated rows == the chosen filter's documents, all from the deduplicated corpus"


@dg.asset_check(
    asset="web_docs_dedup",
    blocking=True,
    additional_ins={"web_docs": ALL_SHARDS, "web_docs_dedup_quarantine": dg.AssetIn()},
    description="Unique documents; every clean document is kept or quarantined as a near-duplicate of a kept one.",
)
def web_docs_dedup_valid(
    web_docs_dedup: pl.DataFrame,
    web_docs: pl.LazyFrame,
    web_docs_dedup_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    rows_in = web_docs.select(pl.len()).collect().item()
    kept = set(web_docs_dedup["doc_id"])
    quarantined = web_docs_dedup_quarantine
    accounted, counts = accounting(rows_in, len(kept), quarantined.height)
    report = quality.validate(web_docs_dedup, "web_docs_dedup", documents_suite())
    return report.to_check_result(
        extra={
            **accounted,
            KEPT_OR_QUARANTINED: not kept & set(quarantined["record_id"]),
            DUPLICATES_POINT_AT_KEPT: set(quarantined["duplicate_of"]) <= kept,
        },
        metadata=counts,
    )


@dg.asset_check(
    asset="web_docs_dedup_quarantine",
    blocking=True,
    description="Every removed near-duplicate names the document kept in its place (checked against the kept "
    "documents by `web_docs_dedup_valid`).",
)
def web_docs_dedup_quarantine_valid(
    web_docs_dedup_quarantine: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    quarantined = web_docs_dedup_quarantine
    report = quality.validate(quarantined, "web_docs_dedup_quarantine", dedup_quarantine_suite())
    return report.to_check_result(
        extra={NOT_ITSELF: bool((quarantined["duplicate_of"] != quarantined["record_id"]).all())}
    )


def _filters_result(
    instance: dg.DagsterInstance,
    frame: pl.DataFrame,
    partitions: dg.DynamicPartitionsDefinition,
    name: str,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    keys = set(instance.get_dynamic_partitions(partitions.name))
    empty = set(frame.filter(pl.col("status") == EMPTY)["name"])
    return quality.validate(frame, name, filters_suite()).to_check_result(
        extra={PARTITIONS_MATCH: keys == set(trained(frame)), EMPTY_NOT_TRAINED: not keys & empty},
        metadata={"partitions": len(keys), "empty_filters": len(empty)},
    )


@dg.asset_check(asset="filter_candidates", blocking=True, description="Filter table valid, partitions registered.")
def filter_candidates_valid(
    context: dg.AssetCheckExecutionContext, filter_candidates: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    return _filters_result(context.instance, filter_candidates, curation_filters, "filter_candidates", quality)


@dg.asset_check(asset="compound_filters", blocking=True, description="Compound table valid, partitions registered.")
def compound_filters_valid(
    context: dg.AssetCheckExecutionContext, compound_filters: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    return _filters_result(context.instance, compound_filters, curation_compounds, "compound_filters", quality)


def _runs_result(
    runs: pl.DataFrame,
    asset: str,
    partition: str,
    store_resource: ArtifactStoreResource,
    scale: ScaleResource,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    store = store_resource.get_store()
    loads = True
    for version in runs["checkpoint_version"].unique().to_list():
        folder = f"{asset}.{partition}"
        files = {
            n: store.read_file(CHECKPOINTS_KEY, folder, version, n)
            for n in store.manifest(CHECKPOINTS_KEY, folder, version).files
        }
        for seed in runs["seed"].unique().to_list():
            try:
                load_proxy(
                    {n.removeprefix(f"seed{seed}."): p for n, p in files.items() if n.startswith(f"seed{seed}.")}
                )
            except (KeyError, RuntimeError, ValueError):
                loads = False
    per_seed = runs.group_by("seed").len()
    targets = runs["target"].n_unique()
    return quality.validate(runs, asset, proxy_runs_suite()).to_check_result(
        extra={
            SEEDS: per_seed.height >= min(2, scale.proxy_seeds) and bool((per_seed["len"] == targets).all()),
            FINITE: all(math.isfinite(v) for v in runs["bits_per_byte"].to_list()),
            MODEL_LOADS: loads,
        },
        metadata={"seeds": per_seed.height, "targets": targets},
    )


@dg.asset_check(
    asset="proxy_runs", blocking=True, partitions_def=curation_filters, description="Seeds, finite bpb, models load."
)
def proxy_runs_valid(
    context: dg.AssetCheckExecutionContext,
    proxy_runs: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    return _runs_result(proxy_runs, "proxy_runs", context.partition_key, artifact_store, scale, quality)


@dg.asset_check(
    asset="compound_proxy_runs",
    blocking=True,
    partitions_def=curation_compounds,
    description="Seeds, finite bpb, models load.",
)
def compound_proxy_runs_valid(
    context: dg.AssetCheckExecutionContext,
    compound_proxy_runs: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    return _runs_result(
        compound_proxy_runs, "compound_proxy_runs", context.partition_key, artifact_store, scale, quality
    )


@dg.asset_check(
    asset="filter_search_pass1",
    blocking=True,
    additional_ins={"filter_candidates": dg.AssetIn()},
    description="Every trained single filter is ranked once with a finite score.",
)
def filter_search_pass1_valid(
    filter_search_pass1: pl.DataFrame, filter_candidates: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    singles = filter_candidates.filter(pl.col("kind") == "single")
    expected = set(trained(singles))
    return quality.validate(filter_search_pass1, "filter_search_pass1", search_suite()).to_check_result(
        extra={
            ALL_SCORED: set(filter_search_pass1["name"]) == expected,
            FINITE: all(math.isfinite(v) for v in filter_search_pass1["delta_vs_random"].to_list()),
        },
        metadata={"expected": len(expected), "scored": filter_search_pass1.height},
    )


@dg.asset_check(asset="filter_search_pass2", blocking=True, description="Compounds ranked, exactly one chosen.")
def filter_search_pass2_valid(filter_search_pass2: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    return quality.validate(filter_search_pass2, "filter_search_pass2", search_suite()).to_check_result(
        extra={ONE_CHOSEN: int(filter_search_pass2["chosen"].sum()) == 1}
    )


@dg.asset_check(
    asset="curated_corpus",
    blocking=True,
    additional_ins={"web_docs_dedup": dg.AssetIn(), "filter_search_pass2": dg.AssetIn()},
    description="Unique documents, all from the deduplicated corpus, as many as the chosen filter kept.",
)
def curated_corpus_valid(
    curated_corpus: pl.DataFrame,
    web_docs_dedup: pl.DataFrame,
    filter_search_pass2: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    chosen = filter_search_pass2.filter(pl.col("chosen"))
    expected = int(chosen["kept_docs"][0]) if chosen.height == 1 else -1
    within = set(curated_corpus["doc_id"]) <= set(web_docs_dedup["doc_id"])
    return quality.validate(curated_corpus, "curated_corpus", documents_suite()).to_check_result(
        extra={SAME_DOCUMENTS: within and curated_corpus.height == expected},
        metadata={"expected_rows": expected},
    )
