"""The Customer Agent against the long-context baseline on ShopTrajQA, and the RL export of both."""

from contextlib import ExitStack

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table, png_metadata
from assets.shopping.catalog import GROUP
from ops.common.llm import UsageTotals
from ops.common.plots import grouped_bar_png
from ops.shopping.agent import AgentItem, run_agent
from ops.shopping.evaluation import (
    EVAL_SCHEMA,
    accuracy_by_budget,
    agent_rows,
    evaluation_questions,
    long_context_batch,
    long_context_rows,
    rl_rows,
)
from ops.shopping.rendering import answerable
from ops.shopping.sandbox import CustomerSandbox
from pipelines.partitions import customer_cohorts
from resources.inputs import InputFoldersResource
from resources.llm import LLMResource
from resources.scale import ScaleResource


class CustomerAgentEvalConfig(dg.Config):
    """Questions per cohort (0: the profile's size), the agent's step limit (0: the profile's) and
    the sandbox's limits on each model-written query."""

    questions: int = 0
    max_steps: int = 0
    query_time_limit_s: float = 5.0
    query_row_limit: int = 20
    seed: int = 0


@dg.asset(partitions_def=customer_cohorts, group_name=GROUP, code_version="1", kinds={"llm", "duckdb"}, pool="llm")
def customer_agent_eval(
    context: dg.AssetExecutionContext,
    config: CustomerAgentEvalConfig,
    shoptrajqa_questions: pl.DataFrame,
    shoptrajqa_contexts: pl.DataFrame,
    shopping_trajectories: pl.DataFrame,
    product_catalog: pl.DataFrame,
    llm: LLMResource,
    scale: ScaleResource,
    inputs: InputFoldersResource,
) -> dg.Output:
    """Each sampled question answered two ways by the LLM: (a) long context, with the rendered history
    at every budget where its evidence survived; (b) the Customer Agent, which queries that customer's
    own files through a read-only, sandboxed SQL tool (query, observe, answer) within a step limit.
    Exact-match reward after normalizing numbers, dates and names."""
    pairs = answerable(shoptrajqa_questions, shoptrajqa_contexts)
    chosen = evaluation_questions(pairs, config.questions or scale.shoptrajqa_eval_questions_per_cohort, config.seed)
    pairs = pairs.filter(pl.col("question_id").is_in(chosen))
    questions = shoptrajqa_questions.filter(pl.col("question_id").is_in(chosen))
    context.log.info(f"{len(chosen)} questions, {pairs.height} long-context prompts, model {llm.model_id}")

    batch = long_context_batch(pairs, shoptrajqa_contexts)
    results = llm.chat([request for _, request in batch])
    rows = long_context_rows([pair for pair, _ in batch], results)

    products = inputs.shop_products(product_catalog)
    by_id = {row["question_id"]: row for row in questions.iter_rows(named=True)}
    with ExitStack() as stack:
        sandboxes = {
            customer: stack.enter_context(
                CustomerSandbox(
                    shopping_trajectories.filter(pl.col("customer_id") == customer),
                    products,
                    row_limit=config.query_row_limit,
                    time_limit_s=config.query_time_limit_s,
                )
            )
            for customer in questions["customer_id"].unique().sort()
        }
        items = [
            AgentItem(row["question_id"], row["question"], sandboxes[row["customer_id"]]) for row in by_id.values()
        ]
        traces = run_agent(llm, items, max_steps=config.max_steps or scale.customer_agent_max_steps)
    rows += agent_rows(by_id, traces)
    evals = pl.DataFrame(rows, schema=EVAL_SCHEMA).sort("question_id", "method", "budget_tokens")

    table = accuracy_by_budget(evals)
    by_kind = accuracy_by_budget(evals, by=["kind"])
    outcomes = evals.group_by("method", "outcome").len().sort("method", "outcome")
    labels = [str(budget) for budget in table["budget_tokens"].to_list()]
    chart = grouped_bar_png(
        labels,
        {"long context": table["long_context_accuracy"].to_list(), "agent (SQL)": table["agent_accuracy"].to_list()},
        f"Accuracy per context budget ({llm.model_id})",
        "exact-match accuracy",
    )
    usage = UsageTotals.from_results(results).as_metadata()
    return frame_output(
        evals,
        {
            "model": llm.model_id,
            "questions": len(chosen),
            "accuracy_by_budget": markdown_table(table),
            "accuracy_by_kind": markdown_table(by_kind),
            "outcomes": markdown_table(outcomes),
            "accuracy_chart": png_metadata(chart, "long-context vs agent accuracy per budget"),
            "agent_queries": sum(len(trace.queries) for trace in traces),
            **{f"long_context_{name}": value for name, value in usage.items()},
        },
    )


@dg.asset(partitions_def=customer_cohorts, group_name=GROUP, code_version="1", kinds={"polars", "parquet"})
def shoptrajqa_rl_dataset(
    shoptrajqa_questions: pl.DataFrame, shoptrajqa_contexts: pl.DataFrame, customer_agent_eval: pl.DataFrame
) -> dg.Output:
    """Every question as an RL prompt in verl's dataset layout (also loadable by TRL): the agent mode
    (question only, the SQL tool over the customer's files) and the long-context mode at each budget
    where the evidence survived; rule reward = exact match (`ops.shopping.answers.shoptrajqa_reward`)."""
    pairs = answerable(shoptrajqa_questions, shoptrajqa_contexts)
    rows = rl_rows(shoptrajqa_questions, pairs, shoptrajqa_contexts, customer_agent_eval)
    modes = rows.group_by(pl.col("extra_info").struct.field("mode")).len()
    return frame_output(
        rows,
        {
            "modes": markdown_table(modes),
            "reward_function": "ops.shopping.answers.shoptrajqa_reward",
            "load_with": dg.MetadataValue.md(
                "verl: `data.train_files=<artifact_path>/data.parquet`; TRL: "
                "`datasets.load_dataset('parquet', data_files=...)` with `reward_funcs=[shoptrajqa_reward]`"
            ),
        },
    )
