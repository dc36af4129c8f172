"""The whole intake at a glance, and the clean corpus as DuckDB tables for SQL."""

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table, png_metadata
from ops.common.plots import stacked_bar_png
from ops.webdocs.corpus import quality_filter_effect, shard_summary, summary_chart_series, unreadable_shards
from resources.duckdb import DuckDBResource

# Not imported from `assets.webdocs.intake`: the derived code version counts every module an asset module
# imports, so that import made the intake's cleaning rules part of this asset's version (an edit there marked
# the summary unsynced by itself, before the shards were even re-cleaned).
GROUP = "webdocs"


@dg.asset(group_name=GROUP, code_version="2", kinds={"polars", "duckdb"})
def web_corpus_summary(
    context: dg.AssetExecutionContext, web_docs: pl.LazyFrame, web_docs_quarantine: pl.LazyFrame, duckdb: DuckDBResource
) -> dg.Output:
    """Per-shard rows in, kept and quarantined by reason (the quality rules' effect included) over every
    shard; also loads the clean documents and the quarantine into DuckDB tables `web_docs` and
    `web_docs_quarantine`. Shards with no readable record are listed, and contribute no document."""
    summary = shard_summary(web_docs, web_docs_quarantine)
    unreadable = unreadable_shards(summary)
    if unreadable:
        context.log.warning(f"{len(unreadable)} shard(s) could not be read and add no document: {unreadable}")
    effect = quality_filter_effect(summary)
    duckdb.replace_table("web_docs", web_docs)
    duckdb.replace_table("web_docs_quarantine", web_docs_quarantine)
    return frame_output(
        summary,
        {
            "summary": markdown_table(summary),
            "rows_by_outcome": png_metadata(
                stacked_bar_png(summary["shard"].to_list(), summary_chart_series(summary), "Rows per shard", "rows"),
                "rows per shard, kept and quarantined by reason",
            ),
            "duckdb_file": dg.MetadataValue.path(duckdb.path),
            "duckdb_tables": "web_docs, web_docs_quarantine",
            "unreadable_shards": len(unreadable),
            "unreadable_shard_names": ", ".join(unreadable) or "none",
            "quality_filter_effect": markdown_table(effect),
            "quality_filtered": int(effect["quality_filtered"].sum()),
            "quality_filtered_share": round(
                float(effect["quality_filtered"].sum() / max(int(effect["reached_quality_rules"].sum()), 1)), 4
            ),
        },
    )
