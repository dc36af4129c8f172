"""Histories as text at token budgets: self-contained lines, the most recent events kept, budgets never exceeded."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import polars as pl
import pytest

from ops.shopping.questions import generate_questions
from ops.shopping.rendering import CONTEXT_SCHEMA, answerable, render_contexts, render_event_line, render_history
from tests.test_shopping_questions import ALICE, BOB, EVENT_SCHEMA, EVENTS, PRODUCTS

CATALOG = {row["product_id"]: row for row in PRODUCTS.iter_rows(named=True)}


def whitespace_tokens(texts: Sequence[str]) -> list[int]:
    return [len(text.split()) for text in texts]


def char_tokens(texts: Sequence[str]) -> list[int]:
    return [(len(text) + 3) // 4 for text in texts]


def newline_heavy_tokens(texts: Sequence[str]) -> list[int]:
    """Counts a joined text far above the sum of its lines, so the first estimate overshoots the budget."""
    return [len(text.split()) + 6 * text.count("\n") for text in texts]


def long_history(customer_id: str, n_purchases: int) -> pl.DataFrame:
    """A search, a view and a purchase every four days, cycling through the hand-made products."""
    products = sorted(CATALOG)
    start = datetime(2020, 1, 1, 9)
    rows = []
    for index in range(n_purchases):
        product = products[index % len(products)]
        price = CATALOG[product]["price"]
        ts = start + timedelta(days=4 * index)
        session = f"{customer_id}-s{index:05d}"
        for offset, kind in enumerate(("search", "view", "purchase")):
            rows.append(
                {
                    "customer_id": customer_id,
                    "cohort": "cohort-002",
                    "event_index": len(rows),
                    "ts": ts + timedelta(minutes=offset),
                    "session_id": session,
                    "event_type": kind,
                    "query": f"cheap {CATALOG[product]['leaf_category'].lower()}" if kind == "search" else None,
                    "product_id": None if kind == "search" else product,
                    "price": None if kind == "search" else price,
                    "quantity": 1 + index % 3 if kind == "purchase" else None,
                    "rating": None,
                }
            )
    return pl.DataFrame(rows, schema=EVENT_SCHEMA)


def test_each_line_holds_every_field_a_question_can_ask_about() -> None:
    for row in EVENTS.iter_rows(named=True):
        product = CATALOG.get(row["product_id"])
        line = render_event_line(row, product)
        assert "\n" not in line
        assert f"{row['ts']:%Y-%m-%d %H:%M}" in line
        assert row["event_type"] in line
        assert row["session_id"].removeprefix(f"{row['customer_id']}-") in line
        if product is not None:
            assert f'"{product["title"]}"' in line
            assert f"brand {product['brand']}" in line
            assert f"category {product['category']}" in line
        if row["price"] is not None:
            assert f"price {row['price']:.2f} {product['currency']}" in line
        if row["quantity"] is not None:
            assert f"quantity {row['quantity']}" in line
        if row["rating"] is not None:
            assert f"rating {row['rating']}/5" in line
        if row["query"] is not None:
            assert f'query "{row["query"]}"' in line
    review = ALICE.filter(pl.col("event_type") == "review").row(0, named=True)
    assert render_event_line(review, CATALOG["t:4"]) == (
        '2022-03-01 07:00 | session s38215 | review | "Paint Set" | brand Crayola | category Arts > Paint | rating 5/5'
    )


def test_whole_history_when_it_fits() -> None:
    [row] = render_history(ALICE, PRODUCTS, [100_000], whitespace_tokens, None, 0)
    lines = row["text"].split("\n")
    assert row["status"] == "rendered" and not row["cut"]
    assert row["events_kept"] == row["events_total"] == len(ALICE) == len(lines) - 1
    assert row["first_kept_ts"] == ALICE.get_column("ts").min()
    assert lines[0].startswith("Shopping history of customer cohort-000-00000: 27 events from 2021-03-02 to 2023-06-01")
    assert row["tokens"] == whitespace_tokens([row["text"]])[0]


@pytest.mark.parametrize("count_tokens", [whitespace_tokens, char_tokens, newline_heavy_tokens])
def test_budget_is_never_exceeded_and_the_most_recent_events_are_kept(count_tokens) -> None:
    events = long_history("cohort-002-00000", 120)
    expected_lines = [render_event_line(row, CATALOG.get(row["product_id"])) for row in events.iter_rows(named=True)]
    budgets = [150, 250, 400, 1000, 2500, 6000, 50_000]
    rows = render_history(events, PRODUCTS, budgets, count_tokens, None, 0)
    assert [row["budget_tokens"] for row in rows] == budgets
    kept = []
    for row in rows:
        assert row["status"] == "rendered"
        assert row["tokens"] == count_tokens([row["text"]])[0] <= row["budget_tokens"]
        body = row["text"].split("\n")[1:]
        assert body == expected_lines[len(expected_lines) - row["events_kept"] :]
        assert row["cut"] == (row["events_kept"] < 360)
        assert row["first_kept_ts"] == events.get_column("ts")[360 - row["events_kept"]]
        kept.append(row["events_kept"])
    assert kept == sorted(kept) and kept[0] < kept[-1] == 360
    header = rows[0]["text"].split("\n")[0]
    assert f"the most recent {kept[0]} of 360 events" in header
    assert f"the {360 - kept[0]} earlier events are not shown" in header
    # The budget is used: one more line would not have fitted (exact for additive counters).
    if count_tokens is whitespace_tokens:
        for row in rows[:-1]:
            assert row["tokens"] + len(expected_lines[360 - row["events_kept"] - 1].split()) > row["budget_tokens"]


def test_budgets_beyond_the_context_window_are_skipped_with_a_note() -> None:
    rows = render_history(ALICE, PRODUCTS, [300, 3_700, 3_900, 5], whitespace_tokens, 4_096, 256)
    by_budget = {row["budget_tokens"]: row for row in rows}
    assert by_budget[300]["status"] == "rendered" and by_budget[300]["tokens"] <= 300
    assert by_budget[3_700]["status"] == "rendered"
    skipped = by_budget[3_900]
    assert skipped["status"] == "skipped" and skipped["text"] is None and skipped["tokens"] is None
    assert "3900" in skipped["note"] and "4096" in skipped["note"] and "context window" in skipped["note"]
    assert "not truncated" in skipped["note"]
    assert by_budget[5]["status"] == "skipped" and "no room for any event" in by_budget[5]["note"]


def test_answerable_excludes_questions_whose_evidence_was_cut() -> None:
    questions = generate_questions(ALICE, PRODUCTS, per_customer=10_000, seed=2)
    contexts = render_contexts(ALICE, PRODUCTS, [150, 100_000, 200_000], whitespace_tokens, 150_000, 0)
    cut = contexts.filter(pl.col("budget_tokens") == 150).row(0, named=True)
    assert cut["cut"] and 0 < cut["events_kept"] < cut["events_total"]
    pairs = answerable(questions, contexts)
    assert set(pairs.get_column("budget_tokens")) == {150, 100_000}  # 200_000 was skipped
    full = pairs.filter(pl.col("budget_tokens") == 100_000)
    assert sorted(full.get_column("question_id")) == sorted(questions.get_column("question_id"))
    at_cut = set(pairs.filter(pl.col("budget_tokens") == 150).get_column("question_id"))
    expected = set(questions.filter(pl.col("evidence_start") >= cut["first_kept_ts"]).get_column("question_id"))
    assert at_cut == expected
    assert 0 < len(at_cut) < len(questions)
    # Every question kept at the cut budget has its evidence inside the text, e.g. the last return.
    kinds = set(pairs.filter(pl.col("budget_tokens") == 150).get_column("kind"))
    assert "category_of_last_return" in kinds and "first_product" not in kinds


def test_render_contexts_covers_every_customer_and_batches_the_tokenizer() -> None:
    calls: list[int] = []

    def counting(texts: Sequence[str]) -> list[int]:
        calls.append(len(texts))
        return whitespace_tokens(texts)

    events = pl.concat([EVENTS, long_history("cohort-002-00000", 50)])
    contexts = render_contexts(events, PRODUCTS, [100, 800, 10_000], counting, None, 0)
    assert contexts.schema == pl.Schema(CONTEXT_SCHEMA)
    assert contexts.height == 4 * 3
    # Per customer: one call with the header and every line, then a few with one text per budget still searched.
    first_calls = [index for index, size in enumerate(calls) if size > 3]
    assert [calls[index] for index in first_calls] == [2 + len(ALICE), 2 + len(BOB), 2 + 8, 2 + 150]
    assert all(calls[index + 1] == 3 for index in first_calls)  # every budget's first text in one call
    assert len(calls) <= 4 * (1 + 4)
    totals = dict(contexts.group_by("customer_id").agg(pl.col("events_total").first()).iter_rows())
    assert totals == {
        "cohort-000-00000": len(ALICE),
        "cohort-000-00001": len(BOB),
        "cohort-001-00000": 8,
        "cohort-002-00000": 150,
    }
    assert (contexts.get_column("tokens") <= contexts.get_column("budget_tokens")).all()


@pytest.mark.slow
def test_budgets_hold_with_the_real_smollm2_tokenizer() -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    from ops.common.packaged_models import smollm2_model_path

    vocab = llama_cpp.Llama(model_path=str(smollm2_model_path()), vocab_only=True, verbose=False)

    def smollm2_tokens(texts: Sequence[str]) -> list[int]:
        return [len(vocab.tokenize(text.encode(), add_bos=False, special=False)) for text in texts]

    events = long_history("cohort-002-00000", 200)
    questions = generate_questions(events, PRODUCTS, per_customer=30, seed=0)
    budgets = [40, 200, 500, 1_000, 2_000, 4_000, 7_000, 8_000]
    contexts = render_contexts(events, PRODUCTS, budgets, smollm2_tokens, 8_192, 512)
    by_budget = {row["budget_tokens"]: row for row in contexts.iter_rows(named=True)}
    for budget in budgets[1:-1]:
        row = by_budget[budget]
        assert row["status"] == "rendered"
        assert row["tokens"] == smollm2_tokens([row["text"]])[0] <= budget
        assert row["tokens"] > 0.8 * budget  # the budget is used, not just respected
    assert by_budget[40]["status"] == "skipped"  # the header alone does not leave room
    assert by_budget[8_000]["status"] == "skipped" and "8192" in by_budget[8_000]["note"]
    kept = [by_budget[budget]["events_kept"] for budget in budgets[1:-1]]
    assert kept == sorted(kept) and by_budget[7_000]["cut"] and kept[-1] < 600
    pairs = answerable(questions, contexts)
    for budget in (200, 1_000):
        first_kept = by_budget[budget]["first_kept_ts"]
        kept_ids = set(pairs.filter(pl.col("budget_tokens") == budget).get_column("question_id"))
        assert kept_ids == set(questions.filter(pl.col("evidence_start") >= first_kept).get_column("question_id"))
