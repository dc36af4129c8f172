"""A customer's history as text at a token budget: the long-context baseline's input.

One self-contained line per event (everything a question can ask about is on it), oldest first,
under a header that says how much of the history is shown. When the history does not fit, the most
recent events are kept and the cut is recorded (`first_kept_ts`), so that questions whose evidence
was cut out are not asked (`answerable`). The final text is counted again with the real tokenizer
and trimmed until it fits: the budget is never exceeded. A budget that, with the tokens reserved for
the prompt and the answer, does not fit the model's context window is skipped with a note.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

CountTokens = Callable[[Sequence[str]], list[int]]
# Rounds of counting after which a text that fits is kept even if a few more events might fit too.
_MAX_GROW_ROUNDS = 4

CONTEXT_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "cohort": pl.String(),
    "budget_tokens": pl.Int64(),
    "status": pl.String(),
    "note": pl.String(),
    "text": pl.String(),
    "tokens": pl.Int64(),
    "events_total": pl.Int64(),
    "events_kept": pl.Int64(),
    "first_kept_ts": pl.Datetime("us"),
    "cut": pl.Boolean(),
}
LINE_LEGEND = (
    "Each line: date and time (UTC), session, event, then for products the title in quotes, brand, "
    "category path (top level first), unit price, quantity and rating; searches show the query."
)


def render_event_line(event_row: Mapping[str, Any], product_row: Mapping[str, Any] | None) -> str:
    """One event as one line that needs no other line to be understood.

    `product_row` is the catalog row of the event's product (None for searches); a product missing
    from the catalog is shown by its id rather than dropped.
    """
    customer_prefix = f"{event_row['customer_id']}-"
    session = event_row["session_id"].removeprefix(customer_prefix)
    parts = [f"{event_row['ts']:%Y-%m-%d %H:%M} | session {session} | {event_row['event_type']}"]
    if event_row.get("query") is not None:
        parts.append(f'query "{event_row["query"]}"')
    if product_row is not None:
        parts.append(f'"{product_row["title"]}"')
        parts.append(f"brand {product_row['brand']}")
        parts.append(f"category {product_row['category']}")
    elif event_row.get("product_id") is not None:
        parts.append(f"product {event_row['product_id']} (not in the catalog)")
    if event_row.get("price") is not None:
        currency = product_row["currency"] if product_row is not None else ""
        parts.append(f"price {event_row['price']:.2f} {currency}".rstrip())
    if event_row.get("quantity") is not None:
        parts.append(f"quantity {event_row['quantity']}")
    if event_row.get("rating") is not None:
        parts.append(f"rating {event_row['rating']}/5")
    return " | ".join(parts)


def _header(customer_id: str, total: int, kept: int, first: datetime, last: datetime) -> str:
    """The first line: whose history, how many events, and whether older events were left out."""
    if kept == total:
        return (
            f"Shopping history of customer {customer_id}: {total} events from {first:%Y-%m-%d} to {last:%Y-%m-%d}, "
            f"oldest first. {LINE_LEGEND}"
        )
    return (
        f"Shopping history of customer {customer_id}: the most recent {kept} of {total} events, from "
        f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d}, oldest first; the {total - kept} earlier events are not shown. "
        f"{LINE_LEGEND}"
    )


def _row(customer_id: str, cohort: str, budget: int, total: int, **fields: Any) -> dict[str, Any]:
    """A Contexts row with nothing rendered yet (how a skipped budget stays: no text, nothing cut)."""
    base = {"customer_id": customer_id, "cohort": cohort, "budget_tokens": budget, "events_total": total}
    empty = {"text": None, "tokens": None, "events_kept": 0, "first_kept_ts": None, "cut": False}
    return {**base, **empty, **fields}


def render_history(
    events: pl.DataFrame,
    products: pl.DataFrame,
    budgets: Sequence[int],
    count_tokens: CountTokens,
    context_window: int | None,
    reserve_tokens: int,
) -> list[dict[str, Any]]:
    """Rows of the Contexts frame for one customer, one per budget, each text at most its budget in tokens.

    `count_tokens` is the tokenizer of the model under test (one count per text); `reserve_tokens`
    are kept free of the context window for the instructions, the question and the answer.
    """
    if events.is_empty():
        raise ValueError("render_history needs at least one event to know whose history it renders")
    events = events.sort("ts")
    customer_id: str = events.get_column("customer_id")[0]
    cohort: str = events.get_column("cohort")[0]
    catalog = {row["product_id"]: row for row in products.iter_rows(named=True)}
    rows = list(events.iter_rows(named=True))
    lines = [render_event_line(row, catalog.get(row["product_id"])) for row in rows]
    timestamps: list[datetime] = [row["ts"] for row in rows]
    total = len(lines)
    full_header = _header(customer_id, total, total, timestamps[0], timestamps[-1])
    cut_header = _header(customer_id, total, max(total - 1, 1), timestamps[-1], timestamps[-1])
    full_header_tokens, cut_header_tokens, *line_tokens = count_tokens([full_header, cut_header, *lines])
    # newest_cost[k]: estimated tokens of the k most recent lines, one more per line for its newline.
    newest_cost = [0, *itertools.accumulate(count + 1 for count in reversed(line_tokens))]

    def estimate(kept: int) -> int:
        return (full_header_tokens if kept == total else cut_header_tokens) + newest_cost[kept]

    def most_within(limit: int) -> int:
        """The most recent events whose estimated text is at most `limit` tokens (0 when none)."""
        if estimate(total) <= limit:
            return total
        return min(max(bisect.bisect_right(newest_cost, limit - cut_header_tokens) - 1, 0), total - 1)

    def text_of(kept: int) -> str:
        first = timestamps[total - kept] if kept else timestamps[-1]
        return "\n".join([_header(customer_id, total, kept, first, timestamps[-1]), *lines[total - kept :]])

    out: list[dict[str, Any]] = []
    searches: dict[int, _Search] = {}  # index in `out` -> the search for its budget's text
    for budget in budgets:
        if context_window is not None and budget + reserve_tokens > context_window:
            note = (
                f"skipped: budget {budget} + {reserve_tokens} tokens reserved for prompt and answer = "
                f"{budget + reserve_tokens} exceeds the model's context window of {context_window}; "
                "the history is not truncated to fit"
            )
            out.append(_row(customer_id, cohort, budget, total, status="skipped", note=note))
            continue
        searches[len(out)] = _Search(budget=budget, kept=most_within(budget), too_many=total + 1)
        out.append(_row(customer_id, cohort, budget, total, status="rendered", note=""))
    rounds = 0
    while searches:
        rounds += 1
        indexes = list(searches)
        texts = [text_of(searches[index].kept) for index in indexes]
        for index, text, tokens in zip(indexes, texts, count_tokens(texts), strict=True):
            search = searches[index]
            if search.kept == 0:
                del searches[index]
                note = f"skipped: budget {search.budget} leaves no room for any event after the {tokens}-token header"
                out[index].update(status="skipped", note=note)
                continue
            # Estimate again, corrected by how far the estimate of this text was from its real count.
            corrected = most_within(search.budget - (tokens - estimate(search.kept)))
            if tokens <= search.budget:
                search.best = (search.kept, text, tokens)
                following = min(corrected, search.too_many - 1)
            else:
                search.too_many = search.kept
                floor = search.best[0] + 1 if search.best else 0
                following = max(min(corrected, search.kept - 1), floor)
            done = search.best is not None and (following <= search.best[0] or rounds >= _MAX_GROW_ROUNDS)
            if done or following >= search.too_many:
                del searches[index]
                out[index].update(_kept_fields(*search.best, total, timestamps))
            else:
                search.kept = following
    return out


@dataclass
class _Search:
    """The search for one budget's text: the most recent events whose text, counted for real, fits."""

    budget: int
    kept: int  # events in the next text to count
    too_many: int  # fewest events known not to fit
    best: tuple[int, str, int] | None = None  # (events kept, text, tokens) of the largest text that fitted


def _kept_fields(kept: int, text: str, tokens: int, total: int, timestamps: list[datetime]) -> dict[str, Any]:
    """The Contexts columns of a rendered text that keeps the `kept` most recent of `total` events."""
    cut = kept < total
    note = f"cut: kept the {kept} most recent of {total} events" if cut else "whole history"
    return {
        "note": note,
        "text": text,
        "tokens": tokens,
        "events_kept": kept,
        "first_kept_ts": timestamps[total - kept] if kept else None,
        "cut": cut,
    }


def render_contexts(
    events: pl.DataFrame,
    products: pl.DataFrame,
    budgets: Sequence[int],
    count_tokens: CountTokens,
    context_window: int | None,
    reserve_tokens: int,
) -> pl.DataFrame:
    """The Contexts frame: every customer in `events` at every budget (tokenizer called per customer in batches)."""
    catalog = products.select("product_id", "title", "brand", "category", "currency")
    rows: list[dict[str, Any]] = []
    for customer_events in events.partition_by("customer_id", maintain_order=True):
        ids = customer_events.get_column("product_id").drop_nulls().unique().implode()
        customer_products = catalog.filter(pl.col("product_id").is_in(ids))
        rows.extend(
            render_history(customer_events, customer_products, budgets, count_tokens, context_window, reserve_tokens)
        )
    return pl.DataFrame(rows, schema=CONTEXT_SCHEMA)


def answerable(questions: pl.DataFrame, contexts: pl.DataFrame) -> pl.DataFrame:
    """(question, budget) pairs whose evidence is in the rendered text: the questions' columns plus budget_tokens.

    A question is answerable at a budget when that context was rendered and either nothing was cut or
    every event from the question's evidence_start on was kept.
    """
    rendered = contexts.filter(pl.col("status") == "rendered").select(
        "customer_id", "budget_tokens", "cut", "first_kept_ts"
    )
    pairs = questions.join(rendered, on="customer_id", how="inner")
    kept = ~pl.col("cut") | (pl.col("evidence_start") >= pl.col("first_kept_ts"))
    return pairs.filter(kept.fill_null(False)).drop("cut", "first_kept_ts").sort("question_id", "budget_tokens")
