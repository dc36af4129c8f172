"""Product catalog: real listings in, normalized products and a quarantine out, titles in a vector index."""

from pathlib import Path

import dagster as dg
import polars as pl

from assets.outputs import PREVIEW_ROWS, frame_output, markdown_table
from assets.vector_index import nearest, text_index
from ops.shopping.catalog import CatalogSource, ColumnMapping, bundled_sources, consumable_rule, load_catalogs
from ops.shopping.search import rankings_frame
from ops.shopping.simulator import search_queries
from resources.embedder import EmbedderResource
from resources.inputs import InputFoldersResource
from resources.lancedb import LanceDBResource

GROUP = "shopping"
SEARCH_RESULTS_PER_QUERY = 10


class CatalogSourceConfig(dg.Config):
    """One catalog file and how its columns map onto the product fields (a new catalog is only this).

    `category` names one path column; `category_columns` several level columns (top first) instead.
    `consumables` is a preset ("toys", "groceries", "none"); `consumable_keywords` and
    `consumable_categories` replace the preset's lists when given.
    """

    name: str
    path: str
    format: str | None = None
    delimiter: str = ","
    encoding: str = "utf-8"
    id: str
    title: str
    brand: str | None = None
    category: str | None = None
    category_columns: list[str] = []
    category_separator: str = " > "
    price: str
    currency: str = "USD"
    rating: str | None = None
    review_count: str | None = None
    consumables: str = "toys"
    consumable_keywords: list[str] | None = None
    consumable_categories: list[str] | None = None

    def source(self) -> CatalogSource:
        """The plain source object that `ops.shopping.catalog` loads."""
        mapping = ColumnMapping(
            id=self.id,
            title=self.title,
            brand=self.brand,
            category=self.category,
            category_columns=tuple(self.category_columns),
            category_separator=self.category_separator,
            price=self.price,
            currency=self.currency,
            rating=self.rating,
            review_count=self.review_count,
        )
        return CatalogSource(
            name=self.name,
            path=Path(self.path),
            format=self.format,
            mapping=mapping,
            delimiter=self.delimiter,
            encoding=self.encoding,
            consumables=consumable_rule(self.consumables, self.consumable_keywords, self.consumable_categories),
        )


class ProductCatalogConfig(dg.Config):
    """Catalog files to load; empty means the two bundled catalogs (Amazon UK toys slice, Magento Luma).

    `max_price` null: each source's highest price is its currency's (`ops.shopping.currencies`).
    """

    sources: list[CatalogSourceConfig] = []
    max_price: float | None = None


@dg.multi_asset(
    outs={
        "product_catalog": dg.AssetOut(
            group_name=GROUP,
            code_version="2",
            kinds={"polars", "parquet"},
            description="Normalized products of every configured catalog: source-prefixed ids, titles, brands, "
            "category paths, prices with their currency, ratings, and a consumable flag.",
        ),
        "product_catalog_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="2",
            kinds={"polars", "parquet"},
            description="Every catalog record that was not kept, with its source, record number and reason.",
        ),
    },
)
def product_catalog(config: ProductCatalogConfig, inputs: InputFoldersResource):
    """Load the catalogs through their column mappings; unusable rows are quarantined, never dropped."""
    sources = [source.source() for source in config.sources] or bundled_sources(Path(inputs.shopping_catalogs))
    result = load_catalogs(sources, max_price=config.max_price)
    counts = result.metadata()
    by_source = (
        result.products.group_by("source", "currency")
        .agg(pl.len().alias("products"), pl.col("price").median().alias("median_price"))
        .sort("source")
    )
    reasons = result.quarantine.group_by("source", "reason").len().sort("len", descending=True)
    yield frame_output(
        result.products,
        output_name="product_catalog",
        metadata={
            **counts,
            "sources": markdown_table(by_source),
            "top_categories": result.products["top_category"].n_unique(),
            "consumables": int(result.products["consumable"].sum()),
        },
    )
    yield frame_output(
        result.quarantine,
        output_name="product_catalog_quarantine",
        metadata={**counts, "reasons": markdown_table(reasons)},
    )


@dg.asset(group_name=GROUP, code_version="1", kinds={"lancedb", "polars"}, pool="gpu")
def product_search_results(
    context: dg.AssetExecutionContext,
    product_catalog: pl.DataFrame,
    embedder: EmbedderResource,
    lancedb: LanceDBResource,
    inputs: InputFoldersResource,
) -> dg.Output:
    """The simulated shop's search engine: its product titles embedded into LanceDB, and the ranked
    results of every query the simulator can issue (its finite vocabulary) searched in that index.

    Titles are re-embedded only when the catalog's (id, title) pairs changed; the table holds the
    data version of what it embedded.
    """
    shop = inputs.shop_products(product_catalog)
    titles = shop.select("product_id", "title")
    table, rebuilt = text_index(titles, "title", "product_titles", embedder, lancedb)
    name = table.name
    queries = search_queries(shop)
    context.log.info(f"ranking {len(queries)} simulator queries in {name}")
    hits = nearest(table, embedder.embed_queries(queries), SEARCH_RESULTS_PER_QUERY, ["product_id"])
    results = rankings_frame(
        queries, [hit["product_id"].to_list() for hit in hits], [hit["_distance"].to_list() for hit in hits]
    )
    return frame_output(
        results,
        {
            "queries": len(queries),
            "products_indexed": titles.height,
            "titles_embedded_now": rebuilt,
            "shop": inputs.simulated_shop,
            "lance_table": name,
            "lance_uri": dg.MetadataValue.path(lancedb.uri),
            "lance_table_version": table.version,
            "embedder": embedder.model_id,
            "example_results": markdown_table(results.filter(pl.col("rank") < 3).head(3 * PREVIEW_ROWS)),
        },
    )
