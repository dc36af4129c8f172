"""Seeded customer personas for the shopping simulator: budget, tastes, habits and life events.

A persona is one row of a polars frame (schema `PERSONA_SCHEMA`). Each customer is drawn from its own
random generator seeded by a hash of (config seed, cohort, cohort index, customer index), so a
customer is the same whatever the cohort size and whichever cohorts are generated alongside it.
`PersonaBounds` holds the ranges a configuration may ask for; `validate_persona_config` refuses a
configuration outside them with the field, the value and the bound in the message. Budgets are money:
`budget_defaults` gives the shop currency's default range and bound (`ops.shopping.currencies`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime

import numpy as np
import polars as pl

from ops.shopping.currencies import currency_defaults

# Life events shift a customer's interest toward a category from a month on. The hints pick a
# catalog top category whose name contains one of them; without a match the category is random.
LIFE_EVENT_HINTS: dict[str, tuple[str, ...]] = {
    "new_baby": ("baby", "toddler", "pre-school", "preschool"),
    "child_birthday": ("party", "celebration", "games"),
    "new_hobby": ("hobbies", "hobby", "arts", "craft", "model"),
    "moved_house": ("home", "furniture", "garden", "outdoor"),
}
UNBRANDED = "Unbranded"

PERSONA_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "cohort": pl.String(),
    "seed": pl.Int64(),
    "start": pl.Datetime("us"),
    "span_months": pl.Int64(),
    "monthly_budget": pl.Float64(),
    "price_sensitivity": pl.Float64(),
    "brand_loyalty": pl.Float64(),
    "sessions_per_month": pl.Float64(),
    "category_affinities": pl.List(pl.Struct({"category": pl.String(), "weight": pl.Float64()})),
    "favourite_brands": pl.List(pl.String()),
    "life_events": pl.List(
        pl.Struct({"month": pl.Int64(), "kind": pl.String(), "category": pl.String(), "boost": pl.Float64()})
    ),
}


@dataclass(frozen=True)
class PersonaBounds:
    """Allowed ranges (inclusive) for every `PersonaConfig` field; ranges must also have low <= high."""

    cohort_size: tuple[int, int] = (1, 100_000)
    span_months: tuple[int, int] = (1, 120)
    start_year: tuple[int, int] = (1990, 2100)
    monthly_budget: tuple[float, float] = (1.0, 10_000.0)
    sessions_per_month: tuple[float, float] = (0.05, 60.0)
    price_sensitivity: tuple[float, float] = (0.0, 1.0)
    brand_loyalty: tuple[float, float] = (0.0, 1.0)
    life_events_per_customer: tuple[int, int] = (0, 12)
    life_event_boost: tuple[float, float] = (0.0, 5.0)
    affinity_categories: tuple[int, int] = (1, 20)
    affinity_concentration: tuple[float, float] = (0.01, 100.0)
    favourite_brands: tuple[int, int] = (0, 20)


@dataclass(frozen=True)
class PersonaConfig:
    """What a user sets for one persona run. Ranges are (low, high); values are drawn inside them.

    `affinity_concentration` is the Dirichlet alpha over a persona's `affinity_categories` top
    categories: below 1 most of the weight lands on one or two of them.
    """

    cohort_size: int = 1_000
    span_months: int = 36
    start: datetime = datetime(2023, 1, 1)
    monthly_budget: tuple[float, float] = (20.0, 300.0)
    sessions_per_month: tuple[float, float] = (1.0, 8.0)
    price_sensitivity: tuple[float, float] = (0.0, 1.0)
    brand_loyalty: tuple[float, float] = (0.0, 1.0)
    life_events_per_customer: tuple[int, int] = (0, 3)
    life_event_boost: tuple[float, float] = (0.2, 1.0)
    affinity_categories: int = 4
    affinity_concentration: float = 0.5
    favourite_brands: tuple[int, int] = (0, 4)
    seed: int = 0


def validate_persona_config(config: PersonaConfig, bounds: PersonaBounds | None = None) -> None:
    """Raise ValueError naming the field, the value and the bound when `config` is outside `bounds`."""
    bounds = bounds or PersonaBounds()
    values = {"start_year": config.start.year, **{f.name: getattr(config, f.name) for f in fields(config)}}
    for bound in fields(bounds):
        low, high = getattr(bounds, bound.name)
        value = values[bound.name]
        for part in value if isinstance(value, tuple) else (value,):
            if not low <= part <= high:
                raise ValueError(f"persona config {bound.name}={value!r} is outside the bound [{low}, {high}]")
        if isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
            raise ValueError(f"persona config {bound.name}={value!r} must be a (low, high) range with low <= high")
    if config.seed < 0:
        raise ValueError(f"persona config seed={config.seed!r} is outside the bound [0, inf)")


def shop_currency(products: pl.DataFrame) -> str:
    """The one currency of a shop's products; a clear error when they have several (budgets need one)."""
    currencies = sorted(products["currency"].drop_nulls().unique().to_list())
    if len(currencies) != 1:
        raise ValueError(f"a simulated shop needs products in one currency, found {currencies or 'none'}")
    return currencies[0]


def budget_defaults(
    currency: str, monthly_budget: tuple[float, float] | None = None, max_monthly_budget: float | None = None
) -> tuple[tuple[float, float], PersonaBounds]:
    """The monthly budget range and the bounds for a shop in `currency`; given values override the table's."""
    defaults = currency_defaults(currency)
    bound = max_monthly_budget if max_monthly_budget is not None else defaults.max_monthly_budget
    bounds = replace(PersonaBounds(), monthly_budget=(PersonaBounds().monthly_budget[0], bound))
    return (monthly_budget or defaults.monthly_budget), bounds


def customer_seed(seed: int, cohort: str, cohort_index: int, index: int) -> int:
    """A 63-bit seed for one customer, independent of the cohort size and of other customers."""
    digest = hashlib.sha256(f"{seed}|{cohort}|{cohort_index}|{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def categories_and_brands(catalog: pl.DataFrame) -> tuple[list[str], dict[str, list[str]]]:
    """Top categories (most products first) and, per top category, its named brands (most products first).

    These are the inputs of `generate_personas`; "Unbranded" is no one's favourite brand.
    """
    tops = catalog.group_by("top_category").len().sort(["len", "top_category"], descending=[True, False])
    brands = (
        catalog.filter(pl.col("brand") != UNBRANDED)
        .group_by("top_category", "brand")
        .len()
        .sort(["top_category", "len", "brand"], descending=[False, True, False])
    )
    by_category: dict[str, list[str]] = {top: [] for top in tops["top_category"]}
    for top, brand in brands.select("top_category", "brand").iter_rows():
        by_category[top].append(brand)
    return tops["top_category"].to_list(), by_category


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    """Budgets and visit rates spread over orders of magnitude, so draw them evenly in log space."""
    return float(np.exp(_uniform(rng, (np.log(bounds[0]), np.log(bounds[1])))))


def _life_event_pools(categories: Sequence[str]) -> dict[str, list[str]]:
    """Per life event kind, the categories its hints match (all categories when none does)."""
    pools = {}
    for kind, hints in LIFE_EVENT_HINTS.items():
        matches = [c for c in categories if any(hint in c.lower() for hint in hints)]
        pools[kind] = matches or list(categories)
    return pools


def _persona_row(
    customer_id: str,
    cohort: str,
    seed: int,
    config: PersonaConfig,
    categories: Sequence[str],
    brands_by_category: Mapping[str, Sequence[str]],
    category_weights: np.ndarray,
    event_pools: Mapping[str, Sequence[str]],
) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    n_affine = min(config.affinity_categories, len(categories))
    # Weighted sampling without replacement (Efraimidis-Spirakis keys u ** (1 / w), largest first).
    keys = rng.random(len(categories)) ** (1.0 / category_weights)
    chosen = [categories[c] for c in np.argsort(-keys, kind="stable")[:n_affine].tolist()]
    weights = np.maximum(rng.dirichlet(np.full(n_affine, config.affinity_concentration)), 1e-6)
    weights = (weights / weights.sum()).tolist()
    affinities = [{"category": c, "weight": w} for c, w in zip(chosen, weights, strict=True)]
    # Favourite brands: a liked category in proportion to its weight, then one of its brands, biased
    # toward the ones with more products (brands_by_category lists them most products first).
    n_brands = int(rng.integers(config.favourite_brands[0], config.favourite_brands[1] + 1))
    favourites = set()
    cumulative = np.cumsum(weights)
    for category_draw, brand_draw in rng.random((n_brands, 2)).tolist():
        category = chosen[min(int(np.searchsorted(cumulative, category_draw * cumulative[-1])), n_affine - 1)]
        brands = brands_by_category[category]
        if brands:
            favourites.add(brands[int(len(brands) * brand_draw**2)])
    low, high = config.life_events_per_customer
    kinds = sorted(LIFE_EVENT_HINTS)
    events = []
    for _ in range(int(rng.integers(low, high + 1))):
        kind = kinds[int(rng.integers(len(kinds)))]
        pool = event_pools[kind]
        events.append(
            {
                "month": int(rng.integers(config.span_months)),
                "kind": kind,
                "category": pool[int(rng.integers(len(pool)))],
                "boost": round(_uniform(rng, config.life_event_boost), 4),
            }
        )
    events.sort(key=lambda e: (e["month"], e["kind"], e["category"]))
    return {
        "customer_id": customer_id,
        "cohort": cohort,
        "seed": seed,
        "start": config.start,
        "span_months": config.span_months,
        "monthly_budget": round(_log_uniform(rng, config.monthly_budget), 2),
        "price_sensitivity": round(_uniform(rng, config.price_sensitivity), 4),
        "brand_loyalty": round(_uniform(rng, config.brand_loyalty), 4),
        "sessions_per_month": round(_log_uniform(rng, config.sessions_per_month), 4),
        "category_affinities": affinities,
        "favourite_brands": sorted(favourites),
        "life_events": events,
    }


def generate_personas(
    cohort: str,
    cohort_index: int,
    config: PersonaConfig,
    categories: Sequence[str],
    brands_by_category: Mapping[str, Sequence[str]],
    bounds: PersonaBounds | None = None,
) -> pl.DataFrame:
    """The `config.cohort_size` personas of one cohort, ids f"{cohort}-{index:05d}", ordered by id.

    `categories` are the catalog's top categories; a persona likes a few of them, picked in
    proportion to how many brands each has (a proxy for its share of the catalog, so customers
    concentrate on categories with something to buy).
    """
    validate_persona_config(config, bounds)
    if not categories:
        raise ValueError("generate_personas needs at least one catalog top category")
    sizes = np.array([len(brands_by_category.get(c, ())) + 1.0 for c in categories])
    category_weights = sizes / sizes.sum()
    event_pools = _life_event_pools(categories)
    brands = {c: brands_by_category.get(c, ()) for c in categories}
    rows = [
        _persona_row(
            f"{cohort}-{index:05d}",
            cohort,
            customer_seed(config.seed, cohort, cohort_index, index),
            config,
            categories,
            brands,
            category_weights,
            event_pools,
        )
        for index in range(config.cohort_size)
    ]
    return pl.DataFrame(rows, schema=PERSONA_SCHEMA)
