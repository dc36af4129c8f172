"""Blocking checks of CoMem's artifacts: episode tables, scored summaries, the memory model and the report."""

import io
import math

import dagster as dg
import polars as pl

from assets.agents.comem import EVALUATION_FILE, TRAINING_SCHEMA
from assets.models import load_model_files
from ops.agents.comem.episodes import CRASHED, EPISODE_SCHEMA, STEP_SCHEMA
from ops.agents.comem.integrity import episode_invariants, staleness_holds
from ops.common.expectations import between, columns_exist, in_set, not_null
from ops.tooluse.multi_turn import MultiTurnError
from resources.artifact_store import ArtifactStoreResource
from resources.quality import QualityResource
from training.rl.integrity import stored_adapter_problems

STALENESS = "every action saw a summary at most t-k steps old (none under full history)"
ADAPTER_SOUND = "the adapter loads with finite weights; one finite metrics row per configured step"
EVAL_COMPLETE = "every scored summary evaluated once for the trained model; rewards finite in [0, 1]"
REPORT_FINITE = "every condition reported once; latencies and ratios finite and > 0"


@dg.asset_check(
    asset="agent_episodes",
    blocking=True,
    additional_ins={"agent_episode_steps": dg.AssetIn()},
    description="Schema, known outcomes; one episode per (condition, task); steps, timings and tokens add up.",
)
def agent_episodes_valid(
    agent_episodes: pl.DataFrame, agent_episode_steps: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    suite = [
        *columns_exist(list(EPISODE_SCHEMA)),
        not_null("valid"),
        not_null("condition"),
        in_set("error", [*(e.value for e in MultiTurnError), CRASHED]),
        between("wall_s", 0, None),
        between("turns_passed", 0, None),
    ]
    return quality.validate(agent_episodes, "agent_episodes", suite).to_check_result(
        extra=episode_invariants(agent_episodes, agent_episode_steps)
    )


@dg.asset_check(asset="agent_episode_steps", blocking=True, description=f"Schema, steps numbered from 1; {STALENESS}.")
def agent_episode_steps_valid(agent_episode_steps: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [*columns_exist(list(STEP_SCHEMA)), between("step", 1, None), between("summary_index", 0, None)]
    return quality.validate(agent_episode_steps, "agent_episode_steps", suite).to_check_result(
        extra={STALENESS: staleness_holds(agent_episode_steps)}
    )


@dg.asset_check(
    asset="memory_training_data",
    blocking=True,
    description="Schema, one row per (condition, task, summary), prompted rewards in [0, 1], at least one row.",
)
def memory_training_data_valid(memory_training_data: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    frame = memory_training_data
    keys = frame.select("condition", "task_id", "summary_index").unique().height
    suite = [*columns_exist(list(TRAINING_SCHEMA)), not_null("prompt"), between("prompted_reward", 0.0, 1.0)]
    return quality.validate(frame, "memory_training_data", suite).to_check_result(
        extra={"one row per summary": keys == frame.height, "at least one summary to train on": frame.height > 0}
    )


@dg.asset_check(asset="memory_model", blocking=True, description=f"{ADAPTER_SOUND}; {EVAL_COMPLETE}.")
def memory_model_sound(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource
) -> dg.AssetCheckResult:
    files = load_model_files(context.instance, artifact_store.get_store(), "memory_model")
    problems = stored_adapter_problems(files)
    evaluation = pl.read_parquet(io.BytesIO(files[EVALUATION_FILE]))
    rewards = evaluation["trained_reward"].to_list() + evaluation["prompted_reward"].to_list()
    complete = evaluation.height > 0 and all(math.isfinite(r) and 0.0 <= r <= 1.0 for r in rewards)
    return dg.AssetCheckResult(
        passed=not problems and complete,
        metadata={ADAPTER_SOUND: not problems, EVAL_COMPLETE: complete, "problems": "; ".join(problems) or "none"},
    )


@dg.asset_check(asset="comem_report", blocking=True, description=f"{REPORT_FINITE}.")
def comem_report_valid(comem_report: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    values = comem_report.select("latency_s", "latency_ratio_full").to_numpy().ravel().tolist()
    finite = all(v is not None and math.isfinite(v) and v > 0 for v in values)
    suite = [*columns_exist(["condition", "k", "latency_s", "turn_pass_rate", "pareto"]), between("success", 0, 1)]
    return quality.validate(comem_report, "comem_report", suite).to_check_result(
        extra={REPORT_FINITE: finite and comem_report["condition"].n_unique() == comem_report.height}
    )
