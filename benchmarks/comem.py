"""CoMem: end-to-end latency of full history vs synchronous vs k-step-off asynchronous memory, with success.

Two single-threaded llama.cpp processes (agent, memory model; the packaged SmolLM2-135M GGUF) play BFCL
multi-turn tasks under every condition, task by task (conditions interleaved, so load drifts hit all alike).
Reported per condition: success (BFCL execution verdict) and turn pass rate, mean end-to-end and
critical-path seconds per episode, memory-model tokens on vs off the critical path, memory seconds hidden
behind the agent; and the latency ratio full-history / condition (the paper reports 1.4x on SWE-Bench-Verified).
The 135M model's success is a pipeline check, not evidence; the latency ratios are real measurements on a
shared, loaded 2-core machine (load averages in the records).

    python -m benchmarks.comem [--tasks 2] [--max-steps 3] [--agent-tokens 48] [--memory-tokens 48]
                               [--conditions full k0 k1 k2 k4]

Prints one JSON object per line and writes them to `benchmarks/results/comem.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.embedding_throughput import emit
from ops.agents.comem.bfcl_env import PlaySettings, opening_prompt, play_task
from ops.agents.comem.engine import ModelProcess, warm_up
from ops.agents.comem.episodes import EpisodeStore, episode_frame, play_all
from ops.agents.comem.report import condition_summary
from ops.agents.comem.scheduler import Condition
from ops.common.llm import ChatRequest, ChatResult
from ops.common.packaged_models import smollm2_model_path
from ops.tooluse.multi_turn import MultiTurnTask, load_multi_turn

REPO = Path(__file__).resolve().parent.parent
BFCL_DIR = REPO / "samples" / "bfcl_v3"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "comem.json"
NOTE = "success: local SmolLM2-135M, a pipeline check, not evidence; latencies: measured on a shared machine"


def pick_tasks(count: int) -> list[MultiTurnTask]:
    """The first `count` scorable multi_turn_base tasks in id order (the longer ones: 3+ user turns)."""
    tasks = [t for t in load_multi_turn(BFCL_DIR) if t.problem is None and len(t.turns) >= 3]
    return sorted(tasks, key=lambda t: int(t.id.rsplit("_", 1)[1]))[:count]


def measure(
    tasks: Sequence[MultiTurnTask],
    conditions: Sequence[str],
    agent: Callable[[ChatRequest], ChatResult],
    memory: Callable[[ChatRequest], Future[ChatResult]],
    settings: PlaySettings,
    prepare: Callable[[MultiTurnTask], None] | None = None,
) -> list[dict[str, Any]]:
    """One record per condition and a summary record with the latency ratios and token shares; `prepare` runs
    before each task (caches its prompt prefix in the agent, so the first condition played pays no extra)."""
    parsed = [Condition.parse(c) for c in conditions]
    with tempfile.TemporaryDirectory(prefix="comem_bench_") as tmp:
        store = EpisodeStore(tmp)
        records, _ = play_all(tasks, parsed, lambda t, c: play_task(t, c, agent, memory, settings), store, prepare)
    table = condition_summary(episode_frame(records))
    rows = [
        {"record": "condition", **{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, "note": NOTE}
        for row in table.iter_rows(named=True)
    ]
    async_rows = table.filter(pl.col("k") >= 1)
    on, off = int(table["memory_tokens_on_path"].sum()), int(table["memory_tokens_off_path"].sum())
    summary = {
        "record": "summary",
        "tasks": len(tasks),
        "latency_ratio_full_over": {r["condition"]: round(r["latency_ratio_full"] or 0.0, 4) for r in rows},
        "best_async_ratio": round(float(async_rows["latency_ratio_full"].max() or 0.0), 4),
        "memory_tokens_on_path": on,
        "memory_tokens_off_path": off,
        "async_memory_tokens_off_path_share": round(
            float(async_rows["memory_tokens_off_path"].sum())
            / max(float((async_rows["memory_tokens_on_path"] + async_rows["memory_tokens_off_path"]).sum()), 1.0),
            4,
        ),
        "note": NOTE,
    }
    return [*rows, summary]


def _parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--agent-tokens", type=int, default=48)
    parser.add_argument("--memory-tokens", type=int, default=48)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--conditions", nargs="+", default=["full", "k0", "k1", "k2", "k4"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write its records."""
    args = _parse_args(argv)
    records: list[dict[str, Any]] = []
    settings = PlaySettings(args.max_steps, args.agent_tokens, args.memory_tokens, args.timeout)
    emit(
        {
            "record": "machine",
            "cpu_count": os.cpu_count(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "model": smollm2_model_path().name,
            "settings": vars(args) | {"out": str(args.out)},
        },
        records,
    )
    started = time.perf_counter()
    with ModelProcess(smollm2_model_path()) as agent, ModelProcess(smollm2_model_path()) as memory:
        warm_up([agent, memory])
        prepare = lambda task: warm_up([agent], opening_prompt(task))  # noqa: E731
        for record in measure(pick_tasks(args.tasks), args.conditions, agent.chat, memory.submit, settings, prepare):
            emit(record, records)
    emit(
        {"record": "end", "seconds": round(time.perf_counter() - started, 1), "load_average_at_end": os.getloadavg()},
        records,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1))


if __name__ == "__main__":
    main()
