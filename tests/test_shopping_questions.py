"""ShopTrajQA gold answers: every template's SQL answer is recomputed here in plain Python on hand-made histories."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb
import polars as pl
import pytest

from ops.shopping.answers import normalize_answer
from ops.shopping.questions import (
    QUESTION_SCHEMA,
    TEMPLATES,
    TEMPLATES_BY_KIND,
    customer_tables,
    fill,
    format_answer,
    generate_questions,
    history_of,
    run_sql,
)

PRODUCTS = pl.DataFrame(
    {
        "product_id": ["t:1", "t:2", "t:3", "t:4", "t:5", "t:6", "m:MB01", "t:7"],
        "title": [
            "Hornby Express Train Set",
            "Party Balloons 50",
            "Lego City Police Car",
            "Paint Set",
            "Kid's Kitchen",
            "Unused Puzzle",
            "Voyage Yoga Bag",
            "Plain Stickers",
        ],
        "brand": ["Hornby", "Amscan", "LEGO", "Crayola", "Smyth's Toys", "Ravensburger", "Luma", "Unbranded"],
        "category": [
            "Hobbies > Trains",
            "Party > Balloons",
            "Construction > Lego",
            "Arts > Paint",
            "Role Play > Kitchens",
            "Puzzles > Jigsaws",
            "Gear > Bags",
            "Arts > Stickers",
        ],
        "top_category": ["Hobbies", "Party", "Construction", "Arts", "Role Play", "Puzzles", "Gear", "Arts"],
        "leaf_category": ["Trains", "Balloons", "Lego", "Paint", "Kitchens", "Jigsaws", "Bags", "Stickers"],
        "price": [69.93, 3.49, 19.99, 4.5, 45.0, 9.99, 32.0, 1.2],
        "currency": ["GBP"] * 6 + ["USD", "GBP"],
        "source": ["t"] * 6 + ["m", "t"],
    }
)
EVENT_SCHEMA = {
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


def history(customer_id: str, steps: list[tuple]) -> pl.DataFrame:
    """Events from (ts, event_type, product_id or query, price, quantity, rating) steps, one session per day."""
    rows = []
    for index, (ts, kind, target, price, quantity, rating) in enumerate(steps):
        rows.append(
            {
                "customer_id": customer_id,
                "cohort": "cohort-000",
                "event_index": index,
                "ts": ts,
                "session_id": f"{customer_id}-s{ts.toordinal() % 100000:05d}",
                "event_type": kind,
                "query": target if kind == "search" else None,
                "product_id": None if kind == "search" else target,
                "price": price,
                "quantity": quantity,
                "rating": rating,
            }
        )
    return pl.DataFrame(rows, schema=EVENT_SCHEMA)


def buy(ts: datetime, product: str, price: float, quantity: int = 1) -> list[tuple]:
    """A view followed by a purchase a minute later, as the simulator's invariant wants."""
    return [
        (ts, "view", product, price, None, None),
        (ts.replace(minute=ts.minute + 1), "purchase", product, price, quantity, None),
    ]


# Customer A: three years, repeat purchases, returns, a review, searches, a price change.
ALICE = history(
    "cohort-000-00000",
    [
        (datetime(2021, 3, 2, 9), "search", "hornby trains", None, None, None),
        *buy(datetime(2021, 3, 2, 9, 5), "t:1", 69.93),
        *buy(datetime(2021, 5, 9, 10), "t:2", 3.49, 3),
        *buy(datetime(2021, 11, 20, 18), "t:3", 19.99),
        (datetime(2021, 11, 28, 8), "return", "t:3", 19.99, 1, None),
        *buy(datetime(2022, 2, 14, 12), "t:2", 3.49, 2),
        *buy(datetime(2022, 2, 20, 12), "t:4", 4.5, 1),
        (datetime(2022, 3, 1, 7), "review", "t:4", None, None, 5),
        *buy(datetime(2022, 8, 3, 15), "t:2", 3.55, 4),
        *buy(datetime(2022, 8, 9, 15), "t:5", 45.0),
        (datetime(2022, 9, 1, 9), "add_to_cart", "t:6", 9.99, 1, None),
        (datetime(2022, 9, 1, 9, 3), "remove_from_cart", "t:6", 9.99, 1, None),
        *buy(datetime(2023, 1, 5, 20), "t:4", 4.5, 2),
        *buy(datetime(2023, 1, 6, 20), "t:4", 4.5, 1),
        *buy(datetime(2023, 4, 1, 11), "t:5", 45.0),
        (datetime(2023, 4, 10, 11), "return", "t:5", 45.0, 1, None),
        (datetime(2023, 6, 1, 11), "search", "party balloons", None, None, None),
    ],
)
# Customer B: ties everywhere (two brands bought twice each, two products at the top price), no returns.
BOB = history(
    "cohort-000-00001",
    [
        *buy(datetime(2022, 1, 10, 9), "t:3", 19.99),
        *buy(datetime(2022, 4, 10, 9), "t:6", 19.99),
        *buy(datetime(2022, 7, 10, 9), "t:3", 19.99),
        *buy(datetime(2022, 10, 10, 9), "t:6", 19.99),
        *buy(datetime(2023, 1, 10, 9), "t:2", 3.49, 2),
        *buy(datetime(2023, 2, 10, 9), "t:4", 4.5, 2),
    ],
)
# Customer C: a clear favourite brand, but purchases in two currencies, so no money questions.
CAROL = history(
    "cohort-001-00000",
    [
        *buy(datetime(2024, 2, 1, 9), "m:MB01", 34.0),
        *buy(datetime(2024, 3, 1, 9), "t:1", 69.93),
        *buy(datetime(2024, 12, 31, 23), "m:MB01", 34.0, 2),
        *buy(datetime(2025, 1, 2, 8), "t:7", 1.2, 5),
    ],
)
EVENTS = pl.concat([ALICE, BOB, CAROL])


@pytest.fixture(scope="module")
def all_questions() -> pl.DataFrame:
    """Every question the three hand-made customers allow (no cap)."""
    return generate_questions(EVENTS, PRODUCTS, per_customer=10_000, seed=7)


def cents(price: float) -> int:
    return int(Decimal(str(price)) * 100)


def expected(kind: str, params: dict[str, Any], events: pl.DataFrame) -> Any:
    """The answer computed without SQL: a value for format_answer, or None where the question is ambiguous."""
    catalog = {row["product_id"]: row for row in PRODUCTS.iter_rows(named=True)}
    rows = sorted(events.iter_rows(named=True), key=lambda row: row["ts"])
    purchases = [
        {**row, **{k: v for k, v in catalog[row["product_id"]].items() if k != "price"}}
        for row in rows
        if row["event_type"] == "purchase"
    ]
    returns = [row for row in rows if row["event_type"] == "return"]

    def in_year(row: dict, year: int) -> bool:
        return row["ts"].year == year

    def in_month(row: dict, month: str) -> bool:
        return f"{row['ts'].year:04d}-{row['ts'].month:02d}" == month

    def argmax(scores: Counter) -> Any:
        ranked = scores.most_common()
        if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
            return None
        return ranked[0][0]

    def only_title(titles: set[str]) -> str | None:
        return "none" if not titles else (next(iter(titles)) if len(titles) == 1 else None)

    def spend(selected: list[dict]) -> Decimal:
        return Decimal(sum(cents(row["price"]) * row["quantity"] for row in selected)) / 100

    if kind == "units_all":
        return sum(row["quantity"] for row in purchases)
    if kind == "returns_all":
        return len(returns)
    if kind == "spend_all":
        return spend(purchases)
    if kind == "first_product":
        return purchases[0]["title"]
    if kind == "last_purchase_category":
        return purchases[-1]["top_category"]
    if kind == "top_brand":
        return argmax(Counter(row["brand"] for row in purchases))
    if kind == "top_product":
        units: Counter = Counter()
        for row in purchases:
            units[row["title"]] += row["quantity"]
        return argmax(units)
    if kind == "units_in_year":
        return sum(row["quantity"] for row in purchases if in_year(row, params["year"]))
    if kind == "spend_in_month":
        return spend([row for row in purchases if in_month(row, params["month"])])
    if kind == "returns_in_year":
        return sum(1 for row in returns if in_year(row, params["year"]))
    if kind == "avg_price_in_category":
        prices = [cents(row["price"]) for row in purchases if row["top_category"] == params["category"]]
        return (Decimal(sum(prices)) / len(prices) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    if kind == "returned_in_month":
        return only_title({catalog[row["product_id"]]["title"] for row in returns if in_month(row, params["month"])})
    if kind == "brand_product_in_year":
        return only_title(
            {row["title"] for row in purchases if row["brand"] == params["brand"] and in_year(row, params["year"])}
        )
    if kind == "spend_compare_years":
        totals = Counter(
            {
                str(year): spend([row for row in purchases if in_year(row, year)])
                for year in (params["year1"], params["year2"])
            }
        )
        return argmax(totals)
    if kind == "top_quarter_in_year":
        return argmax(Counter((row["ts"].month - 1) // 3 + 1 for row in purchases if in_year(row, params["year"])))
    if kind == "category_share_growth":
        first = [row["top_category"] for row in purchases if in_year(row, params["first_year"])]
        last = [row["top_category"] for row in purchases if in_year(row, params["last_year"])]
        growth = Counter(
            {
                c: Decimal(last.count(c)) / len(last) - Decimal(first.count(c)) / len(first)
                for c in set(first) | set(last)
            }
        )
        best = argmax(growth)
        return best if best is not None and growth[best] > 0 else None
    if kind == "brand_of_most_expensive":
        top = max(cents(row["price"]) for row in purchases)
        brands = {row["brand"] for row in purchases if cents(row["price"]) == top}
        return next(iter(brands)) if len(brands) == 1 else None
    if kind == "category_of_last_return":
        return catalog[returns[-1]["product_id"]]["top_category"] if returns else "none"
    raise AssertionError(f"no Python reference for template {kind!r}")


def test_every_gold_answer_matches_python_and_every_unambiguous_choice_is_asked(all_questions: pl.DataFrame) -> None:
    questions = all_questions
    assert questions.schema == pl.Schema(QUESTION_SCHEMA)
    assert set(questions.get_column("kind")) == set(TEMPLATES_BY_KIND)
    for customer_events in EVENTS.partition_by("customer_id", maintain_order=True):
        customer = customer_events.get_column("customer_id")[0]
        asked = {
            (row["kind"], row["params"]): row
            for row in questions.iter_rows(named=True)
            if row["customer_id"] == customer
        }
        candidates = history_of(*customer_tables(customer_events, PRODUCTS))
        for template in TEMPLATES:
            for params in template.candidates(candidates):
                value = expected(template.kind, params, customer_events)
                key = (template.kind, json.dumps(params, sort_keys=True))
                if value is None:
                    assert key not in asked, f"ambiguous question published: {key}"
                    continue
                assert key in asked, f"unambiguous question not asked: {key}"
                assert asked[key]["answer"] == format_answer(value, template.answer_type), key
    assert len(questions) > 60


def test_known_answers_for_alice() -> None:
    questions = generate_questions(ALICE, PRODUCTS, per_customer=10_000, seed=1)
    answers = {(row["kind"], row["params"]): row["answer"] for row in questions.iter_rows(named=True)}
    assert answers[("units_all", "{}")] == "17"  # returns are not subtracted
    assert answers[("spend_all", '{"currency": "GBP"}')] == "229.57"
    assert answers[("first_product", "{}")] == "hornby express train set"
    assert answers[("top_product", "{}")] == "party balloons 50"
    assert ("top_brand", "{}") not in answers  # Amscan and Crayola: three purchase events each
    assert answers[("brand_of_most_expensive", "{}")] == "hornby"
    assert answers[("category_of_last_return", "{}")] == "role play"
    assert answers[("returned_in_month", '{"month": "2021-11"}')] == "lego city police car"
    assert answers[("returned_in_month", '{"month": "2022-05"}')] == "none"
    assert answers[("brand_product_in_year", '{"brand": "Smyth\'s Toys", "year": 2022}')] == "kids kitchen"
    assert answers[("spend_compare_years", '{"year1": 2021, "year2": 2023}')] == "2021"


def test_ties_are_not_asked_and_the_sql_reports_them_as_null() -> None:
    questions = generate_questions(BOB, PRODUCTS, per_customer=10_000, seed=3)
    kinds = set(questions.get_column("kind"))
    assert "top_brand" not in kinds  # LEGO and Ravensburger bought twice each
    assert "brand_of_most_expensive" not in kinds  # both at 19.99
    assert "first_product" in kinds and "category_of_last_return" in kinds
    events, products = customer_tables(BOB, PRODUCTS)
    connection = duckdb.connect(":memory:")
    connection.register("events", events)
    connection.register("products", products)
    assert run_sql(connection, fill(TEMPLATES_BY_KIND["top_brand"], {})[1]) is None
    assert run_sql(connection, fill(TEMPLATES_BY_KIND["top_product"], {})[1]) is None  # four products, 2 units each
    assert run_sql(connection, fill(TEMPLATES_BY_KIND["first_product"], {})[1]) == "Lego City Police Car"


def test_mixed_currency_customer_gets_no_money_questions() -> None:
    questions = generate_questions(CAROL, PRODUCTS, per_customer=10_000, seed=3)
    assert not questions.is_empty()
    assert "money" not in set(questions.get_column("answer_type"))
    assert questions.filter(pl.col("kind") == "top_brand").get_column("answer").to_list() == ["luma"]
    assert not questions.get_column("params").str.contains("Unbranded").any()  # "Which Unbranded product...?"


def test_none_answers_appear_with_answer_type_none(all_questions: pl.DataFrame) -> None:
    questions = all_questions
    nones = questions.filter(pl.col("answer") == "none")
    assert set(nones.get_column("answer_type")) == {"none"}
    assert {"returned_in_month", "brand_product_in_year", "category_of_last_return"} <= set(nones.get_column("kind"))
    assert questions.filter((pl.col("answer_type") == "none") != (pl.col("answer") == "none")).is_empty()


def test_questions_are_deterministic_mixed_and_capped() -> None:
    first = generate_questions(EVENTS, PRODUCTS, per_customer=8, seed=11)
    again = generate_questions(EVENTS, PRODUCTS, per_customer=8, seed=11)
    other = generate_questions(EVENTS, PRODUCTS, per_customer=8, seed=12)
    assert first.equals(again)
    assert not first.equals(other)
    assert first.group_by("customer_id").len().get_column("len").to_list() == [8, 8, 8]
    assert first.group_by("customer_id").agg(pl.col("kind").n_unique()).get_column("kind").min() == 8
    assert first.get_column("question_id").is_unique().all()
    shared = first.join(other, on="question_id", suffix="_other")
    assert (shared.get_column("params") == shared.get_column("params_other")).all()
    assert generate_questions(EVENTS, PRODUCTS, per_customer=0, seed=11).is_empty()


def test_evidence_start_covers_what_the_answer_depends_on() -> None:
    questions = generate_questions(ALICE, PRODUCTS, per_customer=10_000, seed=1)
    evidence = {(row["kind"], row["params"]): row["evidence_start"] for row in questions.iter_rows(named=True)}
    first_event = ALICE.get_column("ts").min()
    assert evidence[("units_all", "{}")] == first_event
    assert evidence[("units_in_year", '{"year": 2022}')] == datetime(2022, 1, 1)
    assert evidence[("spend_in_month", '{"currency": "GBP", "month": "2022-08"}')] == datetime(2022, 8, 1)
    assert evidence[("spend_compare_years", '{"year1": 2021, "year2": 2023}')] == datetime(2021, 1, 1)
    assert evidence[("last_purchase_category", "{}")] == datetime(2023, 4, 1, 11, 1)
    assert evidence[("category_of_last_return", "{}")] == datetime(2023, 4, 10, 11)


def test_sql_is_kept_with_each_question_and_reproduces_its_answer() -> None:
    questions = generate_questions(ALICE, PRODUCTS, per_customer=12, seed=5)
    events, products = customer_tables(ALICE, PRODUCTS)
    connection = duckdb.connect(":memory:")
    connection.register("events", events)
    connection.register("products", products)
    for row in questions.iter_rows(named=True):
        answer_type = TEMPLATES_BY_KIND[row["kind"]].answer_type
        assert format_answer(run_sql(connection, row["sql"]), answer_type) == row["answer"]
        assert "{" not in row["question"] and "{" not in row["sql"]


@pytest.mark.parametrize(
    ("value", "answer_type", "form"),
    [
        (12, "number", "12"),
        (12.0, "number", "12"),
        (3.456, "number", "3.46"),
        (12.5, "money", "12.5"),
        (12.50, "money", "12.5"),
        (0.015, "money", "0.02"),
        (1234.5, "money", "1234.5"),
        (0.0, "money", "0"),
        (Decimal("100.00"), "money", "100"),
        (2023, "date", "2023"),
        ("2023-04", "date", "2023-04"),
        (datetime(2023, 4, 5, 10), "date", "2023-04-05"),
        ("  Kid's   KITCHEN ", "text", "kids kitchen"),
        ("Arts & Crafts", "text", "arts crafts"),
        ("None", "text", "none"),
        ("anything", "none", "none"),
    ],
)
def test_format_answer_canonical_forms(value: Any, answer_type: str, form: str) -> None:
    assert format_answer(value, answer_type) == form
    assert normalize_answer(form) == form  # the agent's normalizer leaves gold answers unchanged


def test_every_generated_answer_is_a_fixed_point_of_normalize_answer(all_questions: pl.DataFrame) -> None:
    answers = all_questions.get_column("answer").to_list()
    assert [normalize_answer(answer) for answer in answers] == answers
    assert all(answers)


@pytest.mark.parametrize(("value", "answer_type"), [(None, "text"), ("April", "date"), (True, "number"), (1, "x")])
def test_format_answer_rejects_unusable_values(value: Any, answer_type: str) -> None:
    with pytest.raises(ValueError, match="answer"):
        format_answer(value, answer_type)
