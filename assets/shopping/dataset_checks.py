"""Blocking checks on the shopping event log and the ShopTrajQA RL dataset: the monthly counts add up to
the events behind the DuckDB view; every question and every answerable budget becomes one RL prompt."""

import dagster as dg
import polars as pl

from ops.common.expectations import columns_exist, not_null, unique
from ops.shopping.evaluation import RL_SCHEMA
from ops.shopping.event_log import EVENT_TYPES
from ops.shopping.integrity import event_log_problems, rl_dataset_problems
from ops.shopping.rendering import answerable
from pipelines.partitions import customer_cohorts
from resources.io_manager import latest_materialization
from resources.quality import QualityResource

EVENTS_ADD_UP = "monthly event counts add up to the events in the view"
PROMPTS_COMPLETE = "one agent prompt per question, one long-context prompt per answerable budget"


@dg.asset_check(asset="shopping_event_log", blocking=True, description=f"{EVENTS_ADD_UP}; one row per month.")
def shopping_event_log_valid(
    context: dg.AssetCheckExecutionContext, shopping_event_log: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    event = latest_materialization(context.instance, dg.AssetKey("shopping_event_log"), None)
    in_view = event.metadata["events_in_view"].value if event is not None else -1
    problems = event_log_problems(shopping_event_log, in_view)
    suite = [*columns_exist(["month", *EVENT_TYPES, "spend", "refunds"]), unique("month"), not_null("month")]
    return quality.validate(shopping_event_log, "shopping_event_log", suite).to_check_result(
        extra={EVENTS_ADD_UP: not problems}, metadata={"problems": "; ".join(problems) or "none"}
    )


@dg.asset_check(
    asset="shoptrajqa_rl_dataset",
    blocking=True,
    partitions_def=customer_cohorts,
    additional_ins={"shoptrajqa_questions": dg.AssetIn(), "shoptrajqa_contexts": dg.AssetIn()},
    description=f"{PROMPTS_COMPLETE}; each with a prompt and a ground truth.",
)
def shoptrajqa_rl_dataset_valid(
    shoptrajqa_rl_dataset: pl.DataFrame,
    shoptrajqa_questions: pl.DataFrame,
    shoptrajqa_contexts: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    pairs = answerable(shoptrajqa_questions, shoptrajqa_contexts).height
    problems = rl_dataset_problems(shoptrajqa_rl_dataset, shoptrajqa_questions["question_id"].to_list(), pairs)
    # GE reads flat columns; the nested ones (prompt, reward_model, extra_info) are checked above
    flat = shoptrajqa_rl_dataset.select("data_source", "ability", "ground_truth")
    suite = [*columns_exist(flat.columns), not_null("data_source"), not_null("ground_truth")]
    return quality.validate(flat, "shoptrajqa_rl_dataset", suite).to_check_result(
        extra={PROMPTS_COMPLETE: not problems, "verl layout": shoptrajqa_rl_dataset.columns == list(RL_SCHEMA)},
        metadata={"problems": "; ".join(problems) or "none"},
    )
