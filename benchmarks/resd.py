"""RESD figures: held-out success per round and per rollouts spent for base, playbook-in-context, RESD and GRPO.

Each round runs the same functions the Dagster assets run (`ops.agents.resd`, `training.rl`): the student's
rollouts on the training tasks of each family (`tooluse`: bundled BFCL sample, BFCL-style AST reward and its
feedback; `shoptrajqa`: the long-context ShopTrajQA slice in `samples/resd_shoptrajqa`, exact match), the
profile LLM's reflections on the failures (JSON schema; invalid answers quarantined), the playbook update
(deltas, MiniLM merge, prune), self-distillation from the playbook-prompted self-teacher into the student's
LoRA adapter (continued across rounds), and GRPO with `--grpo-generations` samples per prompt given as many
rollouts as RESD spent (continued across rounds). Every arm then answers the held-out tasks once (greedy).

Internalization = (RESD - base) / (playbook - base), undefined (null) when the playbook gave no gain.
Policies: the packaged SmolLM2-135M (default; its success rates are a pipeline check, not evidence about the
method) or `--policy tiny` (a tiny random Llama, for the smoke test). The machine is shared: load averages
are recorded at the start and the end.

    python -m benchmarks.resd [--rounds 2] [--train-tasks 4] [--eval-tasks 4] [--tokens 32] [--distill-steps 2]
        [--families tooluse,shoptrajqa]   # tasks per family

Prints one JSON object per line and writes them all to `benchmarks/results/resd.json`.
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

import numpy as np

from benchmarks.embedding_throughput import emit, machine_info, peak_rss_mib
from ops.common.llm import LLMClient

RESULTS = Path(__file__).resolve().parent / "results" / "resd.json"
BFCL = Path(__file__).resolve().parents[1] / "samples" / "bfcl_v3"
SHOPTRAJQA = Path(__file__).resolve().parents[1] / "samples" / "resd_shoptrajqa" / "rl_dataset.jsonl"


def environment_lines() -> list[dict[str, Any]]:
    """The RL environment of the bundled BFCL sample (what `tool_rl_environment` writes, without augmentations)."""
    from ops.tooluse.backends import SimulatedBackend
    from ops.tooluse.bfcl import load_single_turn
    from ops.tooluse.policy_eval import rl_environment_rows
    from ops.tooluse.trajectories import bfcl_trajectories

    examples = load_single_turn(BFCL)
    base, _ = bfcl_trajectories(examples, SimulatedBackend(f for ex in examples for f in ex.functions))
    return rl_environment_rows(base)


def family_tasks(spec: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training and held-out tasks of every family in `spec["families"]`, `train_tasks` / `eval_tasks` each."""
    import polars as pl

    from ops.agents.resd.rollouts import TOOLUSE, shoptrajqa_tasks, split_family, tooluse_tasks
    from ops.shopping.evaluation import RL_SCHEMA

    train, held_out = [], []
    for family in spec["families"].split(","):
        if family == TOOLUSE:
            tasks, max_chars = tooluse_tasks(environment_lines()), spec["max_prompt_chars"]
        else:
            rows = [json.loads(line) for line in SHOPTRAJQA.read_text().splitlines() if line.strip()]
            tasks, max_chars = shoptrajqa_tasks(pl.DataFrame(rows, schema=RL_SCHEMA)), 0
        mine, theirs = split_family(tasks, spec["train_tasks"], spec["eval_tasks"], max_chars)
        train, held_out = train + mine, held_out + theirs
    return train, held_out


def _policy(spec: dict[str, Any], workdir: Path) -> Any:
    from training.rl.config import PolicyConfig

    if spec["policy"] == "tiny":
        from training.webdocs.generative_student import byte_tokenizer, tiny_base

        return PolicyConfig(base_model=str(tiny_base(workdir / "tiny", byte_tokenizer(), layers=2, hidden=64)))
    from assets.training_metadata import policy_base

    return PolicyConfig(base_model=policy_base(""))


def run_rounds(
    spec: dict[str, Any], llm: LLMClient, embed: Callable[[Sequence[str]], np.ndarray], workdir: Path
) -> list[dict[str, Any]]:
    """One record per round: success and cumulative rollouts per arm, internalization, playbook counts."""
    import polars as pl
    import torch

    from assets.agents.resd import evaluate_arms, grpo_arm
    from ops.agents.resd.evaluation import EVAL_ARMS, internalization, success_summary
    from ops.agents.resd.playbook import Playbook
    from ops.agents.resd.reflections import parse_reflections, reflection_requests
    from ops.agents.resd.rollouts import failed_student_rollouts, rollout_round
    from ops.agents.resd.teacher import distillation_rows
    from ops.agents.resd.updates import add_deltas, tag_deltas, update_playbook
    from resources.scale import ScaleResource
    from training.rl.policy import generate, load_policy
    from training.rl.self_distillation import SelfDistillationSettings, teacher_budget, train_self_distillation

    torch.set_num_threads(spec["threads"])
    policy = _policy(spec, workdir)
    train, held_out = family_tasks(spec)
    count, budget = teacher_budget(policy, spec["tokens"])
    scale = ScaleResource(resd_grpo_generations=spec["grpo_generations"], resd_completion_tokens=spec["tokens"])
    book, student, grpo_adapter = Playbook(), None, None
    spent = dict.fromkeys(EVAL_ARMS, 0)
    records = []
    for round_number in range(1, spec["rounds"] + 1):
        started = time.perf_counter()
        learner = load_policy(policy, student)
        rollouts = rollout_round(
            train,
            lambda prompts, model=learner: generate(model, prompts, spec["tokens"]),
            book,
            round_number,
            str(round_number),
        )
        failed = failed_student_rollouts(rollouts)
        reflected = parse_reflections(failed, llm.chat(reflection_requests(failed, spec["reflection_tokens"])), "llm")
        deltas = add_deltas(reflected.kept) + tag_deltas(rollouts)
        state = workdir / f"playbook-{round_number}.json"
        update = update_playbook(book, deltas, embed, spec["merge_threshold"], spec["prune_at"], state)
        book = update.playbook
        rows, contexts = distillation_rows(rollouts, reflected.kept, book, count, budget)
        distilled = 0
        if rows:
            settings = SelfDistillationSettings(
                policy,
                max_steps=spec["distill_steps"],
                prompts_per_step=min(2, len(rows)),
                max_completion_length=spec["tokens"],
            )
            result = train_self_distillation(rows, settings, workdir / f"sd-{round_number}", init_adapter=student)
            student, distilled = result.adapter_dir, settings.max_steps * settings.prompts_per_step
        spent["playbook"] += rollouts.height
        spent["resd"] += rollouts.height + distilled
        grpo_adapter, grpo_spent = grpo_arm(
            train, rollouts.height + distilled, policy, scale, 1, 0.0, workdir / f"grpo-{round_number}", grpo_adapter
        )
        spent["grpo"] += grpo_spent
        files = {p.name: p.read_bytes() for p in student.iterdir() if p.is_file()} if student else {}
        scored = evaluate_arms(held_out, book, policy, files, grpo_adapter, spec["tokens"], round_number)
        summary = success_summary(scored, spent)
        by_family = scored.group_by("family", "arm").agg((pl.col("reward") >= 1.0).mean().round(4).alias("rate"))
        rates = dict(zip(summary["arm"], summary["success_rate"], strict=True))
        records.append(
            {
                "record": "round",
                "round": round_number,
                "success": {arm: round(rates[arm], 4) for arm in EVAL_ARMS},
                "rollouts": dict(spent),
                "internalization": internalization(rates["base"], rates["playbook"], rates["resd"]),
                "held_out_tasks": len(held_out),
                "success_by_family": {
                    f"{row['family']}/{row['arm']}": row["rate"] for row in by_family.sort("family", "arm").to_dicts()
                },
                "failures": failed.height,
                "reflections_kept": reflected.kept.height,
                "reflections_quarantined": reflected.quarantined.height,
                "playbook_bullets": len(book.bullets),
                "helpful_total": sum(b.helpful for b in book.bullets),
                "harmful_total": sum(b.harmful for b in book.bullets),
                "merged": len(update.merges),
                "pruned": len(update.pruned),
                "bullets_cut_for_window": sum(len(c["cut"]) for c in contexts),
                "distillation_rows": len(rows),
                "seconds": round(time.perf_counter() - started, 1),
                "student_success_on_train": round(
                    float(rollouts.filter(pl.col("arm") == "student")["reward"].mean()), 4
                ),
            }
        )
    return records


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Machine record, one record per round, the end record (load, peak RSS)."""
    from pipelines.profiles import build_resources

    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    resources = build_resources("local")
    spec = {key: value for key, value in vars(args).items() if key != "out"}
    with tempfile.TemporaryDirectory(prefix="resd_") as tmp:
        for record in run_rounds(spec, resources["llm"], resources["embedder"].embed_passages, Path(tmp)):
            emit({**record, "note": "SmolLM2-135M: a pipeline check, not evidence about RESD"}, records)
    end = {"load_average_at_end": [round(x, 2) for x in os.getloadavg()], "peak_rss_mib": peak_rss_mib()}
    emit({"record": "end", **end}, records)
    return records


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policy", choices=("smollm2", "tiny"), default="smollm2")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--families", default="tooluse,shoptrajqa", help="comma-separated task families")
    parser.add_argument("--train-tasks", type=int, default=4, help="per family")
    parser.add_argument("--eval-tasks", type=int, default=4, help="per family")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--reflection-tokens", type=int, default=96)
    parser.add_argument("--distill-steps", type=int, default=2)
    parser.add_argument("--grpo-generations", type=int, default=8)
    parser.add_argument("--merge-threshold", type=float, default=0.9)
    parser.add_argument("--prune-at", type=int, default=2)
    parser.add_argument("--max-prompt-chars", type=int, default=900)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write the results file."""
    args = _parse_args(argv)
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
