"""A policy model run over BFCL categories and every augmentation type, and the RL environment export."""

import json

import dagster as dg
import polars as pl

from assets.models import model_result
from assets.outputs import frame_output, headline_metadata, markdown_table, png_metadata
from assets.tooluse.specs import GROUP
from ops.common.llm import UsageTotals
from ops.common.plots import grouped_bar_png
from ops.rubrics.grading import grade
from ops.tooluse.policy_eval import (
    accuracy_table,
    judge_items,
    policy_requests,
    rl_environment_rows,
    score_policy,
)
from ops.tooluse.sampling import evaluation_sample
from resources.artifact_store import ArtifactStoreResource
from resources.llm import LLMResource
from resources.scale import ScaleResource

RL_ENVIRONMENT_FILE = "environment.jsonl"


class ToolPolicyEvalConfig(dg.Config):
    """Examples per BFCL category and per augmentation type (0: the profile's size) and the seed."""

    per_group: int = 0
    seed: int = 0


@dg.asset(group_name=GROUP, code_version="1", kinds={"llm", "polars"}, pool="llm")
def tool_policy_eval(
    context: dg.AssetExecutionContext,
    config: ToolPolicyEvalConfig,
    base_tool_trajectories: pl.DataFrame,
    augmented_tool_trajectories: pl.DataFrame,
    llm: LLMResource,
    scale: ScaleResource,
) -> dg.Output:
    """The model (LLM resource) answers a sample of every BFCL category and every augmentation type;
    calls are scored by the BFCL-style AST reward, special behaviours (error detection, asking for
    clarification) by the rubric judge. Accuracy per category and per augmentation."""
    sample = evaluation_sample(
        base_tool_trajectories, augmented_tool_trajectories, config.per_group or scale.tool_eval_per_group, config.seed
    )
    context.log.info(f"policy {llm.model_id} on {sample.height} examples")
    results = llm.chat(policy_requests(sample, max_tokens=scale.tool_eval_max_tokens))
    grades = grade(
        llm,
        judge_items(sample, results, model=llm.model_id),
        explanation_max_chars=scale.judge_explanation_max_chars or None,
        max_tokens=256 if scale.judge_explanation_max_chars else 512,
    )
    scored = score_policy(sample, results, grades)
    table = accuracy_table(scored)
    groups = table.filter(pl.col("dimension") != "all")
    chart = grouped_bar_png(
        [f"{row['dimension'][:3]}:{row['group']}" for row in groups.iter_rows(named=True)],
        {"accuracy": groups["accuracy"].to_list()},
        f"Tool-use accuracy of {llm.model_id}",
        "accuracy",
        ylim=(0, 1),
    )
    outcomes = scored.group_by("outcome").len().sort("len", descending=True)
    return frame_output(
        scored,
        {
            "model": llm.model_id,
            **headline_metadata({_headline_name(row): row["accuracy"] for row in table.iter_rows(named=True)}),
            "accuracy": markdown_table(table),
            "outcomes": markdown_table(outcomes),
            "accuracy_chart": png_metadata(chart, "accuracy per BFCL category and augmentation"),
            **{f"policy_{name}": value for name, value in UsageTotals.from_results(results).as_metadata().items()},
        },
    )


def _headline_name(row: dict) -> str:
    """`accuracy_overall`, `accuracy_category_simple`, `accuracy_augmentation_format_xml`, ..."""
    return "accuracy_overall" if row["dimension"] == "all" else f"accuracy_{row['dimension']}_{row['group']}"


@dg.asset(group_name=GROUP, code_version="1", kinds={"json"})
def tool_rl_environment(
    context: dg.AssetExecutionContext,
    base_tool_trajectories: pl.DataFrame,
    augmented_tool_trajectories: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """The environment for RL trainers as JSONL, one line per example (base and augmented): prompt
    messages, tools, oracle and the reward spec (`ops.tooluse.reward.tool_reward`, or the rubric judge
    for special behaviours), ready for TRL's GRPOTrainer or verl."""
    trajectories = pl.concat([base_tool_trajectories, augmented_tool_trajectories], how="diagonal_relaxed")
    lines = "".join(
        json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rl_environment_rows(trajectories)
    )
    files = {RL_ENVIRONMENT_FILE: lines.encode("utf-8")}
    metadata = {"dagster/row_count": trajectories.height, "bytes": len(files[RL_ENVIRONMENT_FILE])}
    return model_result(context, artifact_store.get_store(), files, metadata)
