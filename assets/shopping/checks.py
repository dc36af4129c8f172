"""Blocking checks on every shopping artifact: Great Expectations suites plus the invariants that matter
(no catalog row lost, simulator rules, gold answers reproducible in the sandbox, budgets respected)."""

from dataclasses import replace

import dagster as dg
import polars as pl

from assets.quarantine import accounting, recorded_rows_in
from ops.shopping.personas import PersonaBounds
from ops.shopping.sandbox import gold_mismatches
from ops.shopping.suites import (
    catalog_quarantine_suite,
    contexts_suite,
    eval_suite,
    events_suite,
    personas_suite,
    product_catalog_suite,
    questions_suite,
    trajectory_violations,
)
from pipelines.partitions import customer_cohorts
from resources.inputs import InputFoldersResource
from resources.io_manager import latest_materialization
from resources.quality import QualityResource

SEARCH_COVERS_CATALOG = "every ranked product is in the catalog"
GOLD_REPRODUCED = "every gold answer is reproduced by its SQL inside the customer's sandbox"
BUDGETS_RESPECTED = "no rendered context exceeds its budget"
EVERY_QUESTION_ANSWERED = "every evaluated question has an agent row"


@dg.asset_check(
    asset="product_catalog",
    blocking=True,
    additional_ins={"product_catalog_quarantine": dg.AssetIn()},
    description="Normalized products are valid, and every catalog record is a product or a quarantine row.",
)
def product_catalog_valid(
    context: dg.AssetCheckExecutionContext,
    product_catalog: pl.DataFrame,
    product_catalog_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    rows_in = recorded_rows_in(context, "product_catalog")
    accounted, counts = accounting(rows_in, product_catalog.height, product_catalog_quarantine.height)
    max_price = float(product_catalog["price"].max() or 0.0)
    return quality.validate(product_catalog, "product_catalog", product_catalog_suite(max_price)).to_check_result(
        extra=accounted, metadata=counts
    )


@dg.asset_check(
    asset="product_catalog_quarantine",
    blocking=True,
    description="The shared quarantine table: every row names its record (source and record number), a known "
    "reason code and the detail.",
)
def product_catalog_quarantine_valid(
    product_catalog_quarantine: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    suite = catalog_quarantine_suite()
    return quality.validate(product_catalog_quarantine, "product_catalog_quarantine", suite).to_check_result()


@dg.asset_check(
    asset="product_search_results",
    blocking=True,
    additional_ins={"product_catalog": dg.AssetIn()},
    description="Every simulator query has ranked results, all of them products of the simulated shop.",
)
def product_search_results_valid(
    product_search_results: pl.DataFrame, product_catalog: pl.DataFrame, inputs: InputFoldersResource
) -> dg.AssetCheckResult:
    shop = set(inputs.shop_products(product_catalog)["product_id"])
    unknown = product_search_results.filter(~pl.col("product_id").is_in(list(shop))).height
    return dg.AssetCheckResult(
        passed=unknown == 0 and product_search_results.height > 0,
        metadata={SEARCH_COVERS_CATALOG: unknown == 0, "unknown_products": unknown},
    )


@dg.asset_check(
    asset="customer_personas",
    blocking=True,
    partitions_def=customer_cohorts,
    description="Personas inside the persona bounds (budgets in the shop's currency), one per customer id.",
)
def customer_personas_valid(
    context: dg.AssetCheckExecutionContext, customer_personas: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    event = latest_materialization(context.instance, dg.AssetKey("customer_personas"), context.partition_key)
    recorded = event.metadata.get("max_monthly_budget") if event is not None else None
    bounds = PersonaBounds()
    if recorded is not None:
        bounds = replace(bounds, monthly_budget=(bounds.monthly_budget[0], float(recorded.value)))
    suite = personas_suite(bounds)
    return quality.validate(customer_personas, "customer_personas", suite).to_check_result()


@dg.asset_check(
    asset="shopping_trajectories",
    blocking=True,
    partitions_def=customer_cohorts,
    additional_ins={"customer_personas": dg.AssetIn()},
    description="Event schema, and the simulator's rules recomputed from the events: ordered times, "
    "views before purchases, spend within budget, returns and reviews only of purchases.",
)
def shopping_trajectories_valid(
    shopping_trajectories: pl.DataFrame, customer_personas: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    violations = trajectory_violations(shopping_trajectories, customer_personas)
    return quality.validate(shopping_trajectories, "shopping_trajectories", events_suite()).to_check_result(
        extra={f"no {name}": count == 0 for name, count in violations.items()},
        metadata={f"violations: {name}": count for name, count in violations.items()},
    )


@dg.asset_check(
    asset="shoptrajqa_questions",
    blocking=True,
    partitions_def=customer_cohorts,
    additional_ins={"shopping_trajectories": dg.AssetIn(), "product_catalog": dg.AssetIn()},
    description="Question schema, and every gold answer recomputed by its SQL in the customer's read-only "
    "sandbox (the same path the agent's queries take).",
)
def shoptrajqa_questions_valid(
    shoptrajqa_questions: pl.DataFrame,
    shopping_trajectories: pl.DataFrame,
    product_catalog: pl.DataFrame,
    quality: QualityResource,
    inputs: InputFoldersResource,
) -> dg.AssetCheckResult:
    products = inputs.shop_products(product_catalog)
    mismatches = gold_mismatches(shoptrajqa_questions, shopping_trajectories, products)
    result = quality.validate(shoptrajqa_questions, "shoptrajqa_questions", questions_suite())
    return result.to_check_result(
        extra={GOLD_REPRODUCED: not mismatches},
        metadata={
            "questions": shoptrajqa_questions.height,
            "mismatches": len(mismatches),
            "examples": str(mismatches[:3]),
        },
    )


@dg.asset_check(
    asset="shoptrajqa_contexts",
    blocking=True,
    partitions_def=customer_cohorts,
    description="Rendered histories within their token budgets; skipped budgets carry a note.",
)
def shoptrajqa_contexts_valid(shoptrajqa_contexts: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    rendered = shoptrajqa_contexts.filter(pl.col("status") == "rendered")
    over = rendered.filter(pl.col("tokens") > pl.col("budget_tokens")).height
    return quality.validate(shoptrajqa_contexts, "shoptrajqa_contexts", contexts_suite()).to_check_result(
        extra={BUDGETS_RESPECTED: over == 0},
        metadata={"rendered": rendered.height, "over_budget": over},
    )


@dg.asset_check(
    asset="customer_agent_eval",
    blocking=True,
    partitions_def=customer_cohorts,
    description="Both methods scored with binary rewards, and the agent answered every evaluated question.",
)
def customer_agent_eval_valid(customer_agent_eval: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    agent_ids = set(customer_agent_eval.filter(pl.col("method") == "agent")["question_id"])
    all_ids = set(customer_agent_eval["question_id"])
    return quality.validate(customer_agent_eval, "customer_agent_eval", eval_suite()).to_check_result(
        extra={EVERY_QUESTION_ANSWERED: agent_ids == all_ids},
        metadata={"questions": len(all_ids)},
    )
