"""Rollouts of the base policy, the GSPO-trained gated translate-or-not policy, and the Pareto report."""

import io
import os
from pathlib import Path

import dagster as dg
import polars as pl

from assets.models import load_model_files, model_result
from assets.outputs import frame_output, markdown_table, png_metadata
from assets.translation.tasks import GROUP
from ops.common.llm import UsageTotals
from ops.common.packaged_models import smollm2_model_path
from ops.common.plots import grouped_bar_png, line_png
from ops.common.versioning import combine_versions, frame_version
from ops.translation.figures import pareto_png
from ops.translation.languages import ENGLISH
from ops.translation.pareto import call_rates, cost_share_at_full_reward, points_frame, sweep_policies
from ops.translation.reward import ANSWER_TOKENS, GateConfig, call_budgets
from ops.translation.rollouts import DIRECT, rollout_requests, score_rollouts, summarize
from resources.artifact_store import ArtifactStoreResource
from resources.llm import LLMResource
from resources.scale import ScaleResource
from resources.translation import TranslationResource
from training.rl.card import adapter_files
from training.rl.config import PolicyConfig
from training.translation.gated_policy import GatedTraining, evaluate_policies, train_gated_policy, training_rows

DECISIONS_FILE = "decisions.parquet"


def rolled_out_tasks(translated_tasks: pl.DataFrame, scale: ScaleResource) -> pl.DataFrame:
    """The translated tasks of the families the profile rolls out (arithmetic locally, MGSM too on gpu)."""
    return translated_tasks.filter(pl.col("family").is_in(scale.translation_rollout_families))


class GatingRolloutsConfig(dg.Config):
    """Samples per task and mode (0: the profile's), sampling temperature, and the output budget of an answer
    (one number; raise it for MGSM with a model that reasons before answering). A free-mode decision gets
    room for its call (`ops.translation.reward.call_budgets`)."""

    samples: int = 0
    temperature: float = 0.8
    answer_tokens: int = ANSWER_TOKENS


@dg.asset(group_name=GROUP, code_version="1", kinds={"llm", "polars"}, pool="llm")
def gating_rollouts(
    context: dg.AssetExecutionContext,
    config: GatingRolloutsConfig,
    translated_tasks: pl.DataFrame,
    multilingual_tasks: pl.DataFrame,
    llm: LLMResource,
    scale: ScaleResource,
) -> dg.Output:
    """The base policy (LLM resource) on every translated task: answering directly, answering after a
    `translate` call, and deciding by itself; plus its English accuracy on the same items. One row per
    sampled completion with its correctness and whether it called the tool."""
    tasks = rolled_out_tasks(translated_tasks, scale)
    english = multilingual_tasks.filter(
        (pl.col("language") == ENGLISH) & pl.col("family").is_in(scale.translation_rollout_families)
    )
    samples = config.samples or scale.translation_rollout_samples
    free_tokens = call_budgets(tasks["question"].to_list(), llm.count_tokens)
    requests = rollout_requests(tasks, english, samples, config.temperature, free_tokens, config.answer_tokens)
    context.log.info(f"{llm.model_id}: {len(requests)} rollouts of {tasks.height} tasks + {english.height} English")
    results = llm.chat(requests)
    rollouts = score_rollouts(tasks, english, results)
    table = (
        rollouts.group_by("tier", "language", "mode")
        .agg(pl.col("correct").mean().round(4).alias("accuracy"), pl.col("called").mean().round(4).alias("call_rate"))
        .sort("tier", "language", "mode")
    )
    by_language = table.pivot(on="mode", index="language", values="accuracy").fill_null(0.0).sort("language")
    modes = [m for m in ("direct", "translated", "free") if m in by_language.columns]
    chart = grouped_bar_png(
        by_language["language"].to_list(),
        {m: by_language[m].to_list() for m in modes},
        f"Accuracy of {llm.model_id} per language",
        "accuracy",
    )
    english_accuracy = rollouts.filter((pl.col("language") == ENGLISH) & (pl.col("mode") == DIRECT))["correct"].mean()
    return frame_output(
        rollouts,
        {
            "model": llm.model_id,
            "english_accuracy": round(float(english_accuracy or 0.0), 4),
            "accuracy_by_language": markdown_table(table),
            "accuracy_chart": png_metadata(chart, "accuracy per language and mode"),
            "llm_errors": int(rollouts["error"].is_not_null().sum()),
            **{f"policy_{k}": v for k, v in UsageTotals.from_results(results).as_metadata().items()},
        },
    )


class GatedPolicyConfig(dg.Config):
    """The gated reward (lambda, tau, gate on/off), GSPO sizes and the base model ("" = packaged SmolLM2).

    `max_completion_tokens` must hold a call that repeats the question: 64 fits the generated family's
    training languages; MGSM questions need more (median 134, up to 742 tokens in `samples/mgsm`)."""

    lam: float = 0.25
    tau: float = 0.5
    gated: bool = True
    prompts_per_step: int = 2
    max_completion_tokens: int = 64
    learning_rate: float = 1e-5
    base_model: str = ""
    seed: int = 0


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "safetensors"}, pool="gpu")
def gated_policy(
    context: dg.AssetExecutionContext,
    config: GatedPolicyConfig,
    translated_tasks: pl.DataFrame,
    gating_rollouts: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
    translation: TranslationResource,
) -> dg.MaterializeResult:
    """A LoRA adapter trained with the shared RL trainer in GSPO mode on the confidence-gated reward
    (answer, or call `translate` and answer; cost only counts once the group's accuracy exceeds tau),
    on the training languages; with the greedy decisions of the base and the trained policy on every
    task, held-out languages included."""
    tasks = rolled_out_tasks(translated_tasks, scale)
    summary = summarize(gating_rollouts, tasks, translation.held_out)
    policy = PolicyConfig(base_model=config.base_model or str(smollm2_model_path()), device=scale.training_device)
    training = GatedTraining(
        GateConfig(config.lam, config.tau, config.gated),
        max_steps=scale.translation_gspo_steps,
        prompts_per_step=config.prompts_per_step,
        num_generations=scale.translation_gspo_generations,
        max_completion_length=config.max_completion_tokens,
        learning_rate=config.learning_rate,
        seed=config.seed,
    )
    folder = _work_dir(frame_version(summary), frame_version(tasks), config.model_dump_json(), repr(training))
    result = train_gated_policy(training_rows(tasks, summary), policy, training, folder, log=context.log.info)
    evaluation = evaluate_policies(policy, result.adapter_dir, tasks, summary).with_columns(
        lam=pl.lit(config.lam), gated=pl.lit(config.gated)
    )
    buffer = io.BytesIO()
    evaluation.write_parquet(buffer)
    files = adapter_files(result, {"reward": "ops.translation.reward.trainer_reward", **config.model_dump()})
    files[DECISIONS_FILE] = buffer.getvalue()
    rates = (
        evaluation.group_by("policy", "tier")
        .agg(pl.col("called").mean().round(4).alias("call_rate"))
        .sort("policy", "tier")
    )
    trained = evaluation.filter(pl.col("policy") == "gated_gspo")
    last = result.steps[-1] if result.steps else {}
    return model_result(
        context,
        artifact_store.get_store(),
        files,
        {
            "steps": len(result.steps),
            "reward_mean": round(float(last.get("reward_mean", 0.0)), 4),
            "loss": round(float(last.get("loss", 0.0)), 4),
            "trained_call_rate": round(float(trained["called"].mean() or 0.0), 4),
            "trained_accuracy": round(float(trained["correct"].mean() or 0.0), 4),
            "call_rate_by_tier": markdown_table(rates),
            "base_model": policy.base_model,
        },
    )


def _work_dir(*inputs: str) -> Path:
    """A checkpoint folder per distinct training input under `$ASSAY_HOME/work` (a killed run resumes)."""
    home = Path(os.environ.get("ASSAY_HOME", ".assay"))
    return home / "work" / "gated_policy" / combine_versions(inputs)[:16]


class TranslationParetoConfig(dg.Config):
    """Cost weights swept and the gate's accuracy threshold tau."""

    lambdas: list[float] = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0]
    tau: float = 0.5


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars"}, deps=["gated_policy"])
def translation_pareto(
    context: dg.AssetExecutionContext,
    config: TranslationParetoConfig,
    translated_tasks: pl.DataFrame,
    gating_rollouts: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
    translation: TranslationResource,
) -> dg.Output:
    """Reward (accuracy) against translation cost for never/always-translate, the prompted model,
    best responses and confidence-threshold policies over the lambda sweep (gated and ungated), and the
    GSPO-trained gated policy; the Pareto front per split (training languages, held-out languages),
    call rates per tier and language, and the share of always-translate's cost that keeps its accuracy."""
    tasks = rolled_out_tasks(translated_tasks, scale)
    summary = summarize(gating_rollouts, tasks, translation.held_out)
    on_train, on_held = sweep_policies(summary, config.lambdas, config.tau)
    trained = pl.read_parquet(
        io.BytesIO(load_model_files(context.instance, artifact_store.get_store(), "gated_policy")[DECISIONS_FILE])
    )
    train_rows, held_rows = summary.filter(~pl.col("held_out")), summary.filter(pl.col("held_out"))
    points = pl.concat(
        [
            points_frame(train_rows, on_train, "train", config.tau, trained.filter(~pl.col("held_out"))),
            points_frame(held_rows, on_held, "held_out", config.tau, trained.filter(pl.col("held_out"))),
        ]
    )
    rates = call_rates(train_rows, [p for p in on_train if p.policy == "best_response" and p.gated])
    tiers = rates.filter(pl.col("dimension") == "tier")
    lam_labels = [str(lam) for lam in config.lambdas]
    by_tier = {
        tier: tiers.filter(pl.col("group") == tier).sort("lam")["call_rate"].to_list()
        for tier in sorted(set(tiers["group"]))
    }
    share = cost_share_at_full_reward(points.filter(pl.col("split") == "train"))
    return frame_output(
        points,
        {
            "cost_share_at_full_reward": round(share, 4) if share is not None else -1.0,
            "pareto_points": int(points["pareto"].sum()),
            "call_rates": markdown_table(
                rates.filter(pl.col("dimension") == "language").with_columns(pl.col("call_rate").round(4))
            ),
            "pareto_train": png_metadata(
                pareto_png(points.filter(pl.col("split") == "train"), "Training languages"), "Pareto"
            ),
            "pareto_held_out": png_metadata(
                pareto_png(points.filter(pl.col("split") == "held_out"), "Held-out languages"), "Pareto held-out"
            ),
            "call_rate_by_tier": png_metadata(
                line_png(lam_labels, by_tier, "Best-response call rate by tier (gated)", "call rate"),
                "call rate by tier",
            ),
        },
    )
