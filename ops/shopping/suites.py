"""Great Expectations suites of the shopping artifacts, declared as data, and the simulator's
invariants as a check that counts violations instead of trusting the simulator."""

from __future__ import annotations

import polars as pl

from ops.common.expectations import ExpectationSpec, between, columns_exist, in_set, not_null, unique
from ops.common.quarantine import QUARANTINE_SCHEMA as SHARED_QUARANTINE_SCHEMA
from ops.common.quarantine import quarantine_suite
from ops.shopping.agent import AgentOutcome
from ops.shopping.catalog import CATALOG_COLUMNS, QUARANTINE_COLUMNS, QUARANTINE_REASONS
from ops.shopping.evaluation import AGENT, EVAL_SCHEMA, LONG_CONTEXT
from ops.shopping.personas import PERSONA_SCHEMA, PersonaBounds
from ops.shopping.questions import ANSWER_TYPES, DIFFICULTIES, QUESTION_SCHEMA, TEMPLATES_BY_KIND
from ops.shopping.rendering import CONTEXT_SCHEMA
from ops.shopping.simulator import EVENT_SCHEMA, EVENT_TYPES


def product_catalog_suite(max_price: float) -> list[ExpectationSpec]:
    """Unique source-prefixed ids, non-empty titles, prices inside (0, max_price], a category path."""
    return [
        *columns_exist(list(CATALOG_COLUMNS)),
        not_null("product_id"),
        unique("product_id"),
        not_null("title"),
        not_null("brand"),
        not_null("top_category"),
        not_null("currency"),
        between("price", 0.01, max_price),
        between("rating", 1.0, 5.0),
    ]


def catalog_quarantine_suite() -> list[ExpectationSpec]:
    """The shared quarantine suite with the catalog's reason codes; every row names its source and record number."""
    extra = [column for column in QUARANTINE_COLUMNS if column not in SHARED_QUARANTINE_SCHEMA]
    return [*quarantine_suite(QUARANTINE_REASONS, extra), not_null("source"), not_null("record_number")]


def personas_suite(bounds: PersonaBounds) -> list[ExpectationSpec]:
    """Personas inside the bounds that the config was validated against."""
    return [
        *columns_exist(list(PERSONA_SCHEMA)),
        unique("customer_id"),
        between("monthly_budget", *bounds.monthly_budget),
        between("sessions_per_month", *bounds.sessions_per_month),
        between("price_sensitivity", *bounds.price_sensitivity),
        between("brand_loyalty", *bounds.brand_loyalty),
        between("span_months", *bounds.span_months),
    ]


def events_suite() -> list[ExpectationSpec]:
    """The event schema of the papers note: known event types, a time and a session on every event."""
    return [
        *columns_exist(list(EVENT_SCHEMA)),
        not_null("customer_id"),
        not_null("ts"),
        not_null("session_id"),
        in_set("event_type", list(EVENT_TYPES)),
        between("rating", 1, 5),
        between("quantity", 1, None),
    ]


def questions_suite() -> list[ExpectationSpec]:
    """Questions of known kinds, with an answer, its SQL and a difficulty."""
    return [
        *columns_exist(list(QUESTION_SCHEMA)),
        unique("question_id"),
        not_null("answer"),
        not_null("sql"),
        not_null("evidence_start"),
        in_set("kind", list(TEMPLATES_BY_KIND)),
        in_set("difficulty", list(DIFFICULTIES)),
        in_set("answer_type", list(ANSWER_TYPES)),
    ]


def contexts_suite() -> list[ExpectationSpec]:
    """One row per customer and budget, rendered or skipped with a note."""
    return [
        *columns_exist(list(CONTEXT_SCHEMA)),
        in_set("status", ["rendered", "skipped"]),
        not_null("note"),
        between("budget_tokens", 1, None),
    ]


def eval_suite() -> list[ExpectationSpec]:
    """Both methods, known outcomes, binary rewards."""
    return [
        *columns_exist(list(EVAL_SCHEMA)),
        in_set("method", [AGENT, LONG_CONTEXT]),
        in_set("outcome", [outcome.value for outcome in AgentOutcome]),
        in_set("reward", [0.0, 1.0]),
        not_null("gold"),
    ]


def trajectory_violations(events: pl.DataFrame, personas: pl.DataFrame) -> dict[str, int]:
    """Counts of broken simulator invariants (all zero for a valid log), computed from the events alone:
    timestamps strictly increasing per customer, no purchase before a view of that product, monthly
    spend within the persona's budget, returns only of purchased units, reviews only of purchases."""
    ordered = events.sort("customer_id", "event_index")
    by_customer = pl.col("customer_id")
    product = ["customer_id", "product_id"]
    first = ordered.group_by(product).agg(
        pl.col("ts").filter(pl.col("event_type") == "view").min().alias("first_view"),
        pl.col("ts").filter(pl.col("event_type") == "purchase").min().alias("first_purchase"),
        pl.col("ts").filter(pl.col("event_type").is_in(["return", "review"])).min().alias("first_after_sale"),
        pl.col("quantity").filter(pl.col("event_type") == "purchase").sum().alias("bought"),
        pl.col("quantity").filter(pl.col("event_type") == "return").sum().alias("returned"),
    )
    spend = (
        ordered.filter(pl.col("event_type") == "purchase")
        .group_by("customer_id", pl.col("ts").dt.strftime("%Y-%m").alias("month"))
        .agg((pl.col("price") * pl.col("quantity")).sum().alias("spend"))
        .join(personas.select("customer_id", "monthly_budget"), on="customer_id", how="left")
    )
    return {
        "timestamps not increasing": int(
            ordered.select((pl.col("ts").diff().over(by_customer) <= pl.duration(microseconds=0)).sum()).item() or 0
        ),
        "purchase without an earlier view": int(
            first.filter(
                pl.col("first_purchase").is_not_null()
                & (pl.col("first_view").is_null() | (pl.col("first_view") > pl.col("first_purchase")))
            ).height
        ),
        "monthly spend over budget": int(
            spend.filter(
                pl.col("monthly_budget").is_null() | (pl.col("spend") > pl.col("monthly_budget") + 1e-6)
            ).height
        ),
        "returned more than bought": int(first.filter(pl.col("returned") > pl.col("bought")).height),
        "return or review before a purchase": int(
            first.filter(
                pl.col("first_after_sale").is_not_null()
                & (pl.col("first_purchase").is_null() | (pl.col("first_after_sale") < pl.col("first_purchase")))
            ).height
        ),
        "events of unknown customers": int(
            ordered.filter(~pl.col("customer_id").is_in(personas["customer_id"].implode())).height
        ),
    }
