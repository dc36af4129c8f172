"""BFCL v3 multi-turn tasks and the policy model played against BFCL's executable API classes, scored by execution."""

import time
from pathlib import Path

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table, png_metadata
from assets.quarantine import accounting, recorded_rows_in
from assets.tooluse.specs import GROUP
from ops.common.expectations import between, columns_exist, in_set, not_null, unique
from ops.common.plots import grouped_bar_png
from ops.common.quarantine import quarantine_suite
from ops.tooluse.multi_turn import MultiTurnError, load_multi_turn
from ops.tooluse.multi_turn_policy import play
from ops.tooluse.multi_turn_tables import (
    EPISODE_SCHEMA,
    TASK_REJECTIONS,
    TASK_SCHEMA,
    cheapest_tasks,
    episode_frame,
    split_tasks,
    task_from_row,
)
from resources.inputs import InputFoldersResource
from resources.llm import LLMResource
from resources.quality import QualityResource
from resources.scale import ScaleResource

SCORES_ADD_UP = "valid episodes + failed episodes == tasks played, and turns passed <= turns"


class MultiTurnTasksConfig(dg.Config):
    """BFCL multi-turn categories to read from the BFCL folder (`inputs.bfcl`)."""

    categories: list[str] = ["multi_turn_base"]


@dg.multi_asset(
    outs={
        "bfcl_multi_turn_tasks": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="BFCL v3 multi-turn tasks (user turns, API classes, initial state, ground-truth calls per "
            "turn, tool docs) whose own ground truth passes the execution scorer.",
        ),
        "bfcl_multi_turn_tasks_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Multi-turn tasks that cannot be scored (turn count mismatch, ground truth failing on the "
            "backends), with the reason.",
        ),
    },
)
def bfcl_multi_turn_tasks(config: MultiTurnTasksConfig, inputs: InputFoldersResource):
    """Read the multi-turn categories and keep the tasks the scorer can judge; rows in = kept + quarantined."""
    tasks = [task for category in config.categories for task in load_multi_turn(Path(inputs.bfcl), category)]
    result = split_tasks(tasks)
    yield frame_output(result.kept, result.metadata(), output_name="bfcl_multi_turn_tasks")
    yield frame_output(result.quarantined, result.metadata(), output_name="bfcl_multi_turn_tasks_quarantine")


@dg.asset_check(
    asset="bfcl_multi_turn_tasks",
    blocking=True,
    additional_ins={"bfcl_multi_turn_tasks_quarantine": dg.AssetIn()},
    description="Unique task ids, every task has turns and ground truth; every task read is kept or quarantined.",
)
def bfcl_multi_turn_tasks_valid(
    context: dg.AssetCheckExecutionContext,
    bfcl_multi_turn_tasks: pl.DataFrame,
    bfcl_multi_turn_tasks_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    rows_in = recorded_rows_in(context, "bfcl_multi_turn_tasks")
    accounted, counts = accounting(rows_in, bfcl_multi_turn_tasks.height, bfcl_multi_turn_tasks_quarantine.height)
    suite = [
        *columns_exist(list(TASK_SCHEMA)),
        unique("task_id"),
        not_null("ground_truth_json"),
        between("n_turns", 1, None),
    ]
    return quality.validate(bfcl_multi_turn_tasks, "bfcl_multi_turn_tasks", suite).to_check_result(
        extra=accounted, metadata=counts
    )


@dg.asset_check(
    asset="bfcl_multi_turn_tasks_quarantine",
    blocking=True,
    description="Quarantine rows name a task and carry a known reason code and a detail.",
)
def bfcl_multi_turn_tasks_quarantine_valid(
    bfcl_multi_turn_tasks_quarantine: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    suite = quarantine_suite(TASK_REJECTIONS)
    return quality.validate(
        bfcl_multi_turn_tasks_quarantine, "bfcl_multi_turn_tasks_quarantine", suite
    ).to_check_result()


class MultiTurnEvalConfig(dg.Config):
    """Tasks played, cheapest first (0: the profile's size), and replies per user turn / tokens per reply (0: the
    profile's)."""

    tasks: int = 0
    max_steps: int = 0
    max_tokens: int = 0


@dg.asset(group_name=GROUP, code_version="1", kinds={"llm", "polars"}, pool="llm")
def tool_multi_turn_eval(
    context: dg.AssetExecutionContext,
    config: MultiTurnEvalConfig,
    bfcl_multi_turn_tasks: pl.DataFrame,
    llm: LLMResource,
    scale: ScaleResource,
) -> dg.Output:
    """The profile's LLM plays BFCL multi-turn tasks turn by turn against the executable API classes; each
    episode is scored by execution as BFCL does (state and results per turn). Accuracy, turns passed and
    executions/s. With the local 135M model the figures are a pipeline check, not evidence of ability."""
    rows = cheapest_tasks(bfcl_multi_turn_tasks, config.tasks or scale.tool_multi_turn_tasks)
    tasks = [task_from_row(row) for row in rows.iter_rows(named=True)]
    context.log.info(f"policy {llm.model_id} plays {len(tasks)} multi-turn tasks")
    started = time.perf_counter()
    played = play(
        tasks,
        llm.chat,
        max_steps=config.max_steps or scale.tool_multi_turn_max_steps,
        max_tokens=config.max_tokens or scale.tool_multi_turn_max_tokens,
    )
    elapsed = time.perf_counter() - started
    episodes = episode_frame(played)
    errors = episodes.group_by("error").len().sort("len", descending=True)
    chart = grouped_bar_png(
        episodes["task_id"].to_list(),
        {"turns passed": episodes["turns_passed"].to_list(), "turns": episodes["turns"].to_list()},
        f"BFCL multi-turn episodes of {llm.model_id}",
        "turns",
    )
    executions = int(episodes["executions"].sum()) if episodes.height else 0
    return frame_output(
        episodes,
        {
            "model": llm.model_id,
            "accuracy": round(float(episodes["valid"].mean() or 0.0), 4),
            "turn_pass_rate": round(float(episodes["turns_passed"].sum()) / max(int(episodes["turns"].sum()), 1), 4),
            "executions": executions,
            "executions_per_s": round(executions / elapsed, 4) if elapsed > 0 else 0.0,
            "wall_s": round(elapsed, 4),
            "errors": markdown_table(errors),
            "turns_chart": png_metadata(chart, "turns passed per multi-turn episode"),
        },
    )


@dg.asset_check(
    asset="tool_multi_turn_eval",
    blocking=True,
    description="One row per task played, known error types, turns passed within the turns, counts add up.",
)
def tool_multi_turn_eval_valid(tool_multi_turn_eval: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    frame = tool_multi_turn_eval
    valid = int(frame["valid"].sum()) if frame.height else 0
    failed = frame.filter(~pl.col("valid")).height
    adds_up = valid + failed == frame.height and bool((frame["turns_passed"] <= frame["turns"]).all())
    suite = [
        *columns_exist(list(EPISODE_SCHEMA)),
        unique("task_id"),
        not_null("valid"),
        in_set("error", [e.value for e in MultiTurnError]),
        between("executions", 0, None),
    ]
    return quality.validate(frame, "tool_multi_turn_eval", suite).to_check_result(
        extra={SCORES_ADD_UP: adds_up}, metadata={"valid": valid, "failed": failed}
    )
