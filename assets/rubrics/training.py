"""GRPO of the policy on the query-rubric pairs (rubric reward), and the trained policy against its base in
Arena-Hard-style pairwise judging on held-out queries."""

from collections.abc import Iterator

import dagster as dg
import polars as pl

from assets.models import load_model_files, model_result
from assets.outputs import frame_output, headline_metadata, png_metadata
from assets.rubrics.common import GROUP, LOCAL_CAVEAT, judge_settings, policy_name
from assets.training_metadata import policy_config, training_metadata, work_dir
from ops.common.plots import grouped_bar_png
from ops.common.versioning import frame_version
from ops.rubrics.qubric.no_update import NO_LEARNABLE_PAIR, no_update_files, no_update_record
from ops.rubrics.qubric.pairs import trl_rows
from ops.rubrics.qubric.pairwise import PAIRWISE_SCHEMA, pairwise_verdicts, query_scores, win_rate
from ops.rubrics.qubric.queries import HELDOUT
from ops.rubrics.qubric.reward import rubric_reward
from resources.artifact_store import ArtifactStoreResource
from resources.llm import LLMResource
from resources.scale import ScaleResource
from training.rl.card import adapter_files
from training.rl.config import GRPOSettings
from training.rl.group_filter import ZeroVarianceFilter
from training.rl.paired import trained_and_base
from training.rl.trainer import fingerprint, train_grpo

REWARD = "ops.rubrics.qubric.reward.rubric_reward (sum w*met / sum w, judged by ops.rubrics.grading)"


class RubricGRPOConfig(dg.Config):
    """GRPO's mode ("grpo" or "gspo") and seed."""

    mode: str = "grpo"
    seed: int = 0


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "safetensors"}, pool="gpu")
def rubric_policy_grpo(
    context: dg.AssetExecutionContext,
    config: RubricGRPOConfig,
    query_rubric_pairs: pl.DataFrame,
    rubric_learnability: pl.DataFrame,
    llm: LLMResource,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> Iterator[dg.MaterializeResult]:
    """A LoRA adapter trained by GRPO (shared trainer, zero-variance groups dropped) on the pairs' scenario
    queries, reward = Σ wᵢ·metᵢ / Σ wᵢ of the pair's criteria as judged by the rubric engine (profile's LLM).
    With no learnable pair it stores a "no learnable pair: no update" record instead (the policy stays its
    base), with the learnability filter's drop reasons."""
    if query_rubric_pairs.is_empty():
        # nothing to learn from is an outcome (locally the 135M judge passes every criterion), not a crash
        context.log.warning("query_rubric_pairs holds no learnable pair (see rubric_learnability): no update")
        reasons = dict(rubric_learnability.group_by("reason").len().iter_rows())
        files = no_update_files(frame_version(query_rubric_pairs), reasons)
        metadata = {"trained": False, "steps": 0, "pairs": 0, "status": NO_LEARNABLE_PAIR + ": no update"}
        yield model_result(context, artifact_store.get_store(), files, {**metadata, "note": LOCAL_CAVEAT})
        return
    pairs = trl_rows(query_rubric_pairs)
    prompts_per_step = min(scale.rl_prompts_per_step, len(pairs))
    # one epoch = exactly the configured steps (pairs cycled in rank order), so a rerun that resumes from
    # the last checkpoint has nothing left to train
    rows = [pairs[index % len(pairs)] for index in range(scale.qubric_grpo_steps * prompts_per_step)]
    settings = GRPOSettings(
        policy_config(scale),
        mode=config.mode,  # type: ignore[arg-type]
        max_steps=scale.qubric_grpo_steps,
        prompts_per_step=prompts_per_step,
        num_generations=scale.qubric_samples,
        max_completion_length=scale.qubric_policy_tokens,
        beta=scale.rl_beta,
        save_steps=max(1, scale.qubric_grpo_steps // 10),
        seed=config.seed,
    )
    folder = work_dir(scale.rl_work_dir, "rubric_policy_grpo") / fingerprint(
        "grpo", settings, rows, {"judge": llm.model_id}
    )
    reward = rubric_reward(llm, judge_settings(scale))
    result = train_grpo(
        rows,
        [reward],
        settings,
        folder,
        group_filter=ZeroVarianceFilter(),
        reward_columns=["criteria"],
        log=context.log.info,
    )
    fields = {"data": "query_rubric_pairs", "data_version": frame_version(query_rubric_pairs), "reward": REWARD}
    files = adapter_files(result, {**fields, "judge": llm.model_id, "pairs": len(pairs)})
    metadata = {**training_metadata(result, f"Rubric-reward {config.mode.upper()}"), "pairs": len(pairs)}
    yield model_result(
        context,
        artifact_store.get_store(),
        files,
        {**metadata, "trained": True, "judge": llm.model_id, "note": LOCAL_CAVEAT},
    )


OUTCOMES = {"trained won both orders": 1.0, "split (position bias or tie)": 0.5, "base won both orders": 0.0}


def _answers(scale: ScaleResource, adapter: dict[str, bytes], queries: pl.DataFrame, max_tokens: int) -> dict:
    """Greedy answers per query id of the trained policy and of its base (one model load)."""
    chats = [[{"role": "user", "content": text}] for text in queries["query"].to_list()]
    texts = trained_and_base(policy_config(scale), adapter, chats, max_tokens)
    ids = queries["query_id"].to_list()
    return {
        name: dict(zip(ids, answers, strict=True)) for name, answers in zip(("trained", "base"), texts, strict=True)
    }


EVAL_SCHEMA = {**PAIRWISE_SCHEMA, "trained_answer": pl.String(), "base_answer": pl.String()}


def _no_comparison(heldout: int, record: dict) -> dg.Output:
    """GRPO recorded no update (no learnable pair): the trained policy is the base, so nothing is judged."""
    status = f"{record['reason']}: no update, trained policy = base, nothing judged"
    return frame_output(
        pl.DataFrame(schema=EVAL_SCHEMA),
        {"trained": False, "status": status, "queries": heldout, "judged_queries": 0, "judge_calls": 0.0},
    )


class RubricEvalConfig(dg.Config):
    """Held-out queries judged (0: the profile's `qubric_eval_queries`, then all), answer tokens (0: the
    profile's `qubric_policy_tokens`), bootstrap resamples and seed."""

    queries: int = 0
    max_tokens: int = 0
    n_bootstrap: int = 2000
    seed: int = 0


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "llm"}, pool="gpu", deps=["rubric_policy_grpo"])
def rubric_policy_eval(
    context: dg.AssetExecutionContext,
    config: RubricEvalConfig,
    open_queries: pl.DataFrame,
    llm: LLMResource,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.Output:
    """Trained vs base policy on held-out open queries, Arena-Hard style: the judge (the profile's LLM, not
    the policy) compares both answers in both orders; win rate of the trained policy (ties 0.5) with a 95%
    bootstrap interval over queries."""
    heldout = open_queries.filter(pl.col("split") == HELDOUT).sort("query_id")
    count = config.queries or scale.qubric_eval_queries
    heldout = heldout.head(count) if count else heldout
    if heldout.is_empty():
        raise dg.Failure("open_queries has no held-out query: raise `heldout_share` or add queries")
    adapter = load_model_files(context.instance, artifact_store.get_store(), "rubric_policy_grpo")
    skipped = no_update_record(adapter)
    if skipped is not None:
        return _no_comparison(heldout.height, skipped)
    max_tokens = config.max_tokens or scale.qubric_policy_tokens
    answers = _answers(scale, adapter, heldout, max_tokens)
    queries = dict(zip(heldout["query_id"].to_list(), heldout["query"].to_list(), strict=True))
    verdicts = pairwise_verdicts(llm, queries, answers["trained"], answers["base"], judge_settings(scale))
    verdicts = verdicts.with_columns(
        pl.col("query_id").replace_strict(answers["trained"], return_dtype=pl.String).alias("trained_answer"),
        pl.col("query_id").replace_strict(answers["base"], return_dtype=pl.String).alias("base_answer"),
    )
    summary = win_rate(verdicts, config.n_bootstrap, seed=config.seed)
    outcomes = query_scores(verdicts)["score"].to_list()
    shares = {label: [sum(score == value for score in outcomes)] for label, value in OUTCOMES.items()}
    chart = grouped_bar_png(["held-out queries"], shares, "Trained vs base, both orders judged", "queries")
    seconds = float(verdicts["judge_latency_s"].sum())
    numbers = {
        "win_rate": summary["win_rate"],
        "win_rate_ci_low": summary["ci_low"],
        "win_rate_ci_high": summary["ci_high"],
        "order_consistency": summary["order_consistency"],
        "judge_calls": float(verdicts["attempts"].sum()),
        "judge_seconds_per_pair": seconds / heldout.height,
    }
    return frame_output(
        verdicts,
        {
            **headline_metadata(numbers),
            "queries": heldout.height,
            "judged_queries": summary["queries"],
            "judge": llm.model_id,
            "policy": policy_name(scale),
            "trained": True,
            "outcomes_chart": png_metadata(chart, "per-query outcomes, trained vs base"),
            "note": LOCAL_CAVEAT,
        },
    )
