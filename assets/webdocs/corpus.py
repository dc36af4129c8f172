"""The whole intake at a glance, and the clean corpus as DuckDB tables for SQL."""

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table, png_metadata
from assets.webdocs.intake import GROUP
from ops.common.plots import stacked_bar_png
from ops.webdocs.corpus import shard_summary, summary_chart_series
from resources.duckdb import DuckDBResource


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars", "duckdb"})
def web_corpus_summary(web_docs: pl.LazyFrame, web_docs_quarantine: pl.LazyFrame, duckdb: DuckDBResource) -> dg.Output:
    """Per-shard rows in, kept and quarantined by reason over every shard; also loads the clean
    documents and the quarantine into DuckDB tables `web_docs` and `web_docs_quarantine`."""
    summary = shard_summary(web_docs, web_docs_quarantine)
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
        },
    )
