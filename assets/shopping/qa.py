"""ShopTrajQA: questions with SQL-computed gold answers, and each history rendered at token budgets."""

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table
from assets.shopping.catalog import GROUP
from ops.shopping.questions import generate_questions
from ops.shopping.rendering import answerable, render_contexts
from pipelines.partitions import customer_cohorts
from resources.inputs import InputFoldersResource
from resources.llm import LLMResource
from resources.scale import ScaleResource

# Tokens kept free around a rendered history: the instructions, the question and the answer.
RESERVE_TOKENS = 384


class ShopTrajQAQuestionsConfig(dg.Config):
    """How many questions per customer (0: the profile's `ScaleResource` size) and the sampling seed."""

    per_customer: int = 0
    seed: int = 0


@dg.asset(partitions_def=customer_cohorts, group_name=GROUP, code_version="1", kinds={"polars", "duckdb"})
def shoptrajqa_questions(
    config: ShopTrajQAQuestionsConfig,
    shopping_trajectories: pl.DataFrame,
    product_catalog: pl.DataFrame,
    scale: ScaleResource,
    inputs: InputFoldersResource,
) -> dg.Output:
    """Questions about each customer's own history (counts and sums over periods, first/last/most
    frequent, period comparisons, preference drift, catalog joins, "none" answers), each with the
    DuckDB SQL that computes its gold answer over that customer's files, and a difficulty label.
    Tied rankings are never asked."""
    per_customer = config.per_customer or scale.shoptrajqa_questions_per_customer
    products = inputs.shop_products(product_catalog)
    questions = generate_questions(shopping_trajectories, products, per_customer, config.seed)
    mix = questions.group_by("kind", "difficulty").len().sort("difficulty", "kind")
    return frame_output(
        questions,
        {
            "customers": shopping_trajectories["customer_id"].n_unique(),
            "questions_by_kind": markdown_table(mix),
            "none_answers": int((questions["answer_type"] == "none").sum()),
        },
    )


@dg.asset(partitions_def=customer_cohorts, group_name=GROUP, code_version="1", kinds={"polars"})
def shoptrajqa_contexts(
    context: dg.AssetExecutionContext,
    shopping_trajectories: pl.DataFrame,
    shoptrajqa_questions: pl.DataFrame,
    product_catalog: pl.DataFrame,
    llm: LLMResource,
    scale: ScaleResource,
    inputs: InputFoldersResource,
) -> dg.Output:
    """Each customer's history rendered as text at every token budget, counted with the tokenizer of
    the model under test: the most recent events are kept when the budget cuts, the cut is recorded,
    and a budget beyond the model's context window is skipped with a note, never truncated."""
    window = llm.context_window()
    budgets = list(scale.shoptrajqa_budgets)
    context.log.info(f"rendering histories at budgets {budgets} for {llm.model_id} (context window {window})")
    contexts = render_contexts(
        shopping_trajectories,
        inputs.shop_products(product_catalog),
        budgets,
        llm.count_tokens,
        window,
        RESERVE_TOKENS,
    )
    pairs = answerable(shoptrajqa_questions, contexts)
    per_budget = (
        contexts.group_by("budget_tokens", "status")
        .agg(
            pl.len().alias("customers"),
            pl.col("tokens").mean().round(0).alias("mean_tokens"),
            pl.col("cut").sum().alias("cut"),
            pl.col("events_kept").mean().round(1).alias("mean_events_kept"),
        )
        .join(
            pairs.group_by("budget_tokens").len().rename({"len": "answerable_questions"}),
            on="budget_tokens",
            how="left",
        )
        .sort("budget_tokens")
    )
    notes = contexts.filter(pl.col("status") == "skipped")["note"].unique().to_list()
    return frame_output(
        contexts,
        {
            "model": llm.model_id,
            "context_window": window,
            "budgets": markdown_table(per_budget),
            "skipped_notes": dg.MetadataValue.md("\n".join(f"- {note}" for note in notes) or "_none_"),
        },
    )
