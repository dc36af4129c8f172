"""CoMem (paper 6): BFCL multi-turn episodes under memory conditions (full history, synchronous summary,
k-step-off asynchronous memory), memory summaries scored by downstream success, a reward-trained memory model
and the latency/success report. Two single-threaded llama.cpp processes (agent, memory) run concurrently."""

import io
import json
import os
from pathlib import Path

import dagster as dg
import polars as pl

from assets.models import load_model_files, model_result
from assets.outputs import frame_output, markdown_table, png_metadata
from assets.training_metadata import policy_config, training_metadata
from ops.agents.comem.bfcl_env import PlaySettings, opening_prompt, play_task
from ops.agents.comem.engine import ModelProcess, warm_up
from ops.agents.comem.episodes import EpisodeStore, episode_frame, play_all, step_frame
from ops.agents.comem.report import condition_summary, pareto_png, queue_params, queue_table, staleness_series
from ops.agents.comem.scheduler import Condition
from ops.agents.comem.usefulness import reward_function, summary_reward, training_rows
from ops.common.packaged_models import smollm2_model_path
from ops.common.plots import line_png
from ops.common.versioning import combine_versions, frame_version
from ops.tooluse.multi_turn import MultiTurnTask
from ops.tooluse.multi_turn_tables import task_from_row
from resources.artifact_store import ArtifactStoreResource
from resources.scale import ScaleResource
from training.rl.card import adapter_files
from training.rl.config import GRPOSettings
from training.rl.policy import generate, load_policy
from training.rl.trainer import train_grpo

GROUP = "agents"
PIPELINE_CHECK = "local SmolLM2-135M: success figures are a pipeline check, not evidence; latencies are measured"
EVALUATION_FILE = "evaluation.parquet"
MIN_TURNS = 2


def _work(asset: str, *inputs: str) -> Path:
    """A folder per distinct input under `$ASSAY_HOME/work/<asset>` (a killed run resumes from it)."""
    return Path(os.environ.get("ASSAY_HOME", ".assay")) / "work" / asset / combine_versions(inputs)[:16]


def play_settings(scale: ScaleResource) -> PlaySettings:
    """The profile's episode sizes."""
    return PlaySettings(
        scale.comem_max_steps, scale.comem_agent_max_tokens, scale.comem_memory_max_tokens, scale.comem_memory_timeout_s
    )


def comem_tasks(frame: pl.DataFrame, limit: int) -> dict[str, MultiTurnTask]:
    """The shortest tasks with a history to summarize first (2+ user turns; fewest, then id), `limit` of them
    (0 = all)."""
    rows = frame.filter(pl.col("n_turns") >= MIN_TURNS).sort("n_turns", "task_id")
    return {row["task_id"]: task_from_row(row) for row in (rows.head(limit) if limit else rows).iter_rows(named=True)}


def _model(configured: str) -> Path:
    return Path(configured) if configured else smollm2_model_path()


class AgentEpisodesConfig(dg.Config):
    """Memory conditions played (`full`, `k0` = synchronous, `k<K>` = K steps off; empty = the profile's
    `comem_conditions`), tasks (0 = the profile's) and the GGUF of both agent and memory model ("" = the packaged
    SmolLM2-135M)."""

    conditions: list[str] = []
    tasks: int = 0
    model_path: str = ""


@dg.multi_asset(
    outs={
        "agent_episodes": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"llm", "polars"},
            description="One BFCL multi-turn episode per (memory condition, task): execution verdict, end-to-end "
            "and critical-path seconds, agent and memory tokens (memory on/off the critical path), memory faults, "
            "the replies and summaries.",
        ),
        "agent_episode_steps": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars"},
            description="One row per agent action: the summary it saw (staleness), wall-clock and critical-path "
            "seconds, time waited for memory, tokens of agent and memory model.",
        ),
    },
    pool="llm",
)
def agent_episodes(
    context: dg.AssetExecutionContext,
    config: AgentEpisodesConfig,
    bfcl_multi_turn_tasks: pl.DataFrame,
    scale: ScaleResource,
):
    """Play every task under every memory condition with an agent process and a memory process (llama.cpp,
    one thread each, so summaries overlap the agent for real); finished episodes are kept on disk and a
    killed run resumes where it stopped."""
    tasks = comem_tasks(bfcl_multi_turn_tasks, config.tasks or scale.comem_tasks)
    conditions = [Condition.parse(name) for name in config.conditions or scale.comem_conditions]
    settings, model = play_settings(scale), _model(config.model_path)
    chosen = bfcl_multi_turn_tasks.filter(pl.col("task_id").is_in(list(tasks)))
    store = EpisodeStore(
        _work("agent_episodes", frame_version(chosen), config.model_dump_json(), repr(settings), model.name)
    )
    with ModelProcess(model) as agent, ModelProcess(model) as memory:
        warm_up([agent, memory])
        records, resumed = play_all(
            list(tasks.values()),
            conditions,
            lambda t, c: play_task(t, c, agent.chat, memory.submit, settings),
            store,
            prepare=lambda task: warm_up([agent], opening_prompt(task)),
        )
    episodes, steps = episode_frame(records), step_frame(records)
    table = condition_summary(episodes)
    context.log.info(f"{len(records)} episodes ({resumed} resumed) of {len(tasks)} tasks; {PIPELINE_CHECK}")
    metadata = {
        "model": model.name,
        "resumed": resumed,
        "note": PIPELINE_CHECK,
        "by_condition": markdown_table(table.select(pl.exclude("pareto")).with_columns(pl.selectors.float().round(4))),
        **{f"latency_s_{r['condition']}": round(r["latency_s"], 4) for r in table.iter_rows(named=True)},
        **{f"turn_pass_rate_{r['condition']}": round(r["turn_pass_rate"], 4) for r in table.iter_rows(named=True)},
        "memory_faults": int(table["memory_faults"].sum()),
    }
    yield frame_output(episodes, metadata, output_name="agent_episodes")
    yield frame_output(steps, {"actions": steps.height}, output_name="agent_episode_steps")


class MemoryTrainingDataConfig(dg.Config):
    """The GGUF of the agent that acts from each summary ("" = the packaged SmolLM2-135M)."""

    model_path: str = ""


@dg.asset(group_name=GROUP, code_version="1", kinds={"llm", "polars"}, pool="llm")
def memory_training_data(
    context: dg.AssetExecutionContext,
    config: MemoryTrainingDataConfig,
    agent_episodes: pl.DataFrame,
    bfcl_multi_turn_tasks: pl.DataFrame,
    scale: ScaleResource,
) -> dg.Output:
    """Every summary a (synchronous or k-step-off) episode acted on: the memory prompt that produced it, its
    decision point and the prompted summary's downstream reward (the agent plays on from it; BFCL turn pass
    share and remaining-call recall)."""
    tasks = comem_tasks(bfcl_multi_turn_tasks, 0)
    settings = play_settings(scale)
    rows = training_rows(agent_episodes.sort("condition", "task_id").to_dicts(), tasks, settings.max_steps)
    rows = rows[: scale.comem_training_rows] if scale.comem_training_rows else rows
    with ModelProcess(_model(config.model_path)) as agent:
        for row in rows:
            replies = json.loads(row["replies_json"])
            task = tasks[row["task_id"]]
            reward = summary_reward(task, replies, row["summary_index"], row["prompted_summary"], agent.chat, settings)
            row.update(prompt=json.dumps(row["prompt"]), prompted_reward=reward)
    frame = pl.DataFrame(rows, schema=TRAINING_SCHEMA)
    context.log.info(f"{frame.height} summaries scored; {PIPELINE_CHECK}")
    return frame_output(
        frame,
        {"rows": frame.height, "prompted_reward_mean": round(float(frame["prompted_reward"].mean() or 0.0), 4)},
    )


TRAINING_SCHEMA = {
    "task_id": pl.Utf8,
    "condition": pl.Utf8,
    "summary_index": pl.Int64,
    "prompt": pl.Utf8,
    "replies_json": pl.Utf8,
    "prompted_summary": pl.Utf8,
    "prompted_reward": pl.Float64,
}


class MemoryModelConfig(dg.Config):
    """Learning rate, seed and the agent's GGUF used by the reward ("" = the packaged SmolLM2-135M)."""

    learning_rate: float = 1e-5
    seed: int = 0
    agent_model_path: str = ""


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "safetensors"}, pool="gpu")
def memory_model(
    context: dg.AssetExecutionContext,
    config: MemoryModelConfig,
    memory_training_data: pl.DataFrame,
    bfcl_multi_turn_tasks: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """A LoRA memory model trained with the shared trainer (GRPO) on memory usefulness: each sampled summary is
    rewarded by the agent's downstream success when acting from it. Its greedy summaries are scored the same way
    and compared with the prompted memory model's."""
    tasks = comem_tasks(bfcl_multi_turn_tasks, 0)
    settings = play_settings(scale)
    rows = [{**row, "prompt": json.loads(row["prompt"])} for row in memory_training_data.to_dicts()]
    grpo = GRPOSettings(
        policy=policy_config(scale),
        max_steps=scale.comem_grpo_steps,
        prompts_per_step=min(2, len(rows)),
        num_generations=scale.comem_generations,
        max_completion_length=settings.memory_max_tokens,
        learning_rate=config.learning_rate,
        seed=config.seed,
    )
    folder = _work("memory_model", frame_version(memory_training_data), config.model_dump_json(), repr(grpo))
    with ModelProcess(_model(config.agent_model_path)) as agent:
        reward = reward_function(tasks, agent.chat, settings)
        result = train_grpo(
            rows,
            [reward],
            grpo,
            folder,
            reward_columns=("task_id", "summary_index", "replies_json"),
            log=context.log.info,
        )
        trained = generate(
            load_policy(grpo.policy, result.adapter_dir), [r["prompt"] for r in rows], settings.memory_max_tokens
        )
        scores = [
            summary_reward(
                tasks[r["task_id"]], json.loads(r["replies_json"]), r["summary_index"], s, agent.chat, settings
            )
            for r, s in zip(rows, trained, strict=True)
        ]
    evaluation = memory_training_data.select("task_id", "condition", "summary_index", "prompted_reward").with_columns(
        trained_summary=pl.Series(trained, dtype=pl.Utf8), trained_reward=pl.Series(scores, dtype=pl.Float64)
    )
    buffer = io.BytesIO()
    evaluation.write_parquet(buffer)
    files = adapter_files(result, {"reward": "ops.agents.comem.usefulness.reward_function", **config.model_dump()})
    files[EVALUATION_FILE] = buffer.getvalue()
    return model_result(
        context,
        artifact_store.get_store(),
        files,
        {
            **training_metadata(result, "memory model GRPO"),
            "prompted_reward_mean": round(float(evaluation["prompted_reward"].mean() or 0.0), 4),
            "trained_reward_mean": round(float(evaluation["trained_reward"].mean() or 0.0), 4),
            "evaluated_rows": evaluation.height,
            "note": PIPELINE_CHECK,
        },
    )


class ComemReportConfig(dg.Config):
    """Concurrent agents and servers of the queueing SIMULATION, and the actions per simulated episode (0 = the
    longest measured episode)."""

    agents: list[int] = [1, 2, 4, 8, 16]
    servers: int = 2
    steps: int = 0


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars"}, deps=["memory_model"])
def comem_report(
    context: dg.AssetExecutionContext,
    config: ComemReportConfig,
    agent_episodes: pl.DataFrame,
    agent_episode_steps: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
) -> dg.Output:
    """Latency against success per memory condition (Pareto plot), success against staleness k, prompted vs
    reward-trained memory, and a queueing SIMULATION (parameters = measured service times) projecting the
    latency gain of k-step-off memory to several concurrent agents sharing servers."""
    table = condition_summary(agent_episodes)
    steps = config.steps or int(agent_episodes["steps"].max() or 1)
    simulation = queue_table(queue_params(agent_episodes, agent_episode_steps), config.agents, config.servers, steps)
    evaluation = pl.read_parquet(
        io.BytesIO(load_model_files(context.instance, artifact_store.get_store(), "memory_model")[EVALUATION_FILE])
    )
    series = staleness_series(table)
    ks = [str(k) for k in table.filter(pl.col("k") >= 0).sort("k")["k"].to_list()]
    report = table.with_columns(pl.selectors.float().round(4))
    return frame_output(
        report,
        {
            "note": PIPELINE_CHECK,
            "by_condition": markdown_table(report),
            "pareto_chart": png_metadata(pareto_png(table, "latency vs turn pass rate"), "Pareto: latency vs success"),
            "staleness_chart": png_metadata(
                line_png(ks, series, "success vs staleness k (k=0 synchronous)", "rate", (0, 1)), "success vs k"
            ),
            "simulation": markdown_table(simulation.with_columns(pl.selectors.float().round(4))),
            "simulation_note": "SIMULATION (queueing model), not a measurement: service times drawn from the "
            "measured agent and memory seconds of these episodes",
            **{
                f"latency_ratio_full_{r['condition']}": round(r["latency_ratio_full"], 4)
                for r in table.iter_rows(named=True)
                if r["latency_ratio_full"] is not None
            },
            "prompted_memory_reward": round(float(evaluation["prompted_reward"].mean() or 0.0), 4),
            "trained_memory_reward": round(float(evaluation["trained_reward"].mean() or 0.0), 4),
        },
    )
