"""Simulated customers: seeded personas per cohort, years of shopping events, and the event log in DuckDB."""

from datetime import datetime

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table, png_metadata
from assets.shopping.catalog import GROUP
from ops.common.plots import line_png
from ops.shopping.event_log import EVENT_TYPES, monthly_activity
from ops.shopping.personas import (
    PersonaBounds,
    PersonaConfig,
    budget_defaults,
    categories_and_brands,
    generate_personas,
    shop_currency,
)
from ops.shopping.search import rankings_by_query
from ops.shopping.simulator import SimulationConfig, build_catalog_index, simulate_cohort
from pipelines.partitions import cohort_index, customer_cohorts
from resources.duckdb import DuckDBResource
from resources.inputs import InputFoldersResource
from resources.io_manager import materialized_partition_files
from resources.scale import ScaleResource

EVENTS_VIEW = "shopping_events"


class CustomerPersonasConfig(dg.Config):
    """Persona ranges of a cohort; values outside `PersonaBounds` fail the run with the field named.

    `customers` and `span_months` of 0 take the profile's sizes (`ScaleResource`). `monthly_budget`
    empty and `max_monthly_budget` null take the shop currency's defaults (`ops.shopping.currencies`).
    """

    customers: int = 0
    span_months: int = 0
    start: str = "2023-01-01"
    monthly_budget: list[float] = []
    max_monthly_budget: float | None = None
    sessions_per_month: list[float] = [1.0, 8.0]
    price_sensitivity: list[float] = [0.0, 1.0]
    brand_loyalty: list[float] = [0.0, 1.0]
    life_events_per_customer: list[int] = [0, 3]
    affinity_categories: int = 4
    seed: int = 0

    def persona_config(self, scale: ScaleResource, currency: str) -> tuple[PersonaConfig, PersonaBounds]:
        """The plain config the persona generator validates and uses, and its bounds in the shop's currency."""
        budget, bounds = budget_defaults(currency, tuple(self.monthly_budget) or None, self.max_monthly_budget)
        config = PersonaConfig(
            cohort_size=self.customers or scale.shopping_customers_per_cohort,
            span_months=self.span_months or scale.shopping_span_months,
            start=datetime.fromisoformat(self.start),
            monthly_budget=budget,
            sessions_per_month=tuple(self.sessions_per_month),
            price_sensitivity=tuple(self.price_sensitivity),
            brand_loyalty=tuple(self.brand_loyalty),
            life_events_per_customer=tuple(self.life_events_per_customer),
            affinity_categories=self.affinity_categories,
            seed=self.seed,
        )
        return config, bounds


@dg.asset(partitions_def=customer_cohorts, group_name=GROUP, code_version="2", kinds={"polars", "parquet"})
def customer_personas(
    context: dg.AssetExecutionContext,
    config: CustomerPersonasConfig,
    product_catalog: pl.DataFrame,
    scale: ScaleResource,
    inputs: InputFoldersResource,
) -> dg.Output:
    """The seeded personas of one cohort: budget, category affinities, brand loyalty, price
    sensitivity, shopping frequency and the life events that shift their interests over time."""
    cohort = context.partition_key
    products = inputs.shop_products(product_catalog)
    categories, brands = categories_and_brands(products)
    currency = shop_currency(products)
    persona_config, bounds = config.persona_config(scale, currency)
    personas = generate_personas(cohort, cohort_index(cohort), persona_config, categories, brands, bounds)
    summary = personas.select(
        pl.col("monthly_budget").median().alias("median_monthly_budget"),
        pl.col("sessions_per_month").median().alias("median_sessions_per_month"),
        pl.col("brand_loyalty").mean().alias("mean_brand_loyalty"),
        pl.col("life_events").list.len().sum().alias("life_events"),
    )
    return frame_output(
        personas,
        {
            "summary": markdown_table(summary),
            "currency": currency,
            "max_monthly_budget": bounds.monthly_budget[1],
            "monthly_budget_range": "{:g}-{:g} {}".format(*persona_config.monthly_budget, currency),
        },
    )


class ShoppingSimulationConfig(dg.Config):
    """Knobs of the simulator (`ops.shopping.simulator.SimulationConfig` documents and bounds them);
    the same seed, personas and catalog always give the same events."""

    seed: int = 0
    return_probability: float = 0.08
    review_probability: float = 0.15
    repeat_probability: float = 0.3
    seasonality_strength: float = 1.0
    drift: float = 0.05

    def simulation_config(self) -> SimulationConfig:
        """The plain, validated simulator config."""
        return SimulationConfig(
            seed=self.seed,
            return_probability=self.return_probability,
            review_probability=self.review_probability,
            repeat_probability=self.repeat_probability,
            seasonality_strength=self.seasonality_strength,
            drift=self.drift,
        )


@dg.asset(partitions_def=customer_cohorts, group_name=GROUP, code_version="1", kinds={"polars", "parquet"})
def shopping_trajectories(
    context: dg.AssetExecutionContext,
    config: ShoppingSimulationConfig,
    customer_personas: pl.DataFrame,
    product_catalog: pl.DataFrame,
    product_search_results: pl.DataFrame,
    inputs: InputFoldersResource,
) -> dg.Output:
    """Every simulated event of one cohort over its span: searches ranked by the vector index, views,
    cart changes, purchases within budget, returns, reviews, repeat buys, seasonality and drift.

    Customers are simulated in batches (one batch of events in memory at a time, besides the cohort's
    result); the same personas, catalog and seed always give the same events.
    """
    index = build_catalog_index(inputs.shop_products(product_catalog))
    rankings = rankings_by_query(product_search_results)
    batches = []
    for batch in simulate_cohort(customer_personas, index, rankings, config.simulation_config()):
        batches.append(batch)
        done = sum(frame["customer_id"].n_unique() for frame in batches)
        context.log.info(f"simulated {done}/{customer_personas.height} customers")
    events = pl.concat(batches) if batches else pl.DataFrame()
    activity = monthly_activity(events)
    counts = events.group_by("event_type").len().sort("len", descending=True)
    return frame_output(
        events,
        {
            "customers": customer_personas.height,
            "event_counts": markdown_table(counts),
            "spend": float(activity["spend"].sum()),
            "event_mix_by_month": _event_mix_chart(activity, f"Event mix per month, {context.partition_key}"),
            "spend_by_month": _spend_chart(activity, f"Spend per month, {context.partition_key}"),
        },
    )


@dg.asset(group_name=GROUP, code_version="1", kinds={"duckdb", "polars"}, deps=["shopping_trajectories"])
def shopping_event_log(context: dg.AssetExecutionContext, duckdb: DuckDBResource) -> dg.Output:
    """Every materialized cohort's events behind one DuckDB view (`shopping_events`, over the Parquet
    files of their latest versions, no copy) and the month-by-month event mix and spend of all of them.
    Cohorts not simulated yet are listed, not guessed."""
    files, missing = materialized_partition_files(
        context.instance, dg.AssetKey("shopping_trajectories"), customer_cohorts.get_partition_keys()
    )
    if not files:
        raise dg.Failure("no cohort of shopping_trajectories is materialized yet: run the `shopping` job first")
    listed = ", ".join("'" + path.replace("'", "''") + "'" for path in files)
    with duckdb.connect() as connection:
        connection.execute(f"CREATE OR REPLACE VIEW {EVENTS_VIEW} AS SELECT * FROM read_parquet([{listed}])")
        rows = connection.execute(f"SELECT count(*) FROM {EVENTS_VIEW}").fetchone()[0]
    activity = monthly_activity(pl.scan_parquet(files))
    return frame_output(
        activity,
        {
            "duckdb_file": dg.MetadataValue.path(duckdb.path),
            "duckdb_view": EVENTS_VIEW,
            "events_in_view": rows,
            "cohorts": len(files),
            "cohorts_not_simulated": ", ".join(missing) or "none",
            "event_mix_by_month": _event_mix_chart(activity, "Event mix per month, all cohorts"),
            "spend_by_month": _spend_chart(activity, "Spend per month, all cohorts"),
        },
    )


def _event_mix_chart(activity: pl.DataFrame, title: str) -> dg.MetadataValue:
    series = {kind: activity[kind].cast(pl.Float64).to_list() for kind in EVENT_TYPES}
    return png_metadata(line_png(activity["month"].to_list(), series, title, "events"), title)


def _spend_chart(activity: pl.DataFrame, title: str) -> dg.MetadataValue:
    series = {"spend": activity["spend"].to_list(), "refunds": activity["refunds"].to_list()}
    return png_metadata(line_png(activity["month"].to_list(), series, title, "amount (shop currency)"), title)
