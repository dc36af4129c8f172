"""The tool-use reward against BFCL's own checker, and BFCL multi-turn scored by execution.

The questions it answers:
1. differential: over every bundled single-turn category (python, java, javascript) and the generated
   perturbations of `ops.tooluse.bfcl_differential`, how often do the BFCL-exact and strict modes disagree
   with BFCL's checker (PyPI `bfcl-eval`, run as shipped), by category, perturbation and documented
   deviation? The goal is 0 undocumented.
2. throughput: outputs scored per CPU-second, text in (parse + check), by BFCL's decoder+checker and by the
   reward in both modes, over the same outputs (the Python categories' probes); paired in one process:
   each chunk of 200 outputs is scored by all three back to back, in rotating order (`paired_rates`).
3. multi-turn scorer: the execution scorer and BFCL's `multi_turn_checker` over the ground truth and
   perturbations of every multi_turn_base task: agreement, episodes/s and executions/s of each.
4. multi-turn policy: the local model (LLMResource, SmolLM2-135M on llama.cpp, fresh cache) plays
   `--tasks` multi_turn_base tasks turn by turn; accuracy, turns passed, model calls, executions/s.
   The 135M model's accuracy is a pipeline check, not evidence of ability. `--backend torch` runs the
   same GGUF weights through transformers where llama.cpp cannot run.

    python -m benchmarks.bfcl_reward [--parts differential throughput multi_turn policy] [--rounds 3] [--tasks 2]
                                     [--backend llama_cpp|torch]

Prints one JSON object per line and writes them to `benchmarks/results/bfcl_reward.json`. The machine is
shared: load averages are in the machine record and the summary.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.embedding_throughput import emit, machine_info
from ops.tooluse.bfcl import load_single_turn
from ops.tooluse.bfcl_differential import Probe, compare, perturbed_outputs
from ops.tooluse.bfcl_reference import BfclReference, load_reference
from ops.tooluse.multi_turn import MultiTurnTask, load_multi_turn, score_multi_turn
from ops.tooluse.reward import BFCL_EXACT, STRICT, score_example

REPO = Path(__file__).resolve().parent.parent
BFCL_DIR = REPO / "samples" / "bfcl_v3"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "bfcl_reward.json"
ALL_CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance", "java", "javascript")
PYTHON_CATEGORIES = ALL_CATEGORIES[:5]
PARTS = ("differential", "throughput", "multi_turn", "policy")


def probes_for(categories: Sequence[str], stride: int = 1) -> list[Probe]:
    """Every generated probe of the given bundled categories (every `stride`-th)."""
    examples = load_single_turn(BFCL_DIR, tuple(categories))
    return [probe for ex in examples for probe in perturbed_outputs(ex)][::stride]


def measure_differential(reference: BfclReference, stride: int) -> dict[str, Any]:
    """Disagreements of both modes with BFCL's checker, by category, perturbation and deviation."""
    probes = probes_for(ALL_CATEGORIES, stride)
    report = compare(probes, reference.score)
    return {
        "record": "differential",
        "bfcl_eval": reference.version,
        "probes": report.total,
        "undocumented": len(report.undocumented),
        "undocumented_examples": report.undocumented[:5],
        "strict_documented_by_deviation": dict(report.strict_by_deviation),
        "strict_documented_by_category": dict(report.strict_by_category),
        "strict_documented_by_perturbation": dict(report.strict_by_kind),
        "probes_by_perturbation": dict(report.probes),
    }


def paired_rates(
    scorers: dict[str, Callable[[Any], Any]], items: Sequence[Any], rounds: int, chunk: int = 200
) -> dict[str, float]:
    """Items per CPU-second of each scorer, paired: every chunk of items is scored by every scorer back to
    back, the order rotating from chunk to chunk, so that load changes on the shared machine hit all of them
    alike; garbage collection is off during a round (as in `timeit`) and runs between rounds."""
    names = list(scorers)
    spent = dict.fromkeys(names, 0.0)
    for r in range(rounds):
        gc.collect()
        gc.disable()
        for c, start in enumerate(range(0, len(items), chunk)):
            part = items[start : start + chunk]
            shift = (c + r) % len(names)
            for name in names[shift:] + names[:shift]:
                started = time.process_time()
                for item in part:
                    scorers[name](item)
                spent[name] += time.process_time() - started
        gc.enable()
    return {name: rounds * len(items) / seconds for name, seconds in spent.items()}


def measure_throughput(reference: BfclReference, rounds: int, stride: int) -> dict[str, Any]:
    """Reward vs BFCL's decoder+checker on the same outputs (text in), same process, alternating rounds."""
    probes = probes_for(PYTHON_CATEGORIES, stride)
    for probe in probes:  # BFCL's inputs built once per example, as its runner reads them from files
        reference.inputs(probe.example)
    rates = paired_rates(
        {
            "bfcl_checker": lambda p: reference.score(p.text, p.example),
            "reward_strict": lambda p: score_example(p.text, p.example, STRICT),
            "reward_bfcl_exact": lambda p: score_example(p.text, p.example, BFCL_EXACT),
        },
        probes,
        rounds,
    )
    return {
        "record": "throughput",
        "outputs": len(probes),
        "rounds": rounds,
        **{f"{name}_per_cpu_s": round(rate, 1) for name, rate in rates.items()},
        "ratio_strict_vs_bfcl": round(rates["reward_strict"] / rates["bfcl_checker"], 3),
        "ratio_bfcl_exact_vs_bfcl": round(rates["reward_bfcl_exact"] / rates["bfcl_checker"], 3),
    }


def multi_turn_variants(task: MultiTurnTask) -> list[tuple[str, list[list[list[str]]]]]:
    """The ground truth and simple perturbations of it, as model calls per turn and step."""
    truth = task.ground_truth
    first = next(i for i, turn in enumerate(truth) if turn)
    changed = [[turn] for turn in truth]
    dropped = [*changed[:first], [truth[first][:-1]], *changed[first + 1 :]]
    extra = [*changed[:first], [[*truth[first], "no_such_function(x=1)"]], *changed[first + 1 :]]
    return [("truth", changed), ("drop_last_call", dropped), ("extra_unknown_call", extra)]


def measure_multi_turn(rounds: int) -> dict[str, Any]:
    """The execution scorer vs BFCL's multi_turn_checker: agreement and episodes/s, executions/s."""
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    tasks = [t for t in load_multi_turn(BFCL_DIR) if t.problem is None]
    episodes = [(task, steps) for task in tasks for _, steps in multi_turn_variants(task)]
    names = itertools.count()

    def reference(task: MultiTurnTask, steps: list[list[list[str]]]) -> bool:
        entry = {"id": task.id, "initial_config": task.initial_config, "involved_classes": list(task.involved_classes)}
        return bool(multi_turn_checker(steps, task.ground_truth, entry, task.category, f"bench{next(names)}")["valid"])

    ours = [score_multi_turn(task, steps) for task, steps in episodes]
    agree = sum(o.valid == reference(t, s) for o, (t, s) in zip(ours, episodes, strict=True))
    executions = sum(o.executions for o in ours)
    rates = paired_rates(
        {"bfcl_checker": lambda e: reference(*e), "scorer": lambda e: score_multi_turn(*e)},
        episodes,  # type: ignore[arg-type]
        rounds,
    )
    return {
        "record": "multi_turn_scorer",
        "tasks": len(tasks),
        "episodes": len(episodes),
        "agreement": agree,
        "valid_episodes": sum(o.valid for o in ours),
        "scorer_episodes_per_cpu_s": round(rates["scorer"], 1),
        "bfcl_episodes_per_cpu_s": round(rates["bfcl_checker"], 1),
        "scorer_executions_per_cpu_s": round(rates["scorer"] * executions / len(episodes), 1),
        "ratio_scorer_vs_bfcl": round(rates["scorer"] / rates["bfcl_checker"], 3),
    }


def _policy_client(backend: str, cache_dir: Path, threads: int) -> Any:
    """The local SmolLM2-135M as an LLM client: llama.cpp (the `local` profile's LLM resource, fresh cache) or
    the same GGUF weights in torch (`training.rl.policy.PolicyClient`, greedy) where llama.cpp cannot run."""
    if backend == "torch":
        import torch

        from ops.common.packaged_models import smollm2_model_path
        from training.rl.config import PolicyConfig
        from training.rl.policy import PolicyClient, load_policy

        torch.set_num_threads(threads)
        policy = load_policy(PolicyConfig(base_model=str(smollm2_model_path())))
        return PolicyClient(policy, "SmolLM2-135M-Instruct (torch)", batch_size=2, max_prompt_tokens=2048)
    from ops.common.llm import ChatRequest
    from resources.llm import LLMResource

    llm = LLMResource(cache_path=str(cache_dir / "llm_cache.sqlite"), n_threads=threads)
    llm.chat([ChatRequest(messages=({"role": "user", "content": "Say OK."},), max_tokens=1, request_id="warmup")])
    return llm


def measure_policy(tasks_n: int, max_steps: int, max_tokens: int, threads: int, backend: str) -> dict[str, Any]:
    """The local model plays multi_turn_base tasks against the backends; accuracy and executions/s."""
    from ops.tooluse.multi_turn_policy import play

    tasks = [t for t in load_multi_turn(BFCL_DIR) if t.problem is None][:tasks_n]
    with tempfile.TemporaryDirectory(prefix="bfcl_multi_turn_") as tmp:
        client = _policy_client(backend, Path(tmp), threads)
        started = time.perf_counter()
        played = play(tasks, client.chat, max_steps=max_steps, max_tokens=max_tokens)
        wall_s = time.perf_counter() - started
    executions = sum(e.env.executions for e, _ in played)
    return {
        "record": "multi_turn_policy",
        "model": client.model_id,
        "backend": backend,
        "note": "135M local model: a pipeline check, not evidence of multi-turn ability",
        "tasks": len(played),
        "accuracy": round(sum(s.valid for _, s in played) / max(len(played), 1), 4),
        "turns_passed": sum(s.turns_passed for _, s in played),
        "turns": sum(s.turns for _, s in played),
        "errors": [s.error for _, s in played],
        "model_calls": sum(len(step) for e, _ in played for turn in e.steps for step in turn),
        "policy_executions": executions,
        "wall_s": round(wall_s, 2),
        "policy_executions_per_s": round(executions / wall_s, 3) if wall_s else 0.0,
    }


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Machine record, then each selected part, then a summary with the load average."""
    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    reference = load_reference()
    if reference is None:
        raise SystemExit("bfcl-eval is not installed (make install adds it): nothing to compare with")
    if "differential" in args.parts:
        emit(measure_differential(reference, args.stride), records)
    if "throughput" in args.parts:
        emit(measure_throughput(reference, args.rounds, args.stride), records)
    if "multi_turn" in args.parts:
        emit(measure_multi_turn(args.rounds), records)
    if "policy" in args.parts:
        emit(measure_policy(args.tasks, args.max_steps, args.max_tokens, args.llm_threads, args.backend), records)
    emit({"record": "summary", "load_average_end": list(os.getloadavg())}, records)
    return records


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stride", type=int, default=1, help="use every n-th probe (1: all)")
    parser.add_argument("--tasks", type=int, default=2, help="multi-turn tasks the local model plays")
    parser.add_argument("--max-steps", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--llm-threads", type=int, default=1)
    parser.add_argument("--backend", choices=("llama_cpp", "torch"), default="llama_cpp")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write the results file."""
    args = _parse_args(argv)
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
