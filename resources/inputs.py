"""Where raw inputs are found: web-doc shards (watched by a sensor), product catalogs, missions, tools."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl


class InputFoldersResource(dg.ConfigurableResource):
    """Input folders and files per domain; each is an environment variable in the profiles (README).

    `shopping_catalogs` holds the bundled catalogs (`amazon_uk_toys/`, `magento_luma/`); a new catalog
    is configured in `product_catalog`'s run config with its path and column mapping. `simulated_shop`
    names the catalog source the simulated customers shop in: one shop, one currency, so that spend,
    budgets and money questions are well defined.
    """

    web_docs: str = "samples/web_docs"
    shopping_catalogs: str = "samples/shopping"
    simulated_shop: str = "amazon_uk_toys"
    shopbench_missions: str = "samples/shopbench/missions.jsonl"
    shopbench_reviewed_drafts: str = "samples/shopbench/reviewed_drafts.txt"
    bfcl: str = "samples/bfcl_v3"
    tool_files: str = ""

    def web_docs_shard(self, shard: str) -> Path:
        """Path of a web-document shard: one file in the folder, named by its partition key."""
        return Path(self.web_docs) / shard

    def shop_products(self, catalog: pl.DataFrame) -> pl.DataFrame:
        """The products of the simulated shop; a clear error when the catalog has none of them."""
        products = catalog.filter(pl.col("source") == self.simulated_shop)
        if products.is_empty():
            sources = ", ".join(sorted(catalog["source"].unique().to_list()))
            raise ValueError(f"simulated shop {self.simulated_shop!r} has no products; catalog sources: {sources}")
        return products
