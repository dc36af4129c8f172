"""RL trainer figures: the group filter on a toy reward, and COVERT's SFT -> GRPO on the tool-use data.

The questions it answers:
1. toy (tiny random Llama over bytes, reward = share of lowercase letters, `tests/rl_toy.py`): the reward
   curve over GRPO steps and the share of zero-variance groups per step, run twice from the same seed,
   with the group filter (`ZeroVarianceFilter`) and without it (`group_filter=None`); seconds per step and
   generated tokens/s. Both runs see the same prompts; the baseline for the filter is the unfiltered run.
2. tool (the packaged SmolLM2-135M-Instruct, float32 on CPU): LoRA SFT on the training split of the bundled
   BFCL trajectories (`ops.tooluse.training_data`), then GRPO from that adapter on `tool_reward`, then
   base vs SFT vs SFT+GRPO on the held-out split (the held-out category and the held-out ids), accuracy per
   category with the number of examples and a 95% bootstrap interval; seconds per GRPO step, generated
   tokens/s and peak RSS. A handful of steps of a 135M model cannot show the paper's SFT+RL >= SFT >= base:
   the figures are the pipeline's cost and a harness check, not evidence about the method.

Each part runs in a fresh subprocess (its peak RSS is its own). The machine is shared: load averages are
recorded at the start and end.

    python -m benchmarks.rl_training [--parts toy tool] [--toy-steps 16] [--sft-steps 4] [--grpo-steps 3]

Prints one JSON object per line and writes them all to `benchmarks/results/rl_training.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.embedding_throughput import emit, machine_info, peak_rss_mib

RESULTS = Path(__file__).resolve().parent / "results" / "rl_training.json"
BFCL = Path(__file__).resolve().parents[1] / "samples" / "bfcl_v3"
PARTS = ("toy", "tool")


def _curve(result: Any) -> dict[str, list[float]]:
    keys = ("reward_mean", "zero_variance_share", "dropped_groups", "step_seconds", "tokens_per_second")
    return {key: [round(row.get(key, float("nan")), 4) for row in result.steps] for key in keys}


def measure_toy(spec: dict[str, Any]) -> dict[str, Any]:
    """Same seed and prompts, GRPO with and without the zero-variance group filter, on the toy reward."""
    from tests.rl_toy import target_share, tiny_policy, toy_rows, toy_settings
    from training.rl.trainer import train_grpo

    workdir = Path(spec["workdir"])
    policy = tiny_policy(workdir)
    runs = {}
    for name, group_filter in (("filtered", "default"), ("unfiltered", None)):
        kwargs = {} if group_filter == "default" else {"group_filter": None}
        started = time.perf_counter()
        result = train_grpo(toy_rows(), [target_share], toy_settings(policy, spec["steps"]), workdir / name, **kwargs)
        runs[name] = {**_curve(result), "seconds": round(time.perf_counter() - started, 2)}
    return {"record": "toy", "steps": spec["steps"], "runs": runs, "peak_rss_mib": peak_rss_mib()}


def _tool_data(spec: dict[str, Any]) -> tuple[pl.DataFrame, pl.DataFrame, list[dict[str, Any]]]:
    from ops.tooluse.backends import SimulatedBackend
    from ops.tooluse.bfcl import load_single_turn
    from ops.tooluse.policy_eval import rl_environment_rows
    from ops.tooluse.training_data import HELDOUT, TRAIN, ToolSplit, all_trajectories, assign_split, ast_scored
    from ops.tooluse.trajectories import bfcl_trajectories

    examples = load_single_turn(BFCL)
    base, _ = bfcl_trajectories(examples, SimulatedBackend(f for ex in examples for f in ex.functions))
    rows = ast_scored(assign_split(all_trajectories(base, base.clear()), ToolSplit()))
    train, heldout = rows.filter(pl.col("split") == TRAIN), rows.filter(pl.col("split") == HELDOUT)
    return train, heldout, rl_environment_rows(train.drop("split"))


def measure_tool(spec: dict[str, Any]) -> dict[str, Any]:
    """SFT -> GRPO of SmolLM2-135M on the tool data, then base/SFT/SFT+GRPO on held-out examples."""
    import torch

    from ops.common.packaged_models import smollm2_model_path
    from ops.tooluse.reward import tool_reward
    from ops.tooluse.training_data import grpo_rows, policy_comparison, score_checkpoints, sft_rows, shortest
    from training.rl.config import GRPOSettings, PolicyConfig, SFTSettings
    from training.rl.policy import PolicyClient, load_policy
    from training.rl.trainer import train_grpo, train_sft

    torch.set_num_threads(spec["threads"])
    workdir, chars = Path(spec["workdir"]), spec["max_prompt_chars"]
    train, heldout, environment = _tool_data(spec)
    policy = PolicyConfig(base_model=str(smollm2_model_path()))
    sft_data = sft_rows(shortest(train, spec["sft_examples"], chars))
    sft = train_sft(sft_data, SFTSettings(policy, max_steps=spec["sft_steps"], batch_size=2), workdir / "sft")
    prompts = shortest(train, spec["grpo_steps"] * 2, chars)
    settings = GRPOSettings(
        policy, max_steps=spec["grpo_steps"], prompts_per_step=2, num_generations=4, max_completion_length=32
    )
    rows = grpo_rows(environment, set(prompts["trajectory_id"]))
    grpo = train_grpo(
        rows, [tool_reward], settings, workdir / "grpo", init_adapter=sft.adapter_dir, reward_columns=["oracle"]
    )
    sample = pl.concat([shortest(group, spec["eval_per_category"], 0) for _, group in heldout.group_by("category")])
    clients = {
        "base": PolicyClient(load_policy(policy), "base"),
        "sft": PolicyClient(load_policy(policy, sft.adapter_dir), "sft"),
        "sft_grpo": PolicyClient(load_policy(policy, grpo.adapter_dir), "sft_grpo"),
    }
    started = time.perf_counter()
    table = policy_comparison(score_checkpoints(sample.drop("split"), clients, spec["eval_tokens"]))
    return {
        "record": "tool",
        "sft_steps": spec["sft_steps"],
        "sft_loss": [round(row["loss"], 4) for row in sft.steps],
        "sft_seconds": round(sft.seconds, 1),
        "grpo_steps": spec["grpo_steps"],
        "grpo": _curve(grpo),
        "grpo_seconds": round(grpo.seconds, 1),
        "eval_seconds": round(time.perf_counter() - started, 1),
        "heldout_accuracy": table.with_columns(pl.col("accuracy", "ci_low", "ci_high").round(4)).to_dicts(),
        "peak_rss_mib": peak_rss_mib(),
    }


WORKERS = {"toy": measure_toy, "tool": measure_tool}


def worker_specs(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    """One spec per part; each runs in its own subprocess and folder."""
    common = {"threads": args.threads, "max_prompt_chars": args.max_prompt_chars}
    specs = {
        "toy": {"part": "toy", "steps": args.toy_steps},
        "tool": {
            "part": "tool",
            "sft_steps": args.sft_steps,
            "sft_examples": args.sft_examples,
            "grpo_steps": args.grpo_steps,
            "eval_per_category": args.eval_per_category,
            "eval_tokens": args.eval_tokens,
        },
    }
    return [{**common, **specs[part], "workdir": str(workdir / part)} for part in args.parts]


def _run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    command = [sys.executable, "-m", "benchmarks.rl_training", "--worker", json.dumps(spec)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Machine record, one record per part, the load at the end."""
    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    with tempfile.TemporaryDirectory(prefix="rl_training_") as tmp:
        for spec in worker_specs(args, Path(tmp)):
            emit(_run_worker(spec), records)
    emit({"record": "end", "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}, records)
    return records


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--toy-steps", type=int, default=16)
    parser.add_argument("--sft-steps", type=int, default=4)
    parser.add_argument("--sft-examples", type=int, default=8)
    parser.add_argument("--grpo-steps", type=int, default=3)
    parser.add_argument("--eval-per-category", type=int, default=2)
    parser.add_argument("--eval-tokens", type=int, default=48)
    parser.add_argument("--max-prompt-chars", type=int, default=900)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark (or, with --worker, one part) and write the results file."""
    args = _parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(WORKERS[spec["part"]](spec)), flush=True)
        return
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
