"""Personas and the shopping simulator on a small synthetic catalog: determinism, invariants, behaviour."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import polars as pl
import pytest

from benchmarks.shopping_simulator import DEFAULT_CATALOG, load_catalog, rule_rankings
from ops.shopping.personas import (
    PERSONA_SCHEMA,
    PersonaBounds,
    PersonaConfig,
    categories_and_brands,
    generate_personas,
    validate_persona_config,
)
from ops.shopping.simulator import (
    EVENT_SCHEMA,
    EVENT_TYPES,
    SimulationConfig,
    build_catalog_index,
    search_queries,
    simulate_cohort,
    simulate_customer,
)

# (top, leaf, brand, consumable, base price, rating) x count
_CATALOG_SPEC = [
    ("Hobbies", "Trains", "Hornby", False, 40.0, 4.5, 5),
    ("Hobbies", "Trains", "Bachmann", False, 55.0, None, 2),
    ("Hobbies", "Model Kits", "Airfix", False, 15.0, 4.0, 4),
    ("Hobbies", "Paints", "Humbrol", True, 3.0, 4.2, 4),
    ("Party Supplies", "Balloons", "Amscan", True, 4.0, 3.8, 4),
    ("Party Supplies", "Balloons", "Unbranded", True, 2.0, None, 3),
    ("Party Supplies", "Banners", "Amscan", False, 6.0, 2.0, 2),
    ("Baby & Toddler Toys", "Rattles", "Fisher-Price", False, 12.0, 4.8, 3),
    ("Baby & Toddler Toys", "Stacking Toys", "Unbranded", False, 9.0, 3.0, 3),
]


def _catalog() -> pl.DataFrame:
    rows = []
    for top, leaf, brand, consumable, price, rating, count in _CATALOG_SPEC:
        for i in range(count):
            native = f"{leaf}-{brand}-{i}".lower().replace(" ", "-")
            rows.append(
                {
                    "product_id": f"synthetic:{native}",
                    "source": "synthetic",
                    "title": f"{brand} {leaf} number {i}",
                    "brand": brand,
                    "category_path": [top, leaf],
                    "category": f"{top} > {leaf}",
                    "top_category": top,
                    "leaf_category": leaf,
                    "price": round(price * (1 + 0.3 * i), 2),
                    "currency": "GBP",
                    "rating": rating,
                    "review_count": None if rating is None else 10 + i,
                    "consumable": consumable,
                }
            )
    return pl.DataFrame(rows)


def _rankings(catalog: pl.DataFrame) -> dict[str, list[str]]:
    """Products of the query's leaf (and brand, for brand queries), cheapest first for "cheap"."""
    rankings = {}
    for query in search_queries(catalog):
        matches = catalog.filter(
            pl.lit(query).str.ends_with(pl.col("leaf_category").str.to_lowercase())
            & (
                pl.lit(query).str.starts_with(pl.col("brand").str.to_lowercase() + " ")
                | pl.lit(query).str.starts_with("cheap ")
                | pl.lit(query).str.starts_with("best ")
                | (pl.lit(query) == pl.col("leaf_category").str.to_lowercase())
            )
        )
        order = "price" if query.startswith("cheap ") else "product_id"
        rankings[query] = matches.sort(order, "product_id")["product_id"].to_list()
    return rankings


CATALOG = _catalog()
INDEX = build_catalog_index(CATALOG)
RANKINGS = _rankings(CATALOG)
CATEGORIES, BRANDS = categories_and_brands(CATALOG)


def _personas(size: int = 60, span: int = 24, seed: int = 7, cohort: str = "cohort-000") -> pl.DataFrame:
    config = PersonaConfig(cohort_size=size, span_months=span, seed=seed, sessions_per_month=(2.0, 8.0))
    return generate_personas(cohort, 0, config, CATEGORIES, BRANDS)


def _events(personas: pl.DataFrame, config: SimulationConfig | None = None, batch: int = 500) -> pl.DataFrame:
    return pl.concat(list(simulate_cohort(personas, INDEX, RANKINGS, config or SimulationConfig(), batch)))


PERSONAS = _personas()
EVENTS = _events(PERSONAS)


def _persona(**overrides: object) -> dict[str, object]:
    persona = {
        "customer_id": "cohort-009-00001",
        "cohort": "cohort-009",
        "seed": 12345,
        "start": datetime(2023, 1, 1),
        "span_months": 24,
        "monthly_budget": 200.0,
        "price_sensitivity": 0.5,
        "brand_loyalty": 0.0,
        "sessions_per_month": 10.0,
        "category_affinities": [{"category": "Hobbies", "weight": 1.0}],
        "favourite_brands": [],
        "life_events": [],
    }
    return {**persona, **overrides}


# --- personas -------------------------------------------------------------------------------------


def test_personas_follow_the_schema_and_the_config_ranges():
    assert PERSONAS.schema == pl.Schema(PERSONA_SCHEMA)
    assert PERSONAS["customer_id"].to_list() == [f"cohort-000-{i:05d}" for i in range(60)]
    assert PERSONAS["monthly_budget"].is_between(20.0, 300.0).all()
    assert PERSONAS["sessions_per_month"].is_between(2.0, 8.0).all()
    assert PERSONAS["price_sensitivity"].is_between(0.0, 1.0).all()
    for row in PERSONAS.iter_rows(named=True):
        weights = [a["weight"] for a in row["category_affinities"]]
        assert sum(weights) == pytest.approx(1.0)
        assert len(weights) == 3  # PersonaConfig.affinity_categories=4, capped by the 3 catalog categories
        liked = {a["category"] for a in row["category_affinities"]}
        assert liked <= set(CATEGORIES)
        assert set(row["favourite_brands"]) <= {b for c in liked for b in BRANDS[c]}
        assert "Unbranded" not in row["favourite_brands"]
        assert len(row["life_events"]) <= 3
        assert all(0 <= e["month"] < 24 and e["category"] in CATEGORIES for e in row["life_events"])
    assert PERSONAS["life_events"].list.len().sum() > 0
    assert PERSONAS["favourite_brands"].list.len().sum() > 0


def test_a_customer_does_not_depend_on_the_cohort_size_but_on_seed_and_cohort():
    small, large = _personas(size=5), _personas(size=20)
    assert small.equals(large.head(5))
    assert not small["monthly_budget"].equals(_personas(size=5, seed=8)["monthly_budget"])
    assert not small["monthly_budget"].equals(_personas(size=5, cohort="cohort-001")["monthly_budget"])


def test_life_event_categories_follow_their_hints():
    config = PersonaConfig(cohort_size=200, life_events_per_customer=(1, 3))
    personas = generate_personas("cohort-000", 0, config, CATEGORIES, BRANDS)
    events = personas.explode("life_events").unnest("life_events")
    assert set(events.filter(pl.col("kind") == "new_baby")["category"]) == {"Baby & Toddler Toys"}
    assert set(events.filter(pl.col("kind") == "child_birthday")["category"]) == {"Party Supplies"}
    assert set(events.filter(pl.col("kind") == "new_hobby")["category"]) == {"Hobbies"}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"span_months": 121}, r"span_months=121 is outside the bound \[1, 120\]"),
        ({"cohort_size": 0}, r"cohort_size=0 is outside the bound \[1, 100000\]"),
        ({"price_sensitivity": (0.0, 1.5)}, r"price_sensitivity=\(0.0, 1.5\) is outside the bound \[0.0, 1.0\]"),
        ({"monthly_budget": (300.0, 20.0)}, r"monthly_budget=\(300.0, 20.0\) must be a \(low, high\) range"),
        ({"life_events_per_customer": (0, 13)}, r"life_events_per_customer=\(0, 13\) is outside the bound \[0, 12\]"),
        ({"start": datetime(1980, 1, 1)}, r"start_year=1980 is outside the bound \[1990, 2100\]"),
    ],
)
def test_persona_config_outside_its_bounds_is_refused_with_field_value_and_bound(overrides, message):
    with pytest.raises(ValueError, match=message):
        validate_persona_config(PersonaConfig(**overrides))
    with pytest.raises(ValueError, match=message):
        generate_personas("cohort-000", 0, PersonaConfig(**overrides), CATEGORIES, BRANDS)


def test_custom_bounds_are_applied():
    validate_persona_config(PersonaConfig(monthly_budget=(20.0, 300.0)))
    with pytest.raises(ValueError, match=r"monthly_budget=\(20.0, 300.0\) is outside the bound \[1.0, 100.0\]"):
        validate_persona_config(PersonaConfig(monthly_budget=(20.0, 300.0)), PersonaBounds(monthly_budget=(1.0, 100.0)))


# --- simulator: determinism and batching ---------------------------------------------------------


def test_same_seed_same_events_other_seed_other_events():
    assert EVENTS.equals(_events(PERSONAS))
    other = _events(PERSONAS, SimulationConfig(seed=1))
    assert not EVENTS.equals(other)
    assert len(other) > 0


def test_batches_give_the_same_events_as_one_batch_and_as_one_customer_at_a_time():
    batches = list(simulate_cohort(PERSONAS, INDEX, RANKINGS, SimulationConfig(), batch_customers=7))
    assert len(batches) == 9  # 60 customers in batches of 7
    assert set(batches[0]["customer_id"]) == {f"cohort-000-{i:05d}" for i in range(7)}
    assert pl.concat(batches).equals(EVENTS)
    third = PERSONAS.row(3, named=True)
    alone = simulate_customer(third, INDEX, RANKINGS, SimulationConfig())
    assert alone.equals(EVENTS.filter(pl.col("customer_id") == third["customer_id"]))


# --- simulator: invariants -----------------------------------------------------------------------


def test_schema_event_types_and_nulls_per_event_type():
    assert EVENTS.schema == pl.Schema(EVENT_SCHEMA)
    assert set(EVENTS["event_type"]) == set(EVENT_TYPES)  # every type occurs
    present = {
        "search": {"query"},
        "view": {"product_id", "price"},
        "add_to_cart": {"product_id", "price", "quantity"},
        "remove_from_cart": {"product_id", "price", "quantity"},
        "purchase": {"product_id", "price", "quantity"},
        "return": {"product_id", "price", "quantity"},
        "review": {"product_id", "rating"},
    }
    optional = ["query", "product_id", "price", "quantity", "rating"]
    for event_type, columns in present.items():
        rows = EVENTS.filter(pl.col("event_type") == event_type)
        for column in optional:
            nulls = rows[column].null_count()
            assert nulls == (0 if column in columns else len(rows)), (event_type, column)
    assert (
        EVENTS.null_count().select("customer_id", "cohort", "event_index", "ts", "session_id").sum_horizontal()[0] == 0
    )
    assert EVENTS.filter(pl.col("event_type") == "review")["rating"].is_between(1, 5).all()
    assert (EVENTS.drop_nulls("quantity")["quantity"] >= 1).all()


def test_timestamps_strictly_increase_and_indexes_count_per_customer():
    assert EVENTS["customer_id"].is_sorted()
    per_customer = EVENTS.group_by("customer_id", maintain_order=True).agg(
        pl.col("ts").diff().drop_nulls().min().alias("min_gap"),
        (pl.col("event_index") == pl.int_range(pl.len())).all().alias("indexes_ok"),
        pl.col("session_id").str.starts_with(pl.col("customer_id").first() + "-s").all().alias("sessions_ok"),
    )
    assert per_customer["min_gap"].min().total_seconds() >= 1
    assert per_customer["indexes_ok"].all() and per_customer["sessions_ok"].all()
    first = EVENTS.group_by("customer_id").agg(pl.col("ts").min())["ts"]
    assert first.min() >= datetime(2023, 1, 1)


def test_every_purchase_follows_a_view_and_returns_and_reviews_follow_purchases():
    checked = Counter()
    for customer in EVENTS.partition_by("customer_id"):
        viewed, bought, returned, reviewed = set(), Counter(), Counter(), set()
        for kind, product, quantity in customer.select("event_type", "product_id", "quantity").iter_rows():
            if kind == "view":
                viewed.add(product)
            elif kind == "purchase":
                assert product in viewed
                bought[product] += quantity
            elif kind == "return":
                returned[product] += quantity
                assert returned[product] <= bought[product]
            elif kind == "review":
                assert bought[product] > 0 and product not in reviewed
                reviewed.add(product)
            checked[kind] += 1
    assert checked["purchase"] > 100 and checked["return"] > 5 and checked["review"] > 10


def test_spend_per_calendar_month_stays_within_the_monthly_budget():
    spend = (
        EVENTS.filter(pl.col("event_type") == "purchase")
        .group_by("customer_id", pl.col("ts").dt.truncate("1mo").alias("month"))
        .agg((pl.col("price") * pl.col("quantity")).sum().alias("spend"))
        .join(PERSONAS.select("customer_id", "monthly_budget"), on="customer_id")
    )
    assert len(spend) > 100
    assert (spend["spend"] <= spend["monthly_budget"] + 1e-6).all()
    # The budget binds: some carts are emptied at checkout because the month's money is spent.
    assert (spend["spend"] > 0.8 * spend["monthly_budget"]).sum() > 0


def test_searches_use_only_vocabulary_queries_including_brand_queries():
    vocabulary = set(search_queries(CATALOG))
    assert vocabulary == set(RANKINGS)
    assert {"trains", "cheap trains", "best trains", "hornby trains", "amscan balloons"} <= vocabulary
    assert "bachmann trains" not in vocabulary  # only 2 products: below MIN_BRAND_PRODUCTS
    assert "unbranded balloons" not in vocabulary
    assert search_queries(CATALOG) == sorted(vocabulary)
    used = set(EVENTS.filter(pl.col("event_type") == "search")["query"])
    assert used <= vocabulary
    assert {"hornby trains", "cheap balloons"} & used


def test_views_come_from_the_search_results_or_from_earlier_purchases():
    for customer in EVENTS.partition_by("customer_id")[:20]:
        results: set[str] = set()
        bought: set[str] = set()
        for kind, query, product in customer.select("event_type", "query", "product_id").iter_rows():
            if kind == "search":
                results = set(RANKINGS[query][:10])
            elif kind == "view":
                assert product in results or product in bought
            elif kind == "purchase":
                bought.add(product)


def test_consumables_are_bought_again_over_a_long_span():
    purchases = EVENTS.filter(pl.col("event_type") == "purchase").join(
        CATALOG.select("product_id", "consumable"), on="product_id"
    )
    per_product = purchases.group_by("customer_id", "product_id", "consumable").len()
    repeat_share = per_product.group_by("consumable").agg((pl.col("len") >= 2).mean()).sort("consumable")
    non_consumable, consumable = repeat_share["len"].to_list()
    assert consumable > 0.5
    assert consumable > 2 * non_consumable


def test_november_and_december_are_busier_than_february():
    personas = _personas(size=150, span=36)
    events = _events(personas, SimulationConfig(seasonality_strength=1.0))
    sessions = events.group_by("session_id").agg(pl.col("ts").min().dt.month().alias("month"))
    per_month = sessions["month"].value_counts().sort("month")["count"].to_list()
    assert per_month[10] > 1.4 * per_month[1] and per_month[11] > 1.7 * per_month[1]
    flat = _events(personas, SimulationConfig(seasonality_strength=0.0))
    flat_sessions = flat.group_by("session_id").agg(pl.col("ts").min().dt.month().alias("month"))
    flat_counts = flat_sessions["month"].value_counts().sort("month")["count"].to_list()
    assert flat_counts[11] < 1.2 * flat_counts[1]


def test_a_life_event_moves_searches_to_its_category_from_its_month():
    event = {"month": 12, "kind": "child_birthday", "category": "Party Supplies", "boost": 3.0}
    events = simulate_customer(_persona(life_events=[event]), INDEX, RANKINGS, SimulationConfig(repeat_probability=0))
    party_queries = {q for q in RANKINGS if q.endswith(("balloons", "banners"))}
    searches = events.filter(pl.col("event_type") == "search").with_columns(
        pl.col("query").is_in(list(party_queries)).alias("party"), (pl.col("ts") >= datetime(2024, 1, 1)).alias("after")
    )
    share = searches.group_by("after").agg(pl.col("party").mean()).sort("after")["party"].to_list()
    assert share[0] == 0.0
    assert share[1] > 0.5


def test_price_sensitive_customers_view_cheaper_products_and_loyal_ones_their_brands():
    catalog = CATALOG.with_columns((pl.col("price") / pl.col("price").mean().over("leaf_category")).alias("relative"))

    def mean_viewed(persona: dict[str, object], expression: pl.Expr) -> float:
        events = simulate_customer(persona, INDEX, RANKINGS, SimulationConfig(repeat_probability=0))
        first_views = events.filter(
            (pl.col("event_type") == "view") & (pl.col("event_type").shift(1) == "search")
        ).join(catalog, on="product_id")
        return first_views.select(expression.mean()).item()

    # Price over the mean price of its leaf category, for the first product viewed after each search.
    relative_price = pl.col("relative")
    sensitive, insensitive = (mean_viewed(_persona(price_sensitivity=s), relative_price) for s in (1.0, 0.0))
    assert sensitive < 0.92 * insensitive
    hornby = pl.col("brand") == "Hornby"
    loyal = _persona(brand_loyalty=1.0, favourite_brands=["Hornby"])
    assert (
        mean_viewed(loyal, hornby) > mean_viewed(_persona(brand_loyalty=0.0, favourite_brands=["Hornby"]), hornby) + 0.2
    )


def test_bad_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match=r"rankings lack 1 vocabulary queries, e.g. \['trains'\]"):
        next(simulate_cohort(PERSONAS, INDEX, {q: r for q, r in RANKINGS.items() if q != "trains"}, SimulationConfig()))
    with pytest.raises(ValueError, match="name a product absent from the catalog"):
        simulate_customer(_persona(), INDEX, {q: ["synthetic:nope"] for q in RANKINGS}, SimulationConfig())
    with pytest.raises(ValueError, match="absent from the catalog: \\['Garden'\\]"):
        simulate_customer(
            _persona(category_affinities=[{"category": "Garden", "weight": 1.0}]), INDEX, RANKINGS, SimulationConfig()
        )
    with pytest.raises(ValueError, match=r"return_probability=1.5 is outside the bound \[0.0, 1.0\]"):
        SimulationConfig(return_probability=1.5)


def test_the_benchmark_reads_the_bundled_catalog_and_ranks_every_vocabulary_query():
    catalog = load_catalog(DEFAULT_CATALOG)
    assert len(catalog) == 2_000 - 273  # SOURCE.md: 273 rows without a price
    assert catalog["price"].min() > 0 and catalog["consumable"].any()
    rankings = rule_rankings(catalog)
    assert set(rankings) == set(search_queries(catalog))
    assert all(1 <= len(ranked) <= 10 for ranked in rankings.values())
    cheap = catalog.filter(pl.col("product_id").is_in(rankings["cheap trains"]))
    prices = dict(zip(cheap["product_id"], cheap["price"], strict=True))
    assert [prices[p] for p in rankings["cheap trains"]] == sorted(prices.values())
    hornby = catalog.filter(pl.col("product_id").is_in(rankings["hornby trains"]))["brand"]
    assert set(hornby) == {"Hornby"}
