"""RESD (paper 7): the student's failed rollouts on verifiable tasks (tool use, ShopTrajQA), reflections on
them, a versioned playbook of lessons, self-distillation from the playbook-prompted self-teacher, and base vs
playbook vs RESD vs GRPO.

One materialization of the chain is one round. The round loop is a cycle across materializations (the next
round's rollouts read the playbook and the student adapter this round wrote), which a DAG cannot draw: those
two reads go through the latest recorded versions and are named in the metadata.
"""

import json
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl

from assets.models import load_model_files, load_model_version, model_result
from assets.outputs import frame_output, headline_metadata, markdown_table, png_metadata
from assets.tooluse.evaluation import RL_ENVIRONMENT_FILE
from assets.training_metadata import policy_config, training_metadata, work_dir
from ops.agents.resd.evaluation import EVAL_ARMS, grpo_steps, internalization, success_summary
from ops.agents.resd.playbook import Playbook, from_json, ranked, to_json
from ops.agents.resd.reflections import parse_reflections, reflection_requests
from ops.agents.resd.rollouts import (
    SHOPTRAJQA,
    STUDENT,
    TOOLUSE,
    WITH_PLAYBOOK,
    failed_student_rollouts,
    rollout_round,
    score_rollouts,
    shoptrajqa_tasks,
    split_family,
    task_reward,
    tooluse_tasks,
)
from ops.agents.resd.teacher import distillation_rows
from ops.agents.resd.updates import add_deltas, tag_deltas, update_playbook
from ops.common.plots import grouped_bar_png
from pipelines.partitions import customer_cohorts
from resources.artifact_store import ArtifactStore, ArtifactStoreResource
from resources.embedder import EmbedderResource
from resources.io_manager import latest_materialization, materialized_partition_files
from resources.llm import LLMResource
from resources.scale import ScaleResource
from training.rl.card import TRAINING_RECORD, adapter_files
from training.rl.config import GRPOSettings, PolicyConfig
from training.rl.policy import ADAPTER_WEIGHTS, generate, load_policy, with_adapter, write_adapter
from training.rl.self_distillation import SelfDistillationSettings, teacher_budget, train_self_distillation
from training.rl.trainer import fingerprint, train_grpo

GROUP = "agents"
ENVIRONMENT = "tool_rl_environment"
SHOP_DATASET = "shoptrajqa_rl_dataset"
PLAYBOOK_FILE = "playbook.json"
LINEAGE_FILE = "lineage.json"
PLAYBOOK_TABLE = "playbook.md"
CONTEXTS_FILE = "contexts.json"
SKIPPED_FILE = "skipped.json"
NOTE = "SmolLM2-135M locally: success rates are a pipeline check, not evidence about RESD"


def environment_lines(context: dg.AssetExecutionContext, store: ArtifactStore) -> list[dict]:
    """The RL environment lines of the tool-use domain (prompt, oracle, reward spec)."""
    payload = load_model_files(context.instance, store, ENVIRONMENT)[RL_ENVIRONMENT_FILE]
    return [json.loads(line) for line in payload.decode().splitlines() if line.strip()]


def latest_playbook(instance: dg.DagsterInstance, store: ArtifactStore) -> tuple[str, Playbook, int]:
    """(version, playbook, round) of the latest recorded playbook; ("", empty, 0) before the first round."""
    if latest_materialization(instance, dg.AssetKey("playbook"), None) is None:
        return "", Playbook(), 0
    version, files = load_model_version(instance, store, "playbook")
    return version, from_json(files[PLAYBOOK_FILE].decode()), int(json.loads(files[LINEAGE_FILE])["round"])


def student_adapter(instance: dg.DagsterInstance, store: ArtifactStore) -> tuple[str, dict[str, bytes] | None]:
    """The latest self-distilled adapter (the student of the next round), or the base before any."""
    if latest_materialization(instance, dg.AssetKey("self_distillation"), None) is None:
        return "base", None
    version, files = load_model_version(instance, store, "self_distillation")
    return (f"self_distillation {version}", files) if ADAPTER_WEIGHTS in files else ("base", None)


def shop_dataset(instance: dg.DagsterInstance) -> pl.DataFrame:
    """Every materialized cohort of `shoptrajqa_rl_dataset` (the ShopTrajQA family's tasks)."""
    files, _ = materialized_partition_files(instance, dg.AssetKey(SHOP_DATASET), customer_cohorts.get_partition_keys())
    if not files:
        raise dg.Failure(
            f"RESD family {SHOPTRAJQA!r}: no cohort of {SHOP_DATASET} is materialized; run the `shopping` job "
            f"first, or leave the family out (ASSAY_RESD_TASK_FAMILIES={TOOLUSE})"
        )
    return pl.concat([pl.read_parquet(path) for path in files], how="vertical_relaxed")


def _tasks(context: dg.AssetExecutionContext, store: ArtifactStore, scale: ScaleResource) -> tuple[list, list]:
    """Training and held-out tasks of every configured family (`resd_task_families`), per family: the shortest
    `resd_train_tasks` and the next `resd_eval_tasks` (tool use within `rl_max_prompt_chars`; ShopTrajQA at its
    smallest history budget, held-out customers disjoint from the training ones)."""
    sources = {
        TOOLUSE: lambda: (tooluse_tasks(environment_lines(context, store)), scale.rl_max_prompt_chars),
        SHOPTRAJQA: lambda: (shoptrajqa_tasks(shop_dataset(context.instance)), 0),
    }
    unknown = sorted(set(scale.resd_task_families) - set(sources))
    if unknown or not scale.resd_task_families:
        raise dg.Failure(f"resd_task_families {scale.resd_task_families}: choose from {', '.join(sources)}")
    train, held_out = [], []
    for family in scale.resd_task_families:
        tasks, max_chars = sources[family]()
        mine, theirs = split_family(tasks, scale.resd_train_tasks, scale.resd_eval_tasks, max_chars)
        train, held_out = train + mine, held_out + theirs
    return train, held_out


def _rate(rollouts: pl.DataFrame, arm: str) -> float | None:
    rows = rollouts.filter(pl.col("arm") == arm)
    return None if rows.is_empty() else float((rows["reward"] >= 1.0).mean())


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "polars"}, pool="gpu", deps=[ENVIRONMENT, SHOP_DATASET])
def failed_rollouts(
    context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource, scale: ScaleResource
) -> dg.Output:
    """One RESD round's rollouts on the training tasks of each family (tool use: BFCL-style AST verifier;
    ShopTrajQA: exact match against the SQL gold), with the verifier's feedback (outcome and message): the
    student alone, and the student with the previous playbook in context (the pair
    votes the playbook's bullets helpful or harmful). Failed student rollouts are what reflections diagnose."""
    store = artifact_store.get_store()
    train, _ = _tasks(context, store, scale)
    version, playbook, previous_round = latest_playbook(context.instance, store)
    student, adapter = student_adapter(context.instance, store)
    policy = load_policy(policy_config(scale), adapter)
    rollouts = rollout_round(
        train,
        lambda prompts: generate(policy, prompts, scale.resd_completion_tokens),
        playbook,
        previous_round + 1,
        version,
    )
    failed = failed_student_rollouts(rollouts)
    numbers = {"success_student": _rate(rollouts, STUDENT), "success_with_playbook": _rate(rollouts, WITH_PLAYBOOK)}
    return frame_output(
        rollouts,
        {
            "round": previous_round + 1,
            "tasks": len(train),
            "families": ", ".join(scale.resd_task_families),
            "failures": failed.height,
            "student": student,
            "playbook_version": version or "none (first round)",
            "outcomes": markdown_table(
                rollouts.group_by("family", "arm", "outcome").len().sort("family", "arm", "outcome")
            ),
            **headline_metadata(numbers),
            "note": NOTE,
        },
    )


@dg.multi_asset(
    outs={
        "reflections": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"llm", "polars"},
            description="Per failed student rollout: the LLM's diagnosis of the local error and one candidate "
            "lesson with its playbook section (JSON-schema answers).",
        ),
        "reflections_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars"},
            description="Failed rollouts whose reflection was not valid JSON after the resource's retries, or "
            "missed a field (reason codes llm_error, invalid_json, missing_field).",
        ),
    },
    pool="llm",
)
def reflections(failed_rollouts: pl.DataFrame, llm: LLMResource, scale: ScaleResource):
    """Reflect on each failed student rollout through the profile's LLM; task text stays quoted data."""
    failed = failed_student_rollouts(failed_rollouts)
    result = parse_reflections(
        failed, llm.chat(reflection_requests(failed, scale.resd_reflection_tokens)), llm.model_id
    )
    metadata = {**result.metadata(), "model": llm.model_id, "no_failures": failed.is_empty()}
    yield frame_output(result.kept, output_name="reflections", metadata=metadata)
    yield frame_output(result.quarantined, output_name="reflections_quarantine", metadata=metadata)


class PlaybookConfig(dg.Config):
    """0 / 0.0: the profile's `resd_merge_threshold` and `resd_prune_at`."""

    merge_threshold: float = 0.0
    prune_at: int = 0


@dg.asset(group_name=GROUP, code_version="1", kinds={"json", "markdown"})
def playbook(
    context: dg.AssetExecutionContext,
    config: PlaybookConfig,
    reflections: pl.DataFrame,
    failed_rollouts: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    embedder: EmbedderResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """The persistent playbook, one version per round: bullets (id, section, content, helpful, harmful) changed
    by deltas (add per reflection, helpful/harmful tags from paired rollouts), near-duplicates merged by MiniLM
    cosine similarity, harmful bullets pruned; the lineage says which reflections and rollouts changed it.
    Applying a round twice changes nothing (deltas are keyed by their source)."""
    store = artifact_store.get_store()
    previous_version, previous, _ = latest_playbook(context.instance, store)
    round_number = int(failed_rollouts["round"].max())
    deltas = add_deltas(reflections) + tag_deltas(failed_rollouts)
    threshold = config.merge_threshold or scale.resd_merge_threshold
    state = work_dir(scale.rl_work_dir, "playbook") / f"{previous_version or 'empty'}-round{round_number}.json"
    update = update_playbook(
        previous, deltas, embedder.embed_passages, threshold, config.prune_at or scale.resd_prune_at, state
    )
    table = playbook_table(update.playbook)
    lineage = {
        "round": round_number,
        "previous_version": previous_version,
        "changes": update.lineage.to_dicts(),
        "merges": [merge.__dict__ for merge in update.merges],
        "pruned": update.pruned,
    }
    files = {
        PLAYBOOK_FILE: to_json(update.playbook).encode(),
        LINEAGE_FILE: json.dumps(lineage, indent=1, sort_keys=True).encode(),
        PLAYBOOK_TABLE: markdown_text(table).encode(),
    }
    metadata = {
        "round": round_number,
        "bullets": len(update.playbook.bullets),
        "helpful_total": sum(b.helpful for b in update.playbook.bullets),
        "harmful_total": sum(b.harmful for b in update.playbook.bullets),
        "deltas_applied": update.lineage.height,
        "deltas_replayed": update.replayed,
        "merged": len(update.merges),
        "pruned": len(update.pruned),
        "updated": update.lineage.height > 0 or bool(update.merges or update.pruned),
        "no_failures": reflections.is_empty() and not failed_student_rollouts(failed_rollouts).height,
        "playbook": markdown_table(table),
        "lineage": markdown_table(update.lineage),
        "embedder": embedder.model_id,
    }
    return model_result(context, store, files, metadata)


def playbook_table(book: Playbook) -> pl.DataFrame:
    """The playbook's bullets as a table (ranked by helpful - harmful)."""
    schema = {"id": pl.String, "section": pl.String, "content": pl.String, "helpful": pl.Int64, "harmful": pl.Int64}
    rows = [{key: getattr(b, key) for key in schema} for b in ranked(book)]
    return pl.DataFrame(rows, schema=schema)


def markdown_text(table: pl.DataFrame) -> str:
    """The table's markdown (the UI's metadata value as plain text for the stored file)."""
    return str(markdown_table(table).value)


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "safetensors"}, pool="gpu", deps=["playbook"])
def self_distillation(
    context: dg.AssetExecutionContext,
    failed_rollouts: pl.DataFrame,
    reflections: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """The round's self-distilled student (LoRA): the self-teacher is the same base model given the playbook and
    the task's reflection (never truncated: whole bullets are left out to fit the window, and recorded), the
    loss the token-level reverse KL on the student's own sampled completions (TRL's SDFTTrainer). The student
    is evaluated later without the playbook. No context at all (no failures, empty playbook): no update."""
    store = artifact_store.get_store()
    playbook_version, files = load_model_version(context.instance, store, "playbook")
    book = from_json(files[PLAYBOOK_FILE].decode())
    policy = policy_config(scale)
    count, budget = teacher_budget(policy, scale.resd_completion_tokens)
    rows, records = distillation_rows(failed_rollouts, reflections, book, count, budget)
    round_number = int(failed_rollouts["round"].max())
    fields = {"round": round_number, "playbook_version": playbook_version, "teacher": "base + playbook + reflection"}
    if not rows:
        skipped = {**fields, "skipped": "no reflection and an empty playbook: nothing to distil"}
        files_out = {SKIPPED_FILE: json.dumps(skipped, sort_keys=True).encode()}
        return model_result(context, store, files_out, {"round": round_number, "updated": False, "rows": 0})
    settings = SelfDistillationSettings(
        policy,
        max_steps=scale.resd_distill_steps,
        prompts_per_step=min(scale.resd_prompts_per_step, len(rows)),
        max_completion_length=scale.resd_completion_tokens,
    )
    _, adapter = student_adapter(context.instance, store)
    folder = work_dir(scale.rl_work_dir, "self_distillation") / fingerprint("sd", settings, rows, {"init": adapter})
    init = write_adapter(adapter, folder / "init_adapter") if adapter else None
    result = train_self_distillation(rows, settings, folder / "run", init_adapter=init, log=context.log.info)
    stored = {**adapter_files(result, fields), CONTEXTS_FILE: json.dumps(records, sort_keys=True).encode()}
    losses = [row["distillation_loss"] for row in result.steps if "distillation_loss" in row]
    metadata = {
        **training_metadata(result, "RESD self-distillation"),
        **headline_metadata(
            {"reverse_kl_first": losses[0] if losses else None, "reverse_kl_last": losses[-1] if losses else None}
        ),
        "round": round_number,
        "rows": len(rows),
        "rollouts": settings.max_steps * settings.prompts_per_step * settings.num_generations,
        "bullets_cut": sum(len(record["cut"]) for record in records),
        "updated": True,
    }
    return model_result(context, store, stored, metadata)


class ResdEvalConfig(dg.Config):
    """GRPO arm's prompts per step (its steps follow from the rollouts RESD spent) and its KL weight."""

    grpo_prompts_per_step: int = 1
    grpo_beta: float = 0.0


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "polars"},
    pool="gpu",
    deps=["playbook", "self_distillation", ENVIRONMENT, SHOP_DATASET],
)
def resd_eval(
    context: dg.AssetExecutionContext,
    config: ResdEvalConfig,
    failed_rollouts: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.Output:
    """Success on held-out tasks (every configured family) after this round, per arm: base (no playbook),
    playbook in context (no training), RESD (the self-distilled student, no playbook) and GRPO with
    `resd_grpo_generations` samples per prompt through the shared trainer, given as many rollouts as RESD spent;
    internalization = (RESD - base) / (playbook - base), undefined when the playbook gave no gain."""
    store = artifact_store.get_store()
    train, held_out = _tasks(context, store, scale)
    book_version, book_files = load_model_version(context.instance, store, "playbook")
    book = from_json(book_files[PLAYBOOK_FILE].decode())
    sd_version, sd_files = load_model_version(context.instance, store, "self_distillation")
    round_number = int(failed_rollouts["round"].max())
    spent = {"base": 0, "playbook": failed_rollouts.height}
    spent["resd"] = failed_rollouts.height + distilled_samples(sd_files)
    policy = policy_config(scale)
    folder = work_dir(scale.rl_work_dir, "resd_grpo")
    grpo_adapter, spent["grpo"] = grpo_arm(
        train,
        spent["resd"],
        policy,
        scale,
        config.grpo_prompts_per_step,
        config.grpo_beta,
        folder,
        log=context.log.info,
    )
    scored = evaluate_arms(held_out, book, policy, sd_files, grpo_adapter, scale.resd_completion_tokens, round_number)
    summary = success_summary(scored, spent)
    rates = {row["arm"]: row["success_rate"] for row in summary.iter_rows(named=True)}
    figure = internalization(rates["base"], rates["playbook"], rates["resd"])
    chart = grouped_bar_png(
        [f"round {round_number}"], {arm: [rates[arm]] for arm in EVAL_ARMS}, "Held-out success", "success"
    )
    return frame_output(
        scored,
        {
            "round": round_number,
            "held_out_tasks": len(held_out),
            "by_family": markdown_table(family_summary(scored)),
            "playbook_version": book_version,
            "self_distillation_version": sd_version,
            **headline_metadata({f"success_{arm}": rates[arm] for arm in EVAL_ARMS} | {"internalization": figure}),
            **{f"rollouts_{arm}": spent[arm] for arm in EVAL_ARMS},
            "summary": markdown_table(summary),
            "success_chart": png_metadata(chart, "held-out success per arm"),
            "note": NOTE,
        },
    )


def family_summary(scored: pl.DataFrame) -> pl.DataFrame:
    """Held-out tasks and success rate per (family, arm)."""
    return (
        scored.group_by("family", "arm")
        .agg(pl.len().alias("tasks"), (pl.col("reward") >= 1.0).mean().round(4).alias("success_rate"))
        .sort("family", "arm")
    )


def distilled_samples(files: dict[str, bytes]) -> int:
    """Student samples a self-distillation run drew: logged steps x prompts per step (one sample each)."""
    if TRAINING_RECORD not in files:
        return 0
    record = json.loads(files[TRAINING_RECORD])
    return len(record["steps"]) * int(record["config"]["prompts_per_step"]) * int(record["config"]["num_generations"])


def grpo_arm(
    tasks: list[dict],
    budget: int,
    policy: PolicyConfig,
    scale: ScaleResource,
    prompts_per_step: int,
    beta: float,
    folder: Path,
    init_adapter: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[Path, int]:
    """GRPO of the policy on the training tasks (each family's reward, `resd_grpo_generations` samples per
    prompt) for about `budget` rollouts, through the shared trainer; returns the adapter and the rollouts it spent."""
    settings = GRPOSettings(
        policy,
        max_steps=grpo_steps(budget, prompts_per_step, scale.resd_grpo_generations),
        prompts_per_step=prompts_per_step,
        num_generations=scale.resd_grpo_generations,
        max_completion_length=scale.resd_completion_tokens,
        beta=beta,
    )
    rows = [{"id": t["id"], "prompt": t["prompt"], "oracle": t["oracle"], "family": t["family"]} for t in tasks]
    run = folder / fingerprint("grpo", settings, rows, {"init": str(init_adapter)})
    result = train_grpo(
        rows, [task_reward], settings, run, init_adapter=init_adapter, reward_columns=["oracle", "family"], log=log
    )
    return result.adapter_dir, settings.max_steps * prompts_per_step * settings.num_generations


def evaluate_arms(
    tasks: list[dict],
    book: Playbook,
    policy: PolicyConfig,
    distilled: dict[str, bytes],
    grpo_adapter: Path,
    tokens: int,
    round_number: int,
) -> pl.DataFrame:
    """Every arm answers every held-out task once (greedy), scored by the verifier; one frame with an `arm`."""
    base = load_policy(policy)
    frames = [
        rollout_round(tasks, lambda prompts: generate(base, prompts, tokens), book, round_number, "").with_columns(
            pl.col("arm").replace({STUDENT: "base", WITH_PLAYBOOK: "playbook"})
        )
    ]
    if not book.bullets:  # an empty playbook in context is the base prompt
        frames.append(frames[0].with_columns(pl.lit("playbook").alias("arm")))
    plain = base.model
    for arm, adapter in (("resd", distilled if ADAPTER_WEIGHTS in distilled else None), ("grpo", grpo_adapter)):
        # each arm's LoRA goes on the base loaded once, and comes off again (`unload`) before the next
        base.model = with_adapter(plain, adapter) if adapter is not None else plain
        completions = generate(base, [task["prompt"] for task in tasks], tokens)
        frames.append(score_rollouts(tasks, completions, round_number, arm, ""))
        plain = base.model.unload() if adapter is not None else plain
    return pl.concat(frames)
