"""ShopTrajQA figures: rendering tokens/s, gold-SQL latency in the sandbox, agent vs long-context accuracy.

The questions it answers:
1. How fast are customer histories rendered into token-budgeted text with the model's real tokenizer
   (SmolLM2's GGUF vocabulary, no weights), and what share of the questions stays answerable at 2k,
   8k, 32k and 64k tokens? No budget is skipped here (no context window applies), so every budget shows.
2. What does one question cost in the Customer Agent's SQL tool? Every gold SQL of every simulated
   customer runs through `CustomerSandbox.run_query` (one sandbox per customer, as the agent sees it);
   the sandbox build is timed apart from the queries, and every result must equal the gold answer.
3. Does the evaluation harness run end to end with a real local model? The long-context baseline and
   the Customer Agent answer the same few questions with SmolLM2-135M on llama.cpp, exactly as the
   `customer_agent_eval` asset does. SmolLM2-135M's answers are near-random: the accuracy figure
   shows that the harness works and what it costs per question, not how the two methods compare.

Customers are simulated from the bundled Amazon UK toys catalog (36 months, one cohort per 1,000
customers, the largest cohort the profiles use); search rankings come from the deterministic rule of
`benchmarks.shopping_simulator`. Rendering and the model evaluation use the first customers only
(`--render-customers`, `--eval-customers`): the tokenizer and the 135M model on two CPU cores are what
limits them.

Defaults keep `make bench` within about 6 minutes on a 2-core machine that other work shares: a full
cohort of 1,000 customers took 4.7 min for questions and SQL alone there, so the SQL figure runs over
500 (`--customers 1000` for the whole cohort); 4 questions are evaluated, as many as the local
profile asks per cohort (`--eval-questions 8` for more); llama.cpp runs on one thread, because on a
shared 2-core machine its second thread waits on the first and prompts ran about 1.8x slower with two
(`--llm-threads 0` for all cores, as the pipeline does).

    python -m benchmarks.shoptrajqa [--customers 1000] [--render-customers 30] [--eval-questions 8]

Prints one JSON object per line (machine, simulation, rendering, sql_latency, agent_eval, summary)
and writes them all to `benchmarks/results/shoptrajqa.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from assets.shopping.qa import RESERVE_TOKENS
from benchmarks.embedding_throughput import emit, machine_info, peak_rss_mib
from benchmarks.shopping_simulator import RANKING_NOTE, rule_rankings
from ops.common.llm import ChatRequest
from ops.shopping.agent import AgentItem, run_agent
from ops.shopping.catalog import bundled_sources, load_catalog
from ops.shopping.evaluation import (
    AGENT,
    EVAL_SCHEMA,
    LONG_CONTEXT,
    accuracy_by_budget,
    agent_rows,
    evaluation_questions,
    long_context_batch,
    long_context_rows,
)
from ops.shopping.personas import PersonaConfig, categories_and_brands, generate_personas
from ops.shopping.questions import generate_questions
from ops.shopping.rendering import answerable, render_contexts
from ops.shopping.sandbox import CustomerSandbox, result_mismatch
from ops.shopping.simulator import SimulationConfig, build_catalog_index, simulate_cohort
from resources.llm import LLMResource

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CATALOGS = REPO / "samples" / "shopping"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "shoptrajqa.json"
COHORT_SIZE = 1_000
MODEL_NOTE = (
    "SmolLM2-135M's answers are near-random: these accuracies show that the evaluation harness runs end to "
    "end and what it costs per question, not a comparison of the two methods"
)


class CountingTokenizer:
    """Wraps a `count_tokens` function and adds up what it was asked: calls, texts and tokens."""

    def __init__(self, count_tokens: Any) -> None:
        self._count_tokens = count_tokens
        self.calls = 0
        self.texts = 0
        self.tokens = 0

    def __call__(self, texts: Sequence[str]) -> list[int]:
        counts = self._count_tokens(texts)
        self.calls += 1
        self.texts += len(texts)
        self.tokens += sum(counts)
        return counts


def latency_summary(seconds: Sequence[float]) -> dict[str, Any]:
    """Count, p50, p95, mean and max of a list of durations, in milliseconds."""
    if not seconds:
        raise ValueError("latency_summary needs at least one duration")
    values = np.asarray(seconds, dtype=float) * 1000.0
    p50, p95 = np.percentile(values, [50, 95])
    return {
        "n": int(values.size),
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "mean_ms": round(float(values.mean()), 3),
        "max_ms": round(float(values.max()), 3),
    }


def answerable_shares(questions: pl.DataFrame, contexts: pl.DataFrame, budgets: Sequence[int]) -> dict[str, float]:
    """Per budget: answerable (question, budget) pairs over all questions of the rendered customers."""
    customers = contexts.get_column("customer_id").unique().implode()
    asked = questions.filter(pl.col("customer_id").is_in(customers))
    if asked.is_empty():
        raise ValueError("the rendered customers have no questions")
    per_budget = Counter(answerable(asked, contexts).get_column("budget_tokens").to_list())
    return {str(budget): round(per_budget[budget] / asked.height, 4) for budget in budgets}


def simulate(args: argparse.Namespace) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]]:
    """Products of the simulated shop, every customer's events, and a record of the simulation."""
    started = time.perf_counter()
    products = load_catalog(bundled_sources(args.catalogs)[0]).products
    index = build_catalog_index(products)
    rankings = rule_rankings(products)
    categories, brands = categories_and_brands(products)
    config = SimulationConfig(seed=args.seed)
    frames = []
    for cohort_index, start in enumerate(range(0, args.customers, COHORT_SIZE)):
        size = min(COHORT_SIZE, args.customers - start)
        persona_config = PersonaConfig(cohort_size=size, span_months=args.span_months, seed=args.seed)
        personas = generate_personas(f"cohort-{cohort_index:03d}", cohort_index, persona_config, categories, brands)
        frames.extend(simulate_cohort(personas, index, rankings, config))
    events = pl.concat(frames)
    seconds = time.perf_counter() - started
    per_customer = events.group_by("customer_id").len().get_column("len")
    record = {
        "record": "simulation",
        "catalog_products": products.height,
        "customers": args.customers,
        "span_months": args.span_months,
        "events": events.height,
        "events_per_customer": {
            "mean": round(float(per_customer.mean()), 1),
            "min": int(per_customer.min()),
            "max": int(per_customer.max()),
        },
        "seconds": round(seconds, 2),
        "rankings": RANKING_NOTE,
    }
    return products, events, record


def first_customers(events: pl.DataFrame, n: int) -> pl.DataFrame:
    """The events of the first `n` customers by id."""
    ids = events.get_column("customer_id").unique().sort().head(n).implode()
    return events.filter(pl.col("customer_id").is_in(ids))


def measure_rendering(
    events: pl.DataFrame, products: pl.DataFrame, questions: pl.DataFrame, args: argparse.Namespace
) -> dict[str, Any]:
    """Render the first customers at every budget with the real tokenizer (nothing skipped); rates and shares."""
    chosen = first_customers(events, args.render_customers)
    with tempfile.TemporaryDirectory(prefix="shoptrajqa_tokenizer_") as tmp:
        llm = LLMResource(cache_path=str(Path(tmp) / "llm_cache.sqlite"))
        started = time.perf_counter()
        llm.count_tokens(["warm up: load the GGUF vocabulary"])
        tokenizer_load_s = time.perf_counter() - started
        counter = CountingTokenizer(llm.count_tokens)
        started = time.perf_counter()
        contexts = render_contexts(chosen, products, args.render_budgets, counter, None, RESERVE_TOKENS)
        seconds = time.perf_counter() - started
        model_id = llm.model_id
        llm.close()
    rendered = contexts.filter(pl.col("status") == "rendered")
    rendered_tokens = int(rendered.get_column("tokens").sum())
    per_budget = {
        str(budget): {
            "rendered": group.height,
            "cut": int(group.get_column("cut").sum()),
            "mean_tokens": round(float(group.get_column("tokens").mean()), 1),
            "mean_events_kept": round(float(group.get_column("events_kept").mean()), 1),
        }
        for (budget,), group in rendered.group_by("budget_tokens", maintain_order=True)
    }
    return {
        "record": "rendering",
        "tokenizer": f"{model_id} (GGUF vocabulary only)",
        "customers": chosen.get_column("customer_id").n_unique(),
        "events": chosen.height,
        "budgets": list(args.render_budgets),
        "skipped": contexts.height - rendered.height,
        "tokenizer_load_s": round(tokenizer_load_s, 2),
        "seconds": round(seconds, 2),
        "rendered_tokens": rendered_tokens,
        "rendered_tokens_per_s": round(rendered_tokens / seconds),
        "tokens_counted": counter.tokens,
        "texts_counted": counter.texts,
        "tokenizer_calls": counter.calls,
        "tokens_counted_per_s": round(counter.tokens / seconds),
        "per_budget": per_budget,
        "answerable_share": answerable_shares(questions, contexts, args.render_budgets),
    }


def measure_sql(events: pl.DataFrame, products: pl.DataFrame, questions: pl.DataFrame) -> dict[str, Any]:
    """Every gold SQL through its customer's sandbox: build and query latencies, mismatches against gold."""
    by_customer = events.partition_by("customer_id", as_dict=True)
    builds: list[float] = []
    latencies: list[float] = []
    reported: list[float] = []
    mismatches: list[dict[str, str]] = []
    for (customer_id,), asked in questions.group_by("customer_id", maintain_order=True):
        started = time.perf_counter()
        sandbox = CustomerSandbox(by_customer[(customer_id,)], products)
        builds.append(time.perf_counter() - started)
        with sandbox:
            for row in asked.iter_rows(named=True):
                started = time.perf_counter()
                observation = sandbox.run_query(row["sql"])
                latencies.append(time.perf_counter() - started)
                reported.append(observation.elapsed_s)
                reason = result_mismatch(observation, row["answer"], row["answer_type"])
                if reason is not None:
                    mismatches.append({"question_id": row["question_id"], "kind": row["kind"], "reason": reason})
    return {
        "record": "sql_latency",
        "customers": len(builds),
        "queries": len(latencies),
        "sandbox_build": {**latency_summary(builds), "total_s": round(sum(builds), 2)},
        "query_latency": {**latency_summary(latencies), "total_s": round(sum(latencies), 2)},
        "query_latency_reported_by_sandbox": latency_summary(reported),
        "mismatches": len(mismatches),
        "mismatch_examples": mismatches[:5],
        "note": "query latency: wall time of CustomerSandbox.run_query (refusal check, worker thread, execute, fetch)",
    }


def measure_agent_eval(
    events: pl.DataFrame, products: pl.DataFrame, questions: pl.DataFrame, args: argparse.Namespace
) -> dict[str, Any]:
    """Long-context baseline and Customer Agent on a few questions, as the `customer_agent_eval` asset runs them."""
    chosen_events = first_customers(events, args.eval_customers)
    with tempfile.TemporaryDirectory(prefix="shoptrajqa_llm_") as tmp:
        llm = LLMResource(cache_path=str(Path(tmp) / "llm_cache.sqlite"), n_ctx=args.n_ctx, n_threads=args.llm_threads)
        window = llm.context_window()
        contexts = render_contexts(chosen_events, products, args.eval_budgets, llm.count_tokens, window, RESERVE_TOKENS)
        pool = questions.filter(pl.col("customer_id").is_in(chosen_events.get_column("customer_id").unique().implode()))
        pairs = answerable(pool, contexts)
        chosen = evaluation_questions(pairs, args.eval_questions, args.seed)
        pairs = pairs.filter(pl.col("question_id").is_in(chosen))
        asked = pool.filter(pl.col("question_id").is_in(chosen))

        started = time.perf_counter()
        warmup = ChatRequest(messages=({"role": "user", "content": "Say OK."},), max_tokens=2, request_id="warmup")
        llm.chat([warmup])
        model_load_s = time.perf_counter() - started

        started = time.perf_counter()
        batch = long_context_batch(pairs, contexts)
        results = llm.chat([request for _, request in batch])
        rows = long_context_rows([pair for pair, _ in batch], results)
        long_context_s = time.perf_counter() - started

        by_id = {row["question_id"]: row for row in asked.iter_rows(named=True)}
        by_customer = chosen_events.partition_by("customer_id", as_dict=True)
        with ExitStack() as stack:
            sandboxes = {
                customer: stack.enter_context(CustomerSandbox(by_customer[(customer,)], products))
                for customer in asked.get_column("customer_id").unique().sort()
            }
            items = [AgentItem(qid, row["question"], sandboxes[row["customer_id"]]) for qid, row in by_id.items()]
            started = time.perf_counter()
            traces = run_agent(llm, items, max_steps=args.max_steps)
            agent_s = time.perf_counter() - started
        model_id = llm.model_id
        llm.close()
    rows += agent_rows(by_id, traces)
    evals = pl.DataFrame(rows, schema=EVAL_SCHEMA)
    outcomes = evals.group_by("method", "outcome").len().sort("method", "outcome")
    return {
        "record": "agent_eval",
        "model": model_id,
        "n_ctx": window,
        "llm_threads": args.llm_threads or "all cores",
        "pool_customers": args.eval_customers,
        "budgets": list(args.eval_budgets),
        "questions": len(chosen),
        "long_context_prompts": len(batch),
        "long_context_prompt_tokens": sum(result.prompt_tokens for result in results),
        "agent_max_steps": args.max_steps,
        "agent_model_calls": sum(trace.steps for trace in traces),
        "agent_queries": sum(len(trace.queries) for trace in traces),
        "accuracy_by_budget": accuracy_by_budget(evals).to_dicts(),
        "outcomes": {f"{method}:{outcome}": n for method, outcome, n in outcomes.iter_rows()},
        "model_load_s": round(model_load_s, 2),
        "seconds": {LONG_CONTEXT: round(long_context_s, 2), AGENT: round(agent_s, 2)},
        "seconds_per_question": {
            LONG_CONTEXT: round(long_context_s / max(len(chosen), 1), 2),
            AGENT: round(agent_s / max(len(chosen), 1), 2),
        },
        "long_context_seconds_per_prompt": round(long_context_s / max(len(batch), 1), 2),
        "note": MODEL_NOTE,
    }


def summarize(records: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The headline figures of the rendering, SQL and evaluation records."""
    rendering, sql, agent = records["rendering"], records["sql_latency"], records["agent_eval"]
    return {
        "record": "summary",
        "rendered_tokens_per_s": rendering["rendered_tokens_per_s"],
        "tokens_counted_per_s": rendering["tokens_counted_per_s"],
        "answerable_share": rendering["answerable_share"],
        "sql_customers": sql["customers"],
        "sql_query_p50_ms": sql["query_latency"]["p50_ms"],
        "sql_query_p95_ms": sql["query_latency"]["p95_ms"],
        "sandbox_build_p50_ms": sql["sandbox_build"]["p50_ms"],
        "sql_mismatches": sql["mismatches"],
        "accuracy_by_budget": agent["accuracy_by_budget"],
        "seconds_per_question": agent["seconds_per_question"],
        "note": MODEL_NOTE,
    }


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Machine record, simulation, rendering, SQL latency, agent evaluation, summary."""
    records: list[dict[str, Any]] = []
    machine = machine_info()
    machine["versions"] = {
        **machine["versions"],
        **{name: version(name) for name in ("polars", "duckdb", "llama_cpp_python")},
    }
    emit(machine, records)
    print(
        f"SQL latency over --customers {args.customers} x {args.span_months} months; rendering on the first "
        f"{args.render_customers} at budgets {args.render_budgets}; evaluation of {args.eval_questions} questions "
        f"from the first {args.eval_customers} at budgets {args.eval_budgets} ({args.llm_threads or 'all'} llama.cpp "
        "threads)",
        file=sys.stderr,
    )
    products, events, simulation = simulate(args)
    started = time.perf_counter()
    questions = generate_questions(events, products, args.questions_per_customer, args.seed)
    simulation["questions"] = questions.height
    simulation["question_generation_s"] = round(time.perf_counter() - started, 2)
    emit(simulation, records)
    named = {
        "rendering": measure_rendering(events, products, questions, args),
        "sql_latency": measure_sql(events, products, questions),
    }
    emit(named["rendering"], records)
    emit(named["sql_latency"], records)
    named["agent_eval"] = measure_agent_eval(events, products, questions, args)
    emit(named["agent_eval"], records)
    emit({**summarize(named), "peak_rss_mib": peak_rss_mib()}, records)
    records[0]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return records


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalogs", type=Path, default=DEFAULT_CATALOGS, help="the bundled samples/shopping")
    parser.add_argument("--customers", type=int, default=500, help="simulated customers, every gold SQL timed")
    parser.add_argument("--span-months", type=int, default=36)
    parser.add_argument("--questions-per-customer", type=int, default=10)
    parser.add_argument("--render-customers", type=int, default=30)
    parser.add_argument("--render-budgets", type=int, nargs="+", default=[2_048, 8_192, 32_768, 65_536])
    parser.add_argument("--eval-customers", type=int, default=30, help="customers whose questions may be asked")
    parser.add_argument("--eval-questions", type=int, default=4)
    parser.add_argument("--eval-budgets", type=int, nargs="+", default=[512, 2_048])
    parser.add_argument("--max-steps", type=int, default=4, help="agent turns (the local profile's)")
    parser.add_argument("--n-ctx", type=int, default=8_192)
    parser.add_argument("--llm-threads", type=int, default=1, help="llama.cpp threads (0: all cores)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and write the results file."""
    args = _parse_args(argv)
    config = {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items()}
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    by_name = {record["record"]: record for record in records}
    report = {"config": config, **{name: by_name[name] for name in by_name}}
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
