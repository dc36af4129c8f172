"""Shopping trajectory simulator: personas in, years of search/view/cart/purchase/return/review events out.

Each customer runs on its own `random.Random`, seeded by a hash of (simulation seed, persona seed), so
a customer's events do not depend on which other customers are simulated or on batch sizes. The
loop is plain Python over a `CatalogIndex` precomputed once per catalog (tuples indexed by row), which
keeps it at a few microseconds per event.

Behaviour, per calendar month of the persona's span (the first month starts at the persona's start):
- sessions: Poisson(sessions_per_month x seasonality), seasonality raising November and December;
  session starts follow a day-time profile (evenings busiest), events seconds to minutes apart;
- preferences drift (a monthly log-normal random walk of the category weights) and life events add
  a lasting boost to their category from their month on;
- a session either re-buys a consumable bought before (view, add_to_cart, purchase) or searches:
  a query from `search_queries(catalog)` for a needed category (brand queries for brand-loyal
  customers, "cheap ..." for price-sensitive ones), then views among the ranked results (position
  bias, cheaper items for price-sensitive, favourite brands for loyal customers), adds some to the
  cart, removes some, and checks out what still fits the month's budget (the rest is removed); a
  product other than a consumable that the customer already bought is seldom viewed or bought again;
- spend per calendar month (gross, purchases price x quantity; returns do not refund the budget) never
  exceeds `monthly_budget`;
- a purchase may later be returned (more likely when the experience was bad) or reviewed (at most one
  review per product, rating around the product's catalog rating); both are due days after the
  purchase and happen at the start of the customer's first session after that.
Prices are the catalog prices (no price changes over time).
"""

from __future__ import annotations

import bisect
import calendar
import hashlib
import heapq
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

import polars as pl

EVENT_TYPES: tuple[str, ...] = ("search", "view", "add_to_cart", "remove_from_cart", "purchase", "return", "review")
EVENT_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "cohort": pl.String(),
    "event_index": pl.Int64(),
    "ts": pl.Datetime("us"),
    "session_id": pl.String(),
    "event_type": pl.String(),
    "query": pl.String(),
    "product_id": pl.String(),
    "price": pl.Float64(),
    "quantity": pl.Int64(),
    "rating": pl.Int64(),
}
LEAF_TEMPLATES: tuple[str, ...] = ("{leaf}", "cheap {leaf}", "best {leaf}")
BRAND_TEMPLATE = "{brand} {leaf}"
# A brand gets its own query for a leaf category only when it has this many products there.
MIN_BRAND_PRODUCTS = 3
# Relative chance that a session starts in each hour of the day (UTC): quiet nights, busy evenings.
HOUR_WEIGHTS: tuple[float, ...] = (
    1.0, 0.5, 0.3, 0.2, 0.2, 0.3, 0.8, 1.5, 2.0, 2.5, 3.0, 3.5,
    4.0, 3.5, 3.0, 3.0, 3.2, 3.5, 4.0, 5.0, 5.5, 5.0, 3.5, 2.0,
)  # fmt: skip
_HOUR_CUM = tuple(sum(HOUR_WEIGHTS[: h + 1]) for h in range(24))
_DAY = 86_400
_UNBRANDED = "Unbranded"


@dataclass(frozen=True)
class SimulationConfig:
    """Knobs of the simulator; the span and start come from each persona.

    `seasonality_strength` s multiplies session rates by 1 + 0.6 s in November and 1 + s in December.
    `drift` is the monthly standard deviation of the log category weights.
    """

    seed: int = 0
    max_events_per_session: int = 30
    results_k: int = 10
    mean_extra_views: float = 1.5
    cart_probability: float = 0.25
    remove_probability: float = 0.15
    repeat_probability: float = 0.3
    return_probability: float = 0.08
    review_probability: float = 0.15
    seasonality_strength: float = 1.0
    drift: float = 0.05

    def __post_init__(self) -> None:
        for name in ("cart_probability", "remove_probability", "repeat_probability", "return_probability"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        _check_range("review_probability", self.review_probability, 0.0, 1.0)
        _check_range("max_events_per_session", self.max_events_per_session, 3, 1_000)
        _check_range("results_k", self.results_k, 1, 1_000)
        _check_range("mean_extra_views", self.mean_extra_views, 0.0, 100.0)
        _check_range("seasonality_strength", self.seasonality_strength, 0.0, 10.0)
        _check_range("drift", self.drift, 0.0, 2.0)
        _check_range("seed", self.seed, 0, 2**63 - 1)


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"simulation config {name}={value!r} is outside the bound [{low}, {high}]")


def _query_text(text: str) -> str:
    return " ".join(text.lower().split())


@dataclass(frozen=True)
class CatalogIndex:
    """The catalog as the simulator reads it: per-row tuples plus the query vocabulary per category.

    `leaf_queries[top]` is (per leaf of that top category: its LEAF_TEMPLATES queries, cumulative
    product counts); `brand_queries[top][brand]` the brand's queries within that top category.
    """

    product_ids: tuple[str, ...]
    row_of: Mapping[str, int]
    prices: tuple[float, ...]
    brands: tuple[str, ...]
    top_categories: tuple[str, ...]
    consumable: tuple[bool, ...]
    ratings: tuple[float | None, ...]
    leaf_queries: Mapping[str, tuple[tuple[tuple[str, ...], ...], tuple[float, ...]]]
    brand_queries: Mapping[str, Mapping[str, tuple[str, ...]]]
    queries: frozenset[str]


def build_catalog_index(catalog: pl.DataFrame, min_brand_products: int = MIN_BRAND_PRODUCTS) -> CatalogIndex:
    """Precompute, once per catalog, everything the per-event loop looks up."""
    if catalog.is_empty():
        raise ValueError("build_catalog_index needs a non-empty catalog")
    leaves = catalog.group_by("top_category", "leaf_category").len().sort("top_category", "leaf_category")
    leaf_queries: dict[str, tuple[list[tuple[str, ...]], list[float]]] = {}
    for top, leaf, count in leaves.iter_rows():
        queries, cum = leaf_queries.setdefault(top, ([], []))
        queries.append(tuple(_query_text(t.format(leaf=leaf)) for t in LEAF_TEMPLATES))
        cum.append((cum[-1] if cum else 0.0) + count)
    brand_leaves = (
        catalog.filter(pl.col("brand") != _UNBRANDED)
        .group_by("top_category", "brand", "leaf_category")
        .len()
        .filter(pl.col("len") >= min_brand_products)
        .sort("top_category", "brand", "leaf_category")
    )
    brand_queries: dict[str, dict[str, list[str]]] = {}
    for top, brand, leaf, _ in brand_leaves.iter_rows():
        query = _query_text(BRAND_TEMPLATE.format(brand=brand, leaf=leaf))
        brand_queries.setdefault(top, {}).setdefault(brand, []).append(query)
    vocabulary = {q for queries, _ in leaf_queries.values() for variants in queries for q in variants}
    vocabulary |= {q for by_brand in brand_queries.values() for qs in by_brand.values() for q in qs}
    product_ids = tuple(catalog["product_id"].to_list())
    return CatalogIndex(
        product_ids=product_ids,
        row_of={pid: row for row, pid in enumerate(product_ids)},
        prices=tuple(catalog["price"].to_list()),
        brands=tuple(catalog["brand"].to_list()),
        top_categories=tuple(catalog["top_category"].to_list()),
        consumable=tuple(catalog["consumable"].to_list()),
        ratings=tuple(catalog["rating"].to_list()),
        leaf_queries={top: (tuple(qs), tuple(cum)) for top, (qs, cum) in leaf_queries.items()},
        brand_queries={top: {b: tuple(qs) for b, qs in by.items()} for top, by in brand_queries.items()},
        queries=frozenset(vocabulary),
    )


def search_queries(catalog: pl.DataFrame, min_brand_products: int = MIN_BRAND_PRODUCTS) -> list[str]:
    """The finite, sorted, lower-case query vocabulary: LEAF_TEMPLATES per leaf category, plus
    "<brand> <leaf>" for each named brand with at least `min_brand_products` products in that leaf.

    The rankings handed to the simulator must cover every one of these queries.
    """
    return sorted(build_catalog_index(catalog, min_brand_products).queries)


@lru_cache(maxsize=64)
def _month_bounds(start: datetime, span_months: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Epoch seconds where each month of the span begins (first = `start`, then calendar months),
    plus the end of the span, and the calendar month (1..12) of each month of the span."""
    bounds = [calendar.timegm(start.timetuple())]
    months = []
    year, month = start.year, start.month
    for _ in range(span_months):
        months.append(month)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        bounds.append(calendar.timegm((year, month, 1, 0, 0, 0)))
    return tuple(bounds), tuple(months)


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's method for small rates, a rounded normal for large ones (lam > 30)."""
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _customer_rng(seed: int, persona_seed: int) -> random.Random:
    digest = hashlib.sha256(f"{seed}|{persona_seed}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


class _Columns:
    """Event columns under construction (timestamps as epoch seconds until the frame is built)."""

    def __init__(self) -> None:
        self.data: dict[str, list[Any]] = {name: [] for name in EVENT_SCHEMA}

    def frame(self) -> pl.DataFrame:
        data = {**self.data, "ts": pl.Series(self.data["ts"], dtype=pl.Int64) * 1_000_000}
        return pl.DataFrame(data, schema={**EVENT_SCHEMA, "ts": pl.Int64()}).with_columns(
            pl.col("ts").cast(pl.Datetime("us"))
        )


def _simulate_into(
    columns: _Columns,
    persona: Mapping[str, Any],
    catalog: CatalogIndex,
    rankings: Mapping[str, Sequence[str]],
    config: SimulationConfig,
) -> None:
    """Append one customer's events to `columns`; see the module docstring for the behaviour."""
    rng = _customer_rng(config.seed, persona["seed"])
    rand, randint, gauss = rng.random, rng.randint, rng.gauss
    customer_id, cohort = persona["customer_id"], persona["cohort"]
    budget = persona["monthly_budget"]
    sensitivity, loyalty = persona["price_sensitivity"], persona["brand_loyalty"]
    favourites = frozenset(persona["favourite_brands"])
    bounds, months = _month_bounds(persona["start"], persona["span_months"])
    categories = [a["category"] for a in persona["category_affinities"]]
    base = [a["weight"] for a in persona["category_affinities"]]
    life_events = []
    for event in persona["life_events"]:
        if event["category"] not in categories:
            categories.append(event["category"])
            base.append(0.0)
        life_events.append((event["month"], categories.index(event["category"]), event["boost"]))
    unknown = [c for c in categories if c not in catalog.leaf_queries]
    if unknown:
        raise ValueError(f"persona {customer_id} likes categories absent from the catalog: {unknown}")
    brand_choices = {
        top: [q for brand in sorted(favourites) for q in catalog.brand_queries.get(top, {}).get(brand, ())]
        for top in categories
    }
    prices, brands, consumable, product_ids = catalog.prices, catalog.brands, catalog.consumable, catalog.product_ids
    row_of, k = catalog.row_of, config.results_k
    cheap_share, best_share = 0.6 * sensitivity, 0.6 * sensitivity + 0.15 * (1 - sensitivity)
    season = {11: 1 + 0.6 * config.seasonality_strength, 12: 1 + config.seasonality_strength}
    max_events = config.max_events_per_session

    data = columns.data
    add_customer, add_cohort, add_index = data["customer_id"].append, data["cohort"].append, data["event_index"].append
    add_ts, add_session, add_type = data["ts"].append, data["session_id"].append, data["event_type"].append
    add_query, add_product, add_price = data["query"].append, data["product_id"].append, data["price"].append
    add_quantity, add_rating = data["quantity"].append, data["rating"].append
    n_events = 0

    def emit(ts: int, session: str, kind: str, query: str | None, row: int | None, price: Any, qty: Any, rating: Any):
        nonlocal n_events
        add_customer(customer_id)
        add_cohort(cohort)
        add_index(n_events)
        add_ts(ts)
        add_session(session)
        add_type(kind)
        add_query(query)
        add_product(None if row is None else product_ids[row])
        add_price(price)
        add_quantity(qty)
        add_rating(rating)
        n_events += 1

    spent = [0.0] * (len(bounds) + 1)
    rebuyable: list[int] = []  # consumables bought before, in order of first purchase
    owned: set[int] = set()  # other products bought before: rarely wanted twice
    pending: list[tuple[int, int, str, int, float, int, int]] = []  # (due, seq, kind, row, price, qty, rating)
    reviewed: set[int] = set()
    last_ts, n_sessions = bounds[0] - 60, 0

    def checkout(ts: int, session: str, row: int, qty: int) -> None:
        """Purchase `row` if it fits this calendar month's budget, else take it out of the cart."""
        price = prices[row]
        month = bisect.bisect_right(bounds, ts) - 1
        if spent[month] + price * qty > budget:
            emit(ts, session, "remove_from_cart", None, row, price, qty, None)
            return
        spent[month] += price * qty
        emit(ts, session, "purchase", None, row, price, qty, None)
        if not consumable[row]:
            owned.add(row)
        elif row not in rebuyable:
            rebuyable.append(row)
        catalog_rating = catalog.ratings[row]
        experience = min(5, max(1, round(gauss(4.0 if catalog_rating is None else catalog_rating, 0.9))))
        return_p = config.return_probability * (2.5 if experience <= 2 else 1.0 if experience == 3 else 0.5)
        if rand() < return_p:
            due = ts + randint(2, 30) * _DAY + randint(0, _DAY)
            heapq.heappush(pending, (due, n_events, "return", row, price, randint(1, qty), 0))
        if row not in reviewed and rand() < config.review_probability:
            reviewed.add(row)
            due = ts + randint(3, 45) * _DAY + randint(0, _DAY)
            heapq.heappush(pending, (due, n_events, "review", row, price, qty, experience))

    for month_index, calendar_month in enumerate(months):
        if month_index:
            base = [w * math.exp(config.drift * gauss(0.0, 1.0)) for w in base]
        total = sum(base)
        weights = [w / total for w in base]
        for event_month, category, boost in life_events:
            if event_month <= month_index:
                weights[category] += boost
        cum = [sum(weights[: i + 1]) for i in range(len(weights))]
        low, high = bounds[month_index], bounds[month_index + 1]
        days = max(1, (high - low) // _DAY)
        starts = []
        for _ in range(_poisson(rng, persona["sessions_per_month"] * season.get(calendar_month, 1.0))):
            hour = bisect.bisect_right(_HOUR_CUM, rand() * _HOUR_CUM[-1])
            starts.append(min(high - 1, low + randint(0, days - 1) * _DAY + hour * 3600 + randint(0, 3599)))
        for start in sorted(starts):
            t = start if start > last_ts + 60 else last_ts + 60 + randint(0, 1800)
            session = f"{customer_id}-s{n_sessions:05d}"
            n_sessions += 1
            while pending and pending[0][0] <= t:
                _, _, kind, row, price, qty, rating = heapq.heappop(pending)
                if kind == "return":
                    emit(t, session, "return", None, row, price, qty, None)
                else:
                    emit(t, session, "review", None, row, None, None, rating)
                t += randint(20, 180)
            if rebuyable and rand() < config.repeat_probability:
                row = rebuyable[int(rand() * len(rebuyable))]
                qty = randint(1, 3)
                emit(t, session, "view", None, row, prices[row], None, None)
                t += randint(5, 60)
                emit(t, session, "add_to_cart", None, row, prices[row], qty, None)
                t += randint(20, 240)
                checkout(t, session, row, qty)
                last_ts = t
                continue
            top = categories[bisect.bisect_right(cum, rand() * cum[-1])]
            query = None
            if brand_choices[top] and rand() < loyalty:
                query = brand_choices[top][int(rand() * len(brand_choices[top]))]
            else:
                variants, leaf_cum = catalog.leaf_queries[top]
                leaf = variants[bisect.bisect_right(leaf_cum, rand() * leaf_cum[-1])]
                u = rand()
                query = leaf[1] if u < cheap_share else leaf[2] if u < best_share else leaf[0]
            emit(t, session, "search", query, None, None, None, None)
            session_events = 1
            ranked = rankings.get(query)
            if ranked is None:
                raise ValueError(f"rankings have no entry for the vocabulary query {query!r}")
            try:
                results = [row_of[pid] for pid in ranked[:k]]
            except KeyError as missing:
                raise ValueError(f"rankings for {query!r} name a product absent from the catalog: {missing}") from None
            if not results:
                last_ts = t
                continue
            result_prices = sorted(prices[r] for r in results)
            reference = result_prices[len(result_prices) // 2]
            appeal = []
            for rank, row in enumerate(results):
                score = (reference / prices[row]) ** (2.0 * sensitivity) / (1.0 + rank) ** 0.7
                if brands[row] in favourites:
                    score *= 1.0 + 4.0 * loyalty
                appeal.append(0.2 * score if row in owned else score)
            n_views = min(len(results), max_events - 1, 1 + _poisson(rng, config.mean_extra_views))
            cart: list[tuple[int, int]] = []
            for _ in range(n_views):
                pick, target = 0, rand() * sum(appeal)
                while pick < len(appeal) - 1 and target >= appeal[pick]:
                    target -= appeal[pick]
                    pick += 1
                if appeal[pick] == 0.0:  # rounding left the draw past the last unseen result
                    pick = max(i for i, a in enumerate(appeal) if a > 0.0)
                row = results[pick]
                appeal[pick] = 0.0
                t += randint(3, 40) if session_events == 1 else randint(10, 240)
                emit(t, session, "view", None, row, prices[row], None, None)
                session_events += 1
                cart_p = config.cart_probability * min(2.5, (reference / prices[row]) ** sensitivity)
                if brands[row] in favourites:
                    cart_p *= 1.0 + loyalty
                if prices[row] > budget or row in owned:
                    cart_p *= 0.2
                if session_events + 2 <= max_events and rand() < min(0.95, cart_p):
                    qty = randint(1, 3) if consumable[row] else (1 if rand() < 0.95 else 2)
                    t += randint(2, 30)
                    emit(t, session, "add_to_cart", None, row, prices[row], qty, None)
                    session_events += 2  # the add and its purchase or removal
                    cart.append((row, qty))
            if cart:
                kept = []
                for row, qty in cart:
                    if rand() < config.remove_probability:
                        t += randint(5, 60)
                        emit(t, session, "remove_from_cart", None, row, prices[row], qty, None)
                    else:
                        kept.append((row, qty))
                t += randint(30, 300)
                for row, qty in kept:
                    t += randint(1, 5)
                    checkout(t, session, row, qty)
            last_ts = t


def simulate_customer(
    persona: Mapping[str, Any],
    catalog: CatalogIndex,
    rankings: Mapping[str, Sequence[str]],
    config: SimulationConfig,
) -> pl.DataFrame:
    """One customer's events (schema `EVENT_SCHEMA`), ordered by time; `persona` is a persona frame row."""
    columns = _Columns()
    _simulate_into(columns, persona, catalog, rankings, config)
    return columns.frame()


def simulate_cohort(
    personas: pl.DataFrame,
    catalog: CatalogIndex,
    rankings: Mapping[str, Sequence[str]],
    config: SimulationConfig,
    batch_customers: int = 500,
) -> Iterator[pl.DataFrame]:
    """Events of every persona, one frame per `batch_customers` customers, in persona order.

    Only one batch of events is held at a time, so memory does not grow with the cohort. The events
    of a customer are the same whatever the batch size.
    """
    if batch_customers < 1:
        raise ValueError(f"batch_customers={batch_customers} is outside the bound [1, inf)")
    missing = catalog.queries.difference(rankings)
    if missing:
        raise ValueError(f"rankings lack {len(missing)} vocabulary queries, e.g. {sorted(missing)[:3]}")
    for batch in personas.iter_slices(batch_customers):
        columns = _Columns()
        for persona in batch.iter_rows(named=True):
            _simulate_into(columns, persona, catalog, rankings, config)
        yield columns.frame()
