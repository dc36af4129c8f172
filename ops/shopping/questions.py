"""ShopTrajQA questions: templates over one customer's history whose gold answers are computed by SQL.

Every question carries the DuckDB SQL that answers it over that customer's two tables (`events` and
`products`, see `customer_tables`), so the gold answer is verifiable and the Customer Agent's task is
the same query written by a model. A template is only asked when its answer is unambiguous: argmax
queries compare the best and the second best and return NULL on a tie, and a NULL answer
means "do not ask"; questions that can truly have no answer return the literal "none".

Canonical answer forms (`format_answer`), fixed points of `ops.shopping.answers.normalize_answer`,
which brings a model's answer to the same form before exact match:
- number, money: plain decimal, rounded half up to 2 places, no trailing zeros or trailing point, no
  thousands separator, no currency symbol or code ("12", "12.5", "1234.56"; money 12.50 -> "12.5").
  One form for both, since the normalizer does not know the answer type.
- date: ISO, at the precision the question asks: "YYYY", "YYYY-MM" or "YYYY-MM-DD".
- text: `normalize_answer` of the name itself: lower case, apostrophes dropped, other punctuation
  and symbols as spaces, whitespace folded ("Kid's Kitchen" -> "kids kitchen"). A name with nothing
  left ("!!!") has the empty form and is never asked.
- none: the word "none" (a text question's answer when nothing qualifies).
"""

from __future__ import annotations

import calendar
import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb
import polars as pl

from ops.common.text import normalize_text, sha256_hex, sql_literal
from ops.shopping.answers import normalize_answer

ANSWER_TYPES = ("number", "money", "date", "text", "none")
DIFFICULTIES = ("easy", "medium", "hard")
NONE_ANSWER = "none"
# The catalog's brand for products without one: not a brand a customer would ask about by name.
UNBRANDED = "Unbranded"
PRODUCT_TABLE_COLUMNS = (
    "product_id",
    "title",
    "brand",
    "category",
    "top_category",
    "leaf_category",
    "price",
    "currency",
)

QUESTION_SCHEMA: dict[str, pl.DataType] = {
    "question_id": pl.String(),
    "customer_id": pl.String(),
    "cohort": pl.String(),
    "kind": pl.String(),
    "difficulty": pl.String(),
    "question": pl.String(),
    "answer": pl.String(),
    "answer_type": pl.String(),
    "sql": pl.String(),
    "evidence_start": pl.Datetime("us"),
    "params": pl.String(),
}

_ISO_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_CENT = Decimal("0.01")


def format_answer(value: Any, answer_type: str) -> str:
    """The canonical string of a gold answer (forms in the module docstring); raises on an unusable value."""
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {answer_type!r}; expected one of {ANSWER_TYPES}")
    if value is None:
        raise ValueError(f"a gold answer of type {answer_type!r} cannot be None")
    if answer_type == "none" or (isinstance(value, str) and value.strip().casefold() == NONE_ANSWER):
        return NONE_ANSWER
    if answer_type in ("number", "money"):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
            raise ValueError(f"a {answer_type} answer must be numeric, got {value!r}")
        amount = Decimal(str(value).strip()).quantize(_CENT, rounding=ROUND_HALF_UP)
        return "0" if amount == 0 else format(amount.normalize(), "f")
    if answer_type == "date":
        if isinstance(value, datetime | date):
            return value.strftime("%Y-%m-%d")
        text = f"{value:04d}" if isinstance(value, int) and not isinstance(value, bool) else str(value).strip()
        if not _ISO_DATE.match(text):
            raise ValueError(f"a date answer must be YYYY, YYYY-MM or YYYY-MM-DD, got {value!r}")
        return text
    return normalize_answer(normalize_text(str(value)))


@dataclass(frozen=True)
class History:
    """What parameter choices need to know about one customer's history (plain Python values)."""

    first_ts: datetime
    years: list[int]  # every calendar year the history spans
    months: list[str]  # every "YYYY-MM" the history spans
    purchase_months: list[str]  # months with at least one purchase
    purchase_years: list[int]
    brands: list[str]  # brands of purchased products, "Unbranded" left out
    top_categories: list[str]  # top categories of purchased products
    currency: str | None  # the single currency of purchased products; None when mixed or no purchases
    last_purchase_ts: datetime | None
    last_return_ts: datetime | None


@dataclass(frozen=True)
class Template:
    """One question kind: text and SQL with `{placeholders}`, and how to pick parameters and evidence.

    `evidence` says which event the answer depends on from: "all" (the first event of the history),
    "period" (the start of the period in the parameters), "last_purchase" or "last_return".
    """

    kind: str
    difficulty: str
    answer_type: str
    question: str
    sql: str
    evidence: str
    candidates: Callable[[History], list[dict[str, Any]]]


def _no_params(_: History) -> list[dict[str, Any]]:
    return [{}]


def _if_purchases(history: History) -> list[dict[str, Any]]:
    return [{}] if history.purchase_years else []


def _money_no_params(history: History) -> list[dict[str, Any]]:
    return [{"currency": history.currency}] if history.currency else []


def _years(history: History) -> list[dict[str, Any]]:
    return [{"year": year} for year in history.years]


def _purchase_years(history: History) -> list[dict[str, Any]]:
    return [{"year": year} for year in history.purchase_years]


def _months(history: History) -> list[dict[str, Any]]:
    return [{"month": month} for month in history.months]


def _money_months(history: History) -> list[dict[str, Any]]:
    if not history.currency:
        return []
    return [{"month": month, "currency": history.currency} for month in history.purchase_months]


def _money_categories(history: History) -> list[dict[str, Any]]:
    if not history.currency:
        return []
    return [{"category": category, "currency": history.currency} for category in history.top_categories]


def _brand_years(history: History) -> list[dict[str, Any]]:
    return [{"brand": brand, "year": year} for brand in history.brands for year in history.years]


def _year_pairs(history: History) -> list[dict[str, Any]]:
    years = history.years
    return [{"year1": a, "year2": b} for i, a in enumerate(years) for b in years[i + 1 :]]


def _drift_years(history: History) -> list[dict[str, Any]]:
    years = history.purchase_years
    return [{"first_year": years[0], "last_year": years[-1]}] if len(years) >= 2 else []


# Purchases joined with the catalog; unit prices in integer cents so that sums are exact.
_PURCHASES = (
    "SELECT e.ts, e.quantity, CAST(round(e.price * 100) AS BIGINT) AS cents, "
    "p.title, p.brand, p.top_category "
    "FROM events e JOIN products p USING (product_id) WHERE e.event_type = 'purchase'"
)


def _argmax_sql(keyed: str) -> str:
    """SQL answering the key with the largest score of `keyed` (columns k, n), or NULL on a tie or no rows."""
    return (
        f"WITH scored AS ({keyed}), "
        "ranked AS (SELECT k, n, row_number() OVER (ORDER BY n DESC, k) AS r FROM scored) "
        "SELECT CASE WHEN (SELECT n FROM ranked WHERE r = 2) = (SELECT n FROM ranked WHERE r = 1) THEN NULL "
        "ELSE (SELECT k FROM ranked WHERE r = 1) END AS answer"
    )


def _single_or_none_sql(titles: str) -> str:
    """SQL answering the only distinct title in `titles` (column title), 'none' when empty, NULL when several."""
    return (
        f"WITH t AS (SELECT DISTINCT title FROM ({titles})) "
        "SELECT CASE count(*) WHEN 0 THEN 'none' WHEN 1 THEN min(title) ELSE NULL END AS answer FROM t"
    )


_PERIOD = "ts >= TIMESTAMP '{start}' AND ts < TIMESTAMP '{end}'"
_UNITS = "count units (purchase quantities) and do not subtract returns."
_SPEND = "(unit price times quantity over purchases, returns not subtracted; give the amount only)"
_TOP = "top-level category (the first level of the category path)"

TEMPLATES: tuple[Template, ...] = (
    Template(
        "units_all",
        "easy",
        "number",
        f"Over my whole shopping history, how many items have I bought? Please {_UNITS}",
        "SELECT coalesce(sum(quantity), 0) AS answer FROM events WHERE event_type = 'purchase'",
        "all",
        _no_params,
    ),
    Template(
        "returns_all",
        "easy",
        "number",
        "Over my whole shopping history, how many times have I returned a product (number of return events)?",
        "SELECT count(*) AS answer FROM events WHERE event_type = 'return'",
        "all",
        _no_params,
    ),
    Template(
        "spend_all",
        "easy",
        "money",
        f"How much have I spent in total over my whole shopping history, in {{currency}}? {_SPEND}",
        "SELECT coalesce(sum(CAST(round(price * 100) AS BIGINT) * quantity), 0) / 100.0 AS answer "
        "FROM events WHERE event_type = 'purchase'",
        "all",
        _money_no_params,
    ),
    Template(
        "first_product",
        "easy",
        "text",
        "What was the very first product I bought? Answer with its title.",
        f"SELECT title AS answer FROM ({_PURCHASES}) ORDER BY ts LIMIT 1",
        "all",
        _if_purchases,
    ),
    Template(
        "last_purchase_category",
        "easy",
        "text",
        f"What is the {_TOP} of my most recent purchase?",
        f"SELECT top_category AS answer FROM ({_PURCHASES}) ORDER BY ts DESC LIMIT 1",
        "last_purchase",
        _if_purchases,
    ),
    Template(
        "top_brand",
        "easy",
        "text",
        "Which brand have I bought from most often, counting purchase events?",
        _argmax_sql(f"SELECT brand AS k, count(*) AS n FROM ({_PURCHASES}) GROUP BY brand"),
        "all",
        _if_purchases,
    ),
    Template(
        "top_product",
        "easy",
        "text",
        "Which product have I bought the most units of (summing purchase quantities)? Answer with its title.",
        _argmax_sql(f"SELECT title AS k, sum(quantity) AS n FROM ({_PURCHASES}) GROUP BY title"),
        "all",
        _if_purchases,
    ),
    Template(
        "units_in_year",
        "medium",
        "number",
        f"How many items did I buy in {{year}}? Please {_UNITS}",
        f"SELECT coalesce(sum(quantity), 0) AS answer FROM events WHERE event_type = 'purchase' AND {_PERIOD}",
        "period",
        _years,
    ),
    Template(
        "spend_in_month",
        "medium",
        "money",
        f"How much did I spend in {{month_name}}, in {{currency}}? {_SPEND}",
        "SELECT coalesce(sum(CAST(round(price * 100) AS BIGINT) * quantity), 0) / 100.0 AS answer "
        f"FROM events WHERE event_type = 'purchase' AND {_PERIOD}",
        "period",
        _money_months,
    ),
    Template(
        "returns_in_year",
        "medium",
        "number",
        "How many times did I return a product in {year} (number of return events)?",
        f"SELECT count(*) AS answer FROM events WHERE event_type = 'return' AND {_PERIOD}",
        "period",
        _years,
    ),
    Template(
        "avg_price_in_category",
        "medium",
        "money",
        f"What is the average unit price, in {{currency}}, that I paid for products in the {_TOP} "
        '"{category}"? Each purchase event counts once, whatever its quantity; give the amount only.',
        f"SELECT avg(cents) / 100.0 AS answer FROM ({_PURCHASES}) WHERE top_category = {{category_sql}}",
        "all",
        _money_categories,
    ),
    Template(
        "returned_in_month",
        "medium",
        "text",
        'Which product did I return in {month_name}? Answer with its title, or "none" if I returned nothing '
        "that month.",
        _single_or_none_sql(
            "SELECT p.title, e.ts FROM events e JOIN products p USING (product_id) "
            f"WHERE e.event_type = 'return' AND {_PERIOD}"
        ),
        "period",
        _months,
    ),
    Template(
        "brand_product_in_year",
        "medium",
        "text",
        'Which {brand} product did I buy in {year}? Answer with its title, or "none" if I bought no {brand} '
        "product that year.",
        _single_or_none_sql(f"SELECT title FROM ({_PURCHASES}) WHERE brand = {{brand_sql}} AND {_PERIOD}"),
        "period",
        _brand_years,
    ),
    Template(
        "spend_compare_years",
        "hard",
        "date",
        "Did I spend more on purchases in {year1} or in {year2}? Answer with the year.",
        _argmax_sql(
            "SELECT CAST(y AS VARCHAR) AS k, coalesce((SELECT sum(cents * quantity) FROM "
            f"({_PURCHASES}) WHERE year(ts) = y), 0) AS n FROM (VALUES ({{year1}}), ({{year2}})) AS v(y)"
        ),
        "period",
        _year_pairs,
    ),
    Template(
        "top_quarter_in_year",
        "hard",
        "number",
        "In {year}, which quarter had the most purchase events? Answer with the quarter number "
        "(1 = January to March, 4 = October to December).",
        _argmax_sql(f"SELECT quarter(ts) AS k, count(*) AS n FROM ({_PURCHASES}) WHERE {_PERIOD} GROUP BY quarter(ts)"),
        "period",
        _purchase_years,
    ),
    Template(
        "category_share_growth",
        "hard",
        "text",
        f"Between {{first_year}} and {{last_year}}, which {_TOP} grew the most as a share of my purchase events "
        "of the year? Answer with the category name.",
        # Share growth c_last/n_last - c_first/n_first, scaled by n_first*n_last to stay an exact integer.
        "WITH p AS (" + _PURCHASES + "), "
        "totals AS (SELECT count(*) FILTER (WHERE year(ts) = {first_year}) AS n0, "
        "count(*) FILTER (WHERE year(ts) = {last_year}) AS n1 FROM p), "
        "per_cat AS (SELECT top_category AS k, count(*) FILTER (WHERE year(ts) = {first_year}) AS c0, "
        "count(*) FILTER (WHERE year(ts) = {last_year}) AS c1 FROM p "
        "WHERE year(ts) IN ({first_year}, {last_year}) GROUP BY top_category), "
        "growth AS (SELECT k, c1 * n0 - c0 * n1 AS n FROM per_cat, totals WHERE n0 > 0 AND n1 > 0), "
        "ranked AS (SELECT k, n, row_number() OVER (ORDER BY n DESC, k) AS r FROM growth) "
        "SELECT CASE WHEN (SELECT n FROM ranked WHERE r = 1) <= 0 THEN NULL "
        "WHEN (SELECT n FROM ranked WHERE r = 2) = (SELECT n FROM ranked WHERE r = 1) THEN NULL "
        "ELSE (SELECT k FROM ranked WHERE r = 1) END AS answer",
        "period",
        _drift_years,
    ),
    Template(
        "brand_of_most_expensive",
        "hard",
        "text",
        "What is the brand of the most expensive product I ever bought (the highest unit price I paid)?",
        f"WITH p AS ({_PURCHASES}), top AS (SELECT DISTINCT brand FROM p WHERE cents = (SELECT max(cents) FROM p)) "
        "SELECT CASE WHEN count(*) = 1 THEN min(brand) ELSE NULL END AS answer FROM top",
        "all",
        _if_purchases,
    ),
    Template(
        "category_of_last_return",
        "hard",
        "text",
        f'What is the {_TOP} of the product I returned most recently? Answer "none" if I never returned anything.',
        "SELECT coalesce((SELECT p.top_category FROM events e JOIN products p USING (product_id) "
        "WHERE e.event_type = 'return' ORDER BY e.ts DESC LIMIT 1), 'none') AS answer",
        "last_return",
        _no_params,
    ),
)
TEMPLATES_BY_KIND: dict[str, Template] = {template.kind: template for template in TEMPLATES}


def period_of(params: Mapping[str, Any]) -> tuple[datetime, datetime] | None:
    """[start, end) of the period a question's parameters name, or None when it is about all history."""
    if "month" in params:
        year, month = (int(part) for part in params["month"].split("-"))
        return datetime(year, month, 1), datetime(year + month // 12, month % 12 + 1, 1)
    years = [params[key] for key in ("year", "year1", "year2", "first_year", "last_year") if key in params]
    return (datetime(min(years), 1, 1), datetime(max(years) + 1, 1, 1)) if years else None


def fill(template: Template, params: Mapping[str, Any]) -> tuple[str, str]:
    """The question text and SQL of `template` with `params` filled in (strings quoted in the SQL)."""
    fields: dict[str, Any] = dict(params)
    period = period_of(params)
    if period is not None:
        fields["start"], fields["end"] = (moment.strftime("%Y-%m-%d %H:%M:%S") for moment in period)
    if "month" in params:
        fields["month_name"] = f"{calendar.month_name[period[0].month]} {period[0].year}"
    for key in ("brand", "category"):
        if key in params:
            fields[f"{key}_sql"] = sql_literal(params[key])
    return template.question.format(**fields), template.sql.format(**fields)


def customer_tables(events: pl.DataFrame, products: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The `events` and `products` tables of one customer: their events, and catalog rows of their products."""
    ids = events.get_column("product_id").drop_nulls().unique()
    return events, products.filter(pl.col("product_id").is_in(ids.implode())).select(PRODUCT_TABLE_COLUMNS)


def history_of(events: pl.DataFrame, products: pl.DataFrame) -> History:
    """Summarize one customer's tables into the facts that parameter choices draw on."""
    first_ts: datetime = events.get_column("ts").min()
    last_ts: datetime = events.get_column("ts").max()
    purchases = events.filter(pl.col("event_type") == "purchase").join(products, on="product_id", how="left")
    returns = events.filter(pl.col("event_type") == "return")
    currencies = purchases.get_column("currency").drop_nulls().unique().to_list()
    months = []
    year, month = first_ts.year, first_ts.month
    while (year, month) <= (last_ts.year, last_ts.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return History(
        first_ts=first_ts,
        years=list(range(first_ts.year, last_ts.year + 1)),
        months=months,
        purchase_years=sorted({ts.year for ts in purchases.get_column("ts")}),
        purchase_months=sorted({f"{ts.year:04d}-{ts.month:02d}" for ts in purchases.get_column("ts")}),
        brands=sorted(set(purchases.get_column("brand").drop_nulls()) - {UNBRANDED}),
        top_categories=sorted(purchases.get_column("top_category").drop_nulls().unique().to_list()),
        currency=currencies[0] if len(currencies) == 1 else None,
        last_purchase_ts=purchases.get_column("ts").max(),
        last_return_ts=returns.get_column("ts").max(),
    )


def evidence_start(template: Template, params: Mapping[str, Any], history: History) -> datetime:
    """Oldest event time the answer depends on: the text must hold every event from it on."""
    if template.evidence == "period":
        return period_of(params)[0]
    if template.evidence == "last_purchase" and history.last_purchase_ts is not None:
        return history.last_purchase_ts
    if template.evidence == "last_return" and history.last_return_ts is not None:
        return history.last_return_ts
    return history.first_ts


def run_sql(connection: duckdb.DuckDBPyConnection, sql: str) -> Any:
    """The single value `sql` returns; a template whose SQL returns another shape is a bug, so it raises."""
    rows = connection.execute(sql).fetchall()
    if len(rows) != 1 or len(rows[0]) != 1:
        raise ValueError(f"question SQL must return one row and one column, got {len(rows)} rows: {sql}")
    return rows[0][0]


def question_id(customer_id: str, kind: str, params: Mapping[str, Any]) -> str:
    """Stable id of a question: a hash of who it is about, its kind and its parameters."""
    return sha256_hex(f"{customer_id}|{kind}|{json.dumps(params, sort_keys=True)}")[:24]


def customer_questions(
    connection: duckdb.DuckDBPyConnection, events: pl.DataFrame, products: pl.DataFrame, per_customer: int, seed: int
) -> list[dict[str, Any]]:
    """Up to `per_customer` unambiguous questions about one customer, rows of the Questions frame.

    The customer's tables are registered on `connection` as `events` and `products` (replacing any
    earlier customer's), so one connection serves many customers. Templates are visited round-robin
    in a seeded order so that kinds stay mixed; each visit tries the template's next parameter
    choice, and a choice whose SQL answers NULL (a tie) is dropped.
    """
    events = events.sort("ts")
    customer_id: str = events.get_column("customer_id")[0]
    cohort: str = events.get_column("cohort")[0]
    events_table, products_table = customer_tables(events, products)
    history = history_of(events_table, products_table)
    rng = random.Random(int(sha256_hex(f"{seed}|{customer_id}")[:16], 16))
    order = list(TEMPLATES)
    rng.shuffle(order)
    pools = {template.kind: template.candidates(history) for template in order}
    for pool in pools.values():
        rng.shuffle(pool)
    # Arrow tables register in about a millisecond; registering polars frames converts them on every call.
    connection.register("events", events_table.to_arrow())
    connection.register("products", products_table.to_arrow())
    rows: list[dict[str, Any]] = []
    while len(rows) < per_customer and any(pools.values()):
        for template in order:
            if len(rows) >= per_customer:
                break
            if not pools[template.kind]:
                continue
            params = pools[template.kind].pop()
            question, sql = fill(template, params)
            value = run_sql(connection, sql)
            if value is None:
                continue
            answer = format_answer(value, template.answer_type)
            if not answer:
                continue
            rows.append(
                {
                    "question_id": question_id(customer_id, template.kind, params),
                    "customer_id": customer_id,
                    "cohort": cohort,
                    "kind": template.kind,
                    "difficulty": template.difficulty,
                    "question": question,
                    "answer": answer,
                    "answer_type": "none" if answer == NONE_ANSWER else template.answer_type,
                    "sql": sql,
                    "evidence_start": evidence_start(template, params, history),
                    "params": json.dumps(params, sort_keys=True),
                }
            )
    return rows


def generate_questions(events: pl.DataFrame, products: pl.DataFrame, per_customer: int, seed: int) -> pl.DataFrame:
    """The Questions frame for every customer in `events`: up to `per_customer` each, deterministic for `seed`."""
    if per_customer < 0:
        raise ValueError(f"per_customer must be >= 0, got {per_customer}")
    rows: list[dict[str, Any]] = []
    connection = duckdb.connect(":memory:")
    try:
        for customer_events in events.partition_by("customer_id", maintain_order=True):
            rows.extend(customer_questions(connection, customer_events, products, per_customer, seed))
    finally:
        connection.close()
    return pl.DataFrame(rows, schema=QUESTION_SCHEMA)
