"""Taxonomy-guided curation: corpus-wide dedup, the two-pass filter search and the curated corpus."""

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table, png_metadata
from assets.webdocs.proxies import ALL_SHARDS
from ops.common.text import sql_literal
from ops.common.versioning import frame_version
from ops.webdocs.dedup import DedupConfig, dedup_split
from ops.webdocs.filter_search import pass2_table, proxy_compute, score_filters
from ops.webdocs.filters import (
    COMPOUND,
    NONE,
    SINGLE,
    CandidateConfig,
    kept_ids,
    label_table,
    to_spec,
    trained,
)
from ops.webdocs.filters import compound_filters as build_compounds
from ops.webdocs.filters import filter_candidates as build_candidates
from ops.webdocs.search_plots import delta_bars_png, yield_quality_png
from pipelines.partitions import curation_compounds, curation_filters
from resources.artifact_store import FRAME_FILE, ArtifactStoreResource
from resources.duckdb import DuckDBResource
from resources.io_manager import materialized_partition_files
from resources.scale import ScaleResource

GROUP = "webdocs"
CURATED_VIEW = "curated_corpus"


class DedupRunConfig(dg.Config):
    """Near-duplicate threshold (estimated Jaccard of word 5-gram shingles) and MinHash size."""

    threshold: float = 0.8
    num_perm: int = 128
    shingle_words: int = 5


class FilterCandidatesConfig(dg.Config):
    """Which generated filters are searched (yield bounds, target yield, random-baseline grid) plus any
    hand-written ones: name -> DuckDB WHERE clause over the `labels` table (see `ops/webdocs/filters.py`)."""

    min_yield: float = 0.1
    max_yield: float = 0.7
    target_yield: float = 0.3
    yield_step: float = 0.1
    extra_filters: dict[str, str] = {}


class CompoundFiltersConfig(dg.Config):
    """The random-baseline yield grid of the compounds (keep it equal to `filter_candidates`' so that pass 1
    baselines are reused)."""

    yield_step: float = 0.1


def _sync_partitions(instance: dg.DagsterInstance, partitions: dg.DynamicPartitionsDefinition, keys: list[str]) -> None:
    """Make the dynamic partitions exactly `keys`: new filters become partitions at once (a backfill or the
    sample run trains them), filters no longer searched stop being partitions (their history stays)."""
    known = set(instance.get_dynamic_partitions(partitions.name))
    instance.add_dynamic_partitions(partitions.name, [key for key in keys if key not in known])
    for stale in sorted(known - set(keys)):
        instance.delete_dynamic_partition(partitions.name, stale)


def _runs(instance: dg.DagsterInstance, asset: str, names: list[str]) -> pl.DataFrame:
    """The latest proxy-run tables of the named filters; a clear error for any never trained."""
    files, missing = materialized_partition_files(instance, dg.AssetKey(asset), names)
    if missing:
        raise dg.DagsterInvariantViolationError(f"{asset} has no materialization for {missing}: materialize them first")
    return pl.read_parquet(files) if files else pl.DataFrame()


def _labels(web_doc_labels: pl.LazyFrame, web_docs_dedup: pl.DataFrame) -> pl.DataFrame:
    return label_table(web_doc_labels.collect(), web_docs_dedup["doc_id"])


@dg.multi_asset(
    outs={
        "web_docs_dedup": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="The clean documents of every shard without near-duplicates (MinHash LSH over the "
            "whole corpus); of each cluster of near-duplicates the smallest doc_id is kept.",
        ),
        "web_docs_dedup_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="One row per near-duplicate removed by `web_docs_dedup`, with `duplicate_of`: the id "
            "of the document kept in its place.",
        ),
    },
    ins={"web_docs": ALL_SHARDS},
)
def web_docs_dedup(config: DedupRunConfig, web_docs: pl.LazyFrame):
    """Corpus-wide near-duplicate removal, deterministic whatever order the shards arrived in."""
    dedup = DedupConfig(threshold=config.threshold, num_perm=config.num_perm, shingle_words=config.shingle_words)
    result = dedup_split(web_docs, dedup)
    yield frame_output(
        result.kept, output_name="web_docs_dedup", metadata={**result.metadata(), "threshold": config.threshold}
    )
    yield frame_output(result.quarantined, output_name="web_docs_dedup_quarantine", metadata=result.metadata())


@dg.asset(group_name=GROUP, code_version="1", kinds={"duckdb", "polars"}, ins={"web_doc_labels": ALL_SHARDS})
def filter_candidates(
    context: dg.AssetExecutionContext,
    config: FilterCandidatesConfig,
    web_doc_labels: pl.LazyFrame,
    web_docs_dedup: pl.DataFrame,
    scale: ScaleResource,
) -> dg.Output:
    """Single-dimension filters generated from the label vocabularies and per-label probabilities (DuckDB
    WHERE clauses over the deduplicated corpus's labels) with their yields; the chosen ones, plus the
    baselines (no filter, random at equal yield), become `curation_filters` partitions. A filter keeping
    no document is recorded as `empty` and not trained."""
    candidates = CandidateConfig(
        min_yield=config.min_yield,
        max_yield=config.max_yield,
        target_yield=config.target_yield,
        max_filters=scale.filter_search_max_filters,
        yield_step=config.yield_step,
    )
    table = build_candidates(_labels(web_doc_labels, web_docs_dedup), candidates, config.extra_filters)
    _sync_partitions(context.instance, curation_filters, trained(table))
    counts = table.group_by("status").len().sort("status")
    return frame_output(
        table,
        {
            "searched": markdown_table(table.filter(pl.col("status") == "selected")),
            "filters_by_status": markdown_table(counts),
            "trained_filters": len(trained(table)),
            "documents": int(table["total_docs"].max() or 0),
        },
    )


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars", "matplotlib"}, deps=["proxy_runs"])
def filter_search_pass1(context: dg.AssetExecutionContext, filter_candidates: pl.DataFrame) -> dg.Output:
    """Pass 1 ranking of the single-dimension filters: Δ bits per byte against random at equal yield
    (mean and spread over paired seeds), Δ against no filter, bpb per target set; rank 1 is best."""
    runs = _runs(context.instance, "proxy_runs", trained(filter_candidates))
    table = score_filters(runs, filter_candidates, kinds=(SINGLE,))
    return frame_output(table, _search_metadata(table, "pass 1"))


def _search_metadata(table: pl.DataFrame, title: str) -> dict:
    names, deltas = table["name"].to_list(), table["delta_vs_random"].to_list()
    best = table.row(0, named=True) if table.height else {}
    return {
        "ranking": markdown_table(table.select("rank", "name", "yield", "mean_bpb", "delta_vs_random", "delta_spread")),
        "best_filter": best.get("name", ""),
        "best_delta_vs_random": round(float(best.get("delta_vs_random") or 0.0), 4),
        "filters_scored": table.height,
        "delta_chart": png_metadata(
            delta_bars_png(names, deltas, table["delta_spread"].to_list(), f"{title}: Δ bpb vs random"), "Δ bpb"
        ),
        "yield_vs_quality": png_metadata(yield_quality_png(table["yield"].to_list(), deltas, names, title), "yield"),
    }


@dg.asset(group_name=GROUP, code_version="1", kinds={"duckdb", "polars"}, ins={"web_doc_labels": ALL_SHARDS})
def compound_filters(
    context: dg.AssetExecutionContext,
    config: CompoundFiltersConfig,
    filter_search_pass1: pl.DataFrame,
    filter_candidates: pl.DataFrame,
    web_doc_labels: pl.LazyFrame,
    web_docs_dedup: pl.DataFrame,
    scale: ScaleResource,
) -> dg.Output:
    """AND / OR compounds of every pair of pass 1's top-k filters (k from the profile, 4 on gpu), with
    yields; they and the random baselines their yields need become `curation_compounds` partitions."""
    baselines = filter_candidates.filter(pl.col("kind") == "random")["name"].to_list()
    table = build_compounds(
        _labels(web_doc_labels, web_docs_dedup),
        filter_search_pass1,
        scale.filter_search_top_k,
        config.yield_step,
        baselines,
    )
    _sync_partitions(context.instance, curation_compounds, trained(table))
    return frame_output(
        table,
        {
            "compounds": markdown_table(table),
            "top_k": scale.filter_search_top_k,
            "trained_filters": len(trained(table)),
        },
    )


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars", "matplotlib"}, deps=["compound_proxy_runs"])
def filter_search_pass2(
    context: dg.AssetExecutionContext,
    filter_search_pass1: pl.DataFrame,
    filter_candidates: pl.DataFrame,
    compound_filters: pl.DataFrame,
    scale: ScaleResource,
) -> dg.Output:
    """Pass 2: the compounds scored like pass 1 (random baselines from either pass), ranked together with the
    best single filter; `chosen` marks the filter that curates the corpus. Records the proxy compute of
    the two passes against a full grid over every pair of the pass 1 filters."""
    runs = pl.concat(
        [
            _runs(context.instance, "proxy_runs", trained(filter_candidates)),
            _runs(context.instance, "compound_proxy_runs", trained(compound_filters)),
        ],
        how="diagonal_relaxed",
    )
    no_filter = score_filters(runs, filter_candidates, kinds=(NONE,))
    table = pass2_table(filter_search_pass1, score_filters(runs, compound_filters, kinds=(COMPOUND,)), no_filter)
    singles = filter_candidates.filter((pl.col("kind") == SINGLE) & (pl.col("status") == "selected")).height
    compute = proxy_compute(
        len(trained(filter_candidates)),
        len(trained(compound_filters)),
        singles,
        scale.proxy_seeds,
        int(runs["tokens_trained"].max()),
    )
    chosen = table.filter(pl.col("chosen")).row(0, named=True)
    best_single = filter_search_pass1.sort("rank").row(0, named=True) if filter_search_pass1.height else {}
    return frame_output(
        table,
        {
            **_search_metadata(table, "pass 2"),
            **compute,
            "two_pass_vs_grid_compute": round(compute["two_pass_tokens"] / max(compute["full_grid_tokens"], 1), 4),
            "chosen_filter": chosen["name"],
            "chosen_expression": chosen["expression"],
            "best_single_delta": round(float(best_single.get("delta_vs_random") or 0.0), 4),
            "compound_beats_best_single": chosen["kind"] == COMPOUND,
        },
    )


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"parquet", "duckdb"},
    ins={"web_doc_labels": ALL_SHARDS},
)
def curated_corpus(
    context: dg.AssetExecutionContext,
    filter_search_pass2: pl.DataFrame,
    filter_search_pass1: pl.DataFrame,
    web_docs_dedup: pl.DataFrame,
    web_doc_labels: pl.LazyFrame,
    duckdb: DuckDBResource,
    artifact_store: ArtifactStoreResource,
) -> dg.Output:
    """The deduplicated corpus filtered by the filter search's chosen filter, as Parquet in the store and
    as the DuckDB view `curated_corpus` over that file; metadata: the expression, yield, pass 1/2 scores."""
    chosen = filter_search_pass2.filter(pl.col("chosen")).row(0, named=True)
    ids = kept_ids(_labels(web_doc_labels, web_docs_dedup), to_spec({**chosen, "dimension": ""}))
    corpus = web_docs_dedup.filter(pl.col("doc_id").is_in(pl.Series(ids, dtype=pl.String))).sort("doc_id")
    # Written here (the IO manager then finds this version stored) so that the view has a file to bind to.
    store, version = artifact_store.get_store(), frame_version(corpus)
    store.write_frame(["curated_corpus"], None, corpus, version=version, provenance={"run_id": context.run_id})
    path = store.folder(["curated_corpus"], None, version) / FRAME_FILE
    with duckdb.connect() as connection:
        connection.execute(
            f"CREATE OR REPLACE VIEW {CURATED_VIEW} AS SELECT * FROM read_parquet({sql_literal(str(path))})"
        )
    pass1 = filter_search_pass1.filter(pl.col("name") == chosen["name"])
    pass1_score = {"pass1_delta_vs_random": round(float(pass1["delta_vs_random"][0]), 4)} if pass1.height else {}
    return frame_output(
        corpus,
        {
            "filter": chosen["name"],
            "expression": chosen["expression"],
            "yield": round(corpus.height / max(web_docs_dedup.height, 1), 4),
            **pass1_score,
            "pass2_delta_vs_random": round(float(chosen["delta_vs_random"] or 0.0), 4),
            "pass2_rank": chosen["rank"],
            "duckdb_view": CURATED_VIEW,
            "duckdb_file": dg.MetadataValue.path(duckdb.path),
        },
    )
