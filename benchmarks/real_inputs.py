"""Issue 20's real-input changes, measured on the bundled data: quality rules and currency-aware budgets.

1. Quality rules: per bundled web-doc shard, documents kept without and with the Gopher/C4/FineWeb rules,
   the share the rules refuse, the count per rule, and cleaning throughput (docs/s) with and without
   them (the ratio is the rules' cost).
2. Currency: the Amazon UK toys catalog re-priced in INR (x `--inr-rate`), customers simulated with the
   GBP budget defaults (what assay did before: raw numbers) and with the INR defaults of
   `ops.shopping.currencies`, against the GBP shop; purchases per customer, same seed and personas.

    python -m benchmarks.real_inputs [--customers 200] [--span-months 12]

Prints one JSON object per line and writes them to `benchmarks/results/real_inputs.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import polars as pl

from benchmarks.embedding_throughput import emit, machine_info
from benchmarks.shopping_simulator import DEFAULT_CATALOG, load_catalog, rule_rankings
from ops.shopping.personas import PersonaConfig, budget_defaults, categories_and_brands, generate_personas
from ops.shopping.simulator import SimulationConfig, build_catalog_index, simulate_cohort
from ops.webdocs.cleaning import CleaningRules, clean_documents
from ops.webdocs.corpus import quality_filter_effect, shard_summary
from ops.webdocs.reading import read_shard

REPO = Path(__file__).resolve().parents[1]
SHARDS = REPO / "samples" / "web_docs"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "real_inputs.json"


def quality_run(path: Path, limit: int | None = None) -> dict[str, Any]:
    """Kept documents and throughput of one shard without and with the quality rules."""
    raw = read_shard(path, path.name)
    raw = raw.head(limit) if limit else raw
    clean_documents(raw.head(5), CleaningRules())  # load the language model outside the timings
    timings, results = {}, {}
    for name, rules in (("without", CleaningRules(quality=None)), ("with", CleaningRules())):
        started = time.perf_counter()
        results[name] = clean_documents(raw, rules)
        timings[name] = time.perf_counter() - started
    effect = quality_filter_effect(shard_summary(results["with"].kept.lazy(), results["with"].quarantined.lazy()))
    row = effect.row(0, named=True)
    per_rule = {k: v for k, v in row.items() if k not in ("shard", "reached_quality_rules", "quality_filtered")}
    return {
        "record": "quality_rules",
        "shard": path.name,
        "rows_in": raw.height,
        "kept_without_rules": results["without"].kept.height,
        "kept_with_rules": results["with"].kept.height,
        "reached_quality_rules": row["reached_quality_rules"],
        "quality_filtered": row["quality_filtered"],
        **per_rule,
        "docs_per_s_without_rules": round(raw.height / timings["without"], 1),
        "docs_per_s_with_rules": round(raw.height / timings["with"], 1),
        "time_ratio_with_over_without": round(timings["with"] / timings["without"], 3),
    }


def purchases(catalog: pl.DataFrame, budget: tuple[float, float], customers: int, span_months: int) -> dict[str, Any]:
    """Purchases and spend of `customers` simulated in `catalog` with budgets drawn in `budget`."""
    categories, brands = categories_and_brands(catalog)
    config = PersonaConfig(cohort_size=customers, span_months=span_months, monthly_budget=budget, seed=0)
    personas = generate_personas("cohort-000", 0, config, categories, brands, budget_defaults("INR")[1])
    events = pl.concat(
        list(simulate_cohort(personas, build_catalog_index(catalog), rule_rankings(catalog), SimulationConfig()))
    )
    bought = events.filter(pl.col("event_type") == "purchase")
    return {"purchases": bought.height, "purchases_per_customer": round(bought.height / customers, 2)}


def currency_runs(customers: int, span_months: int, inr_rate: float) -> list[dict[str, Any]]:
    """The GBP shop, the INR shop with GBP budget numbers, and the INR shop with INR defaults."""
    gbp = load_catalog(DEFAULT_CATALOG)
    inr = gbp.with_columns((pl.col("price") * inr_rate).round(2), pl.lit("INR").alias("currency"))
    runs = [
        ("GBP shop, GBP defaults", gbp, budget_defaults("GBP")[0]),
        ("INR shop, GBP numbers (before)", inr, budget_defaults("GBP")[0]),
        ("INR shop, INR defaults (now)", inr, budget_defaults("INR")[0]),
    ]
    return [
        {
            "record": "currency",
            "run": name,
            "monthly_budget": list(budget),
            **purchases(catalog, budget, customers, span_months),
        }
        for name, catalog, budget in runs
    ]


def main(argv: list[str] | None = None) -> int:
    """Run both measurements and write the JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--span-months", type=int, default=12)
    parser.add_argument("--inr-rate", type=float, default=105.0)
    parser.add_argument("--doc-limit", type=int, default=0, help="documents per shard (0: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    for path in sorted(SHARDS.glob("*.jsonl")):
        emit(quality_run(path, args.doc_limit or None), records)
    for record in currency_runs(args.customers, args.span_months, args.inr_rate):
        emit(record, records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(record) + "\n" for record in records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
