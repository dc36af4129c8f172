"""QUBRIC figures: naive narrowing vs key-point rewriting, the learnability filter, rubric-reward GRPO.

The questions it answers, on the bundled Arena-Hard slice:
1. rewrite: per method (key-point rewriting, naive narrowing), the share of rewrites with a fabricated
   reference and the share of all-fail pairs after contrastive rubrics and G policy samples (the
   fabricated-reference symptom); the ratio naive / key points is measured in the same run.
2. learnability: the p̂ histogram before and after the filter, and why every pair was dropped; and the p̂
   histogram over every non-duplicate candidate criterion (as if consistency kept them all).
3. judge: rubric-engine calls and seconds per graded pair; a probe of the judge itself on fixed
   (answer, criterion) pairs whose verdict is known (true/false positive rates): a judge that passes every
   criterion leaves no criterion that prefers the teacher, hence no learnable pair.
4. grpo (`--grpo-steps N`, 0 = skip): N GRPO steps on the kept pairs with the rubric reward, the share of
   zero-variance groups per step, then the trained policy vs its base in pairwise judging (both orders) on
   held-out queries: win rate with a bootstrap interval, judge calls and seconds per pair.

Locally teacher, judge and policy are all SmolLM2-135M (llama.cpp vs torch): the figures are a pipeline
check, not evidence about QUBRIC. The machine is shared: load averages are recorded.

    python -m benchmarks.qubric [--queries 4] [--samples 2] [--grpo-steps 0]

Prints one JSON object per line and writes them all to `benchmarks/results/qubric.json`.
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
from ops.common.llm import LLMClient
from ops.rubrics.criteria import Criterion
from ops.rubrics.grading import grading_cost
from ops.rubrics.qubric.contrastive import (
    DUPLICATE,
    KEPT,
    consistency,
    contrastive_requests,
    first_responses,
    parse_criteria,
)
from ops.rubrics.qubric.judging import JudgeSettings, Response, grade_responses, sample_scores
from ops.rubrics.qubric.learnability import LearnabilityRule, learnability_frame, p_hat_histogram
from ops.rubrics.qubric.pairs import build_pairs, trl_rows
from ops.rubrics.qubric.pairwise import pairwise_verdicts, win_rate
from ops.rubrics.qubric.queries import HELDOUT, TRAIN, load_queries, read_jsonl
from ops.rubrics.qubric.teacher import (
    METHODS,
    key_point_requests,
    parse_key_points,
    parse_scenarios,
    response_frame,
    sample_requests,
    scenario_requests,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "qubric.json"
BUNDLED = REPO / "samples" / "arena_hard" / "questions.jsonl"

# (chats, samples, max_new_tokens, seed) -> per chat, `samples` (text, tokens); the torch policy's `sample`
Sampler = Callable[[list, int, int, int], list[list[tuple[str, int]]]]


PROBE_QUESTION = "Write a Python script for sentiment analysis of a product review."
PROBE_ANSWERS = {
    "code": "```python\nfrom textblob import TextBlob\nprint(TextBlob('great product').sentiment.polarity)\n```",
    "prose": "Sentiment analysis is the process of finding the emotion in a text. Companies use it.",
    "refusal": "I don't know.",
    "french": "Je ne sais pas, désolé.",
}
# criterion -> the answers that meet it (every other answer does not)
PROBE_CRITERIA = {
    "The response includes Python code.": {"code"},
    "The response is written in French.": {"french"},
}


def judge_probe(judge: LLMClient, settings: JudgeSettings) -> dict[str, Any]:
    """The judge on fixed (answer, criterion) pairs with a known verdict: true and false positive rates
    (scikit-learn's confusion matrix), calls and seconds."""
    from sklearn.metrics import confusion_matrix

    responses = [Response(name, "probe", "probe", PROBE_QUESTION, text) for name, text in PROBE_ANSWERS.items()]
    criteria = [Criterion(f"p{index}", "probe", 0, text, 1.0) for index, text in enumerate(PROBE_CRITERIA)]
    grades = grade_responses(judge, responses, {"probe": criteria}, settings)
    truth = {(c.criterion_id, name): name in PROBE_CRITERIA[c.text] for c in criteria for name in PROBE_ANSWERS}
    graded = grades.filter(pl.col("status") != "ungraded")
    expected = [truth[(row["criterion_id"], row["response_id"])] for row in graded.iter_rows(named=True)]
    said = (graded["status"] == "met").to_list()
    tn, fp, fn, tp = confusion_matrix(expected, said, labels=[False, True]).ravel()
    cost = grading_cost(grades)
    return {
        "record": "judge_probe",
        "pairs": grades.height,
        "graded": graded.height,
        "should_pass": int(tp + fn),
        "should_fail": int(tn + fp),
        "met_share": round(sum(said) / len(said), 4) if said else None,
        "true_positive_rate": round(tp / (tp + fn), 4) if tp + fn else None,
        "false_positive_rate": round(fp / (fp + tn), 4) if fp + tn else None,
        "judge_calls": cost["judge_calls"],
        "judge_seconds_per_pair": round(cost["judge_seconds"] / max(1, grades.height), 3),
    }


def method_part(
    method: str,
    scenarios: pl.DataFrame,
    teacher: LLMClient,
    judge: LLMClient,
    sampler: Sampler,
    args: argparse.Namespace,
    settings: JudgeSettings,
) -> tuple[dict[str, Any], pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Policy samples, teacher answer, contrastive rubrics, consistency and learnability for one method."""
    rewrites = scenarios.filter(pl.col("method") == method).sort("query_id")
    chats = [[{"role": "user", "content": text}] for text in rewrites["scenario_query"].to_list()]
    started = time.perf_counter()
    outputs = sampler(chats, args.samples, args.policy_tokens, 0)
    policy_s = time.perf_counter() - started
    policy = response_frame(
        rewrites, [t for g in outputs for t, _ in g], [n for g in outputs for _, n in g], args.samples, "policy", "p"
    )
    results = teacher.chat(sample_requests(rewrites, 1, args.teacher_tokens, 0.7))
    teachers = response_frame(
        rewrites, [r.text or "" for r in results], [r.completion_tokens for r in results], 1, "teacher", "t"
    )
    ids, requests = contrastive_requests(
        rewrites, first_responses(teachers), first_responses(policy), args.max_criteria, args.teacher_tokens
    )
    candidates, _ = parse_criteria(ids, teacher.chat(requests))
    rubrics, consistency_grades = consistency(judge, candidates, teachers, policy, 1, settings)
    kept = rubrics.filter(pl.col("status") == KEPT)
    rule = LearnabilityRule(args.floor, args.ceiling)
    scores, grades = sample_scores(judge, kept, policy, settings)
    learn = learnability_frame(rewrites["query_id"].to_list(), scores, rule)
    # every non-duplicate candidate, as if consistency kept them all: what p̂ the policy's samples get
    graded = rubrics.filter(pl.col("status") != DUPLICATE)
    candidate_scores, candidate_grades = sample_scores(judge, graded, policy, settings)
    candidates_learn = learnability_frame(rewrites["query_id"].to_list(), candidate_scores, rule)
    candidate_reasons = candidates_learn.group_by("reason").len()
    judged = [frame for frame in (consistency_grades, grades, candidate_grades) if not frame.is_empty()]
    cost = grading_cost(pl.concat(judged)) if judged else {"judge_calls": 0, "judge_seconds": 0.0}
    pairs = max(1, rewrites.height)
    reasons = learn.group_by("reason").len()
    record = {
        "record": "method",
        "method": method,
        "queries": rewrites.height,
        "fabricated_share": round(float((rewrites["n_fabricated"] > 0).mean()), 4) if rewrites.height else None,
        "criteria_candidates": candidates.height,
        "criteria_kept": kept.height,
        "all_fail_share": round(float((learn["reason"] == "all_fail").mean()), 4) if learn.height else None,
        "kept_share": round(float(learn["kept"].mean()), 4) if learn.height else None,
        "drop_reasons": dict(zip(reasons["reason"].to_list(), reasons["len"].to_list(), strict=True)),
        "p_hat_histogram_before": p_hat_histogram(learn["p_hat"].to_list()),
        "p_hat_histogram_after": p_hat_histogram(learn.filter(pl.col("kept"))["p_hat"].to_list()),
        "p_hat_histogram_all_candidates": p_hat_histogram(candidates_learn["p_hat"].to_list()),
        "drop_reasons_all_candidates": dict(
            zip(candidate_reasons["reason"].to_list(), candidate_reasons["len"].to_list(), strict=True)
        ),
        "criteria_status": dict(rubrics.group_by("status").len().iter_rows()),
        "judge_calls": cost["judge_calls"],
        "judge_calls_per_pair": round(cost["judge_calls"] / pairs, 3),
        "judge_seconds_per_pair": round(cost["judge_seconds"] / pairs, 3),
        "policy_samples_per_s": round(len(rewrites) * args.samples / policy_s, 3) if policy_s else None,
    }
    return record, learn, kept, rewrites


def grpo_part(
    pairs: pl.DataFrame,
    heldout: pl.DataFrame,
    judge: LLMClient,
    args: argparse.Namespace,
    settings: JudgeSettings,
    workdir: Path,
) -> list[dict[str, Any]]:
    """A few GRPO steps with the rubric reward, then trained vs base pairwise on held-out queries."""
    from ops.common.packaged_models import smollm2_model_path
    from ops.rubrics.qubric.reward import rubric_reward
    from training.rl.config import GRPOSettings, PolicyConfig
    from training.rl.group_filter import ZeroVarianceFilter
    from training.rl.policy import generate, load_policy
    from training.rl.trainer import train_grpo

    policy = PolicyConfig(str(smollm2_model_path()))
    rows = trl_rows(pairs)
    per_step = min(2, len(rows))
    rows = [rows[i % len(rows)] for i in range(args.grpo_steps * per_step)]
    settings_grpo = GRPOSettings(
        policy,
        max_steps=args.grpo_steps,
        prompts_per_step=per_step,
        num_generations=args.samples,
        max_completion_length=args.policy_tokens,
        save_steps=args.grpo_steps,
    )
    result = train_grpo(
        rows,
        [rubric_reward(judge, settings)],
        settings_grpo,
        workdir / "grpo",
        group_filter=ZeroVarianceFilter(),
        reward_columns=["criteria"],
    )
    records = [
        {"record": "grpo_step", **{key: round(value, 4) for key, value in step.items()}} for step in result.steps
    ]
    chats = [[{"role": "user", "content": text}] for text in heldout["query"].to_list()]
    ids = heldout["query_id"].to_list()
    trained = dict(zip(ids, generate(load_policy(policy, result.adapter_dir), chats, args.policy_tokens), strict=True))
    base = dict(zip(ids, generate(load_policy(policy), chats, args.policy_tokens), strict=True))
    queries = dict(zip(ids, heldout["query"].to_list(), strict=True))
    verdicts = pairwise_verdicts(judge, queries, trained, base, settings)
    summary = win_rate(verdicts, seed=0)
    records.append(
        {
            "record": "pairwise",
            **{key: round(value, 4) if isinstance(value, float) else value for key, value in summary.items()},
            "judge_calls": int(verdicts["attempts"].sum()),
            "judge_seconds_per_pair": round(float(verdicts["judge_latency_s"].sum()) / max(1, heldout.height), 3),
            "zero_variance_share_mean": round(
                sum(step.get("zero_variance_share", 0.0) for step in result.steps) / max(1, len(result.steps)), 4
            ),
        }
    )
    return records


def run(
    args: argparse.Namespace, teacher: LLMClient, judge: LLMClient, sampler: Sampler, workdir: Path
) -> list[dict[str, Any]]:
    """Every part in order; records as printed."""
    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    settings = JudgeSettings(max_attempts=2, max_tokens=args.judge_tokens, explanation_max_chars=args.explanation_chars)
    emit(judge_probe(judge, settings), records)
    queries = load_queries(
        read_jsonl(args.bundled, "arena_hard")[: args.queries], heldout_share=args.heldout_share
    ).kept
    train = queries.filter(pl.col("split") == TRAIN)
    started = time.perf_counter()
    key_points = parse_key_points(
        train, teacher.chat(key_point_requests(train, args.key_points, args.teacher_tokens, 600)), teacher.model_id
    ).kept
    scenarios = parse_scenarios(
        key_points, teacher.chat(scenario_requests(key_points, args.teacher_tokens, 600)), teacher.model_id
    ).kept
    emit(
        {
            "record": "teacher",
            "queries": train.height,
            "key_points_kept": key_points.height,
            "rewrites": scenarios.height,
            "seconds": round(time.perf_counter() - started, 2),
        },
        records,
    )
    parts = {}
    for method in METHODS:
        record, learn, kept, rewrites = method_part(method, scenarios, teacher, judge, sampler, args, settings)
        emit(record, records)
        parts[method] = (learn, kept, rewrites)
    key, naive = (records[-2]["all_fail_share"], records[-1]["all_fail_share"])
    emit({"record": "ratio", "all_fail_naive_over_key_points": round(naive / key, 4) if key else None}, records)
    if args.grpo_steps:
        learn, kept, rewrites = parts["key_points"]
        pairs = build_pairs(
            rewrites, kept, learn, {"teacher": teacher.model_id, "policy": "smollm2", "judge": judge.model_id}
        )
        if pairs.is_empty():
            emit({"record": "grpo_skipped", "reason": "no learnable pair"}, records)
        else:
            for record in grpo_part(pairs, queries.filter(pl.col("split") == HELDOUT), judge, args, settings, workdir):
                emit(record, records)
    emit({"record": "end", "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}, records)
    return records


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundled", type=Path, default=BUNDLED)
    parser.add_argument("--queries", type=int, default=4, help="bundled queries read (a quarter held out)")
    parser.add_argument("--heldout-share", type=float, default=0.25)
    parser.add_argument("--samples", type=int, default=2, help="policy samples per query (G)")
    parser.add_argument("--policy-tokens", type=int, default=32)
    parser.add_argument("--teacher-tokens", type=int, default=128)
    parser.add_argument("--judge-tokens", type=int, default=128)
    parser.add_argument("--explanation-chars", type=int, default=100)
    parser.add_argument("--key-points", type=int, default=3)
    parser.add_argument("--max-criteria", type=int, default=2)
    parser.add_argument("--floor", type=float, default=0.1)
    parser.add_argument("--ceiling", type=float, default=0.9)
    parser.add_argument("--grpo-steps", type=int, default=0, help="GRPO steps on the kept pairs (0: skip)")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads while the policy samples")
    parser.add_argument("--llm-backend", default="llamacpp", help="teacher and judge: LLMResource backend")
    parser.add_argument("--llm-model", default="", help="'' = the packaged SmolLM2-135M (llamacpp)")
    parser.add_argument("--llm-base-url", default="", help="for the openai backend (key: $OPENAI_API_KEY)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    from ops.common.packaged_models import smollm2_model_path
    from ops.common.threads import torch_threads
    from resources.llm import LLMResource
    from training.rl.config import PolicyConfig
    from training.rl.policy import load_policy
    from training.rl.sampling import sample

    policy = load_policy(PolicyConfig(str(smollm2_model_path())))

    def sampler(chats: list, samples: int, tokens: int, seed: int) -> list[list[tuple[str, int]]]:
        with torch_threads(args.torch_threads):
            return sample(policy, chats, samples, tokens, 1.0, seed)

    with tempfile.TemporaryDirectory(prefix="qubric_bench_") as tmp:
        llm = LLMResource(
            backend=args.llm_backend,
            model=args.llm_model,
            base_url=args.llm_base_url,
            n_ctx=4096,
            cache_path=f"{tmp}/llm.sqlite",
        )
        records = run(args, llm, llm, sampler, Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
