"""Shopping simulator throughput (events/s) and peak memory at 1k, 10k and 100k customers.

The question it answers: does `simulate_cohort` stay fast and keep memory flat as the number of
customers grows, when each cohort is simulated and written to Parquet before the next one starts?
Each scale runs in a fresh subprocess, so its peak RSS belongs to that scale alone: flat memory means
the same peak at 100k customers as at 1k. Cohorts of `--cohort-size` customers go to one Parquet
file each in a temporary folder, one row group per simulator batch.

The catalog is the bundled Amazon UK toys sample read plainly with polars (rows without a price
dropped, a keyword rule for consumables), and the search rankings come from a deterministic rule
(same leaf category, and brand for brand queries, ordered by review count, price or rating): the
vector index that ranks results in the pipeline is benchmarked elsewhere.

    python -m benchmarks.shopping_simulator [--scales 1000 10000 100000] [--span-months 12]

Prints one JSON object per line (machine, one run per scale, a summary) and writes them all to
`benchmarks/results/shopping_simulator.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import polars as pl
import psutil
import pyarrow.parquet as pq

from benchmarks.embedding_throughput import emit, machine_info, peak_rss_mib
from ops.shopping.personas import PersonaConfig, categories_and_brands, generate_personas
from ops.shopping.simulator import (
    BRAND_TEMPLATE,
    EVENT_SCHEMA,
    LEAF_TEMPLATES,
    SimulationConfig,
    build_catalog_index,
    search_queries,
    simulate_cohort,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CATALOG = REPO / "samples" / "shopping" / "amazon_uk_toys" / "products.csv"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "shopping_simulator.json"
RANKING_NOTE = (
    "rankings from a deterministic rule (same leaf, and brand for brand queries; by review count, price or "
    "rating), not from the vector index, which is benchmarked elsewhere"
)
CONSUMABLE_WORDS = r"(?i)\b(balloons?|batter(y|ies)|stickers?|paints?|refills?|cards?|crayons?|glitter|clay|bubbles?)\b"
_MIB = 1024 * 1024


def load_catalog(path: Path) -> pl.DataFrame:
    """The bundled CSV as the columns the simulator reads; rows without a usable price are dropped."""
    raw = pl.read_csv(path, infer_schema_length=0)
    levels = pl.col("amazon_category_and_sub_category").fill_null("Uncategorised").str.split(" > ")
    catalog = raw.select(
        ("amazon_uk_toys:" + pl.col("uniq_id")).alias("product_id"),
        pl.col("manufacturer").fill_null("Unbranded").alias("brand"),
        levels.list.first().str.strip_chars().alias("top_category"),
        levels.list.last().str.strip_chars().alias("leaf_category"),
        pl.col("price").str.replace_all(",", "").cast(pl.Float64, strict=False).alias("price"),
        pl.col("average_rating").cast(pl.Float64, strict=False).alias("rating"),
        pl.col("number_of_reviews").str.replace_all(",", "").cast(pl.Int64, strict=False).alias("review_count"),
        pl.col("product_name").str.contains(CONSUMABLE_WORDS).fill_null(False).alias("consumable"),
    )
    return catalog.filter(pl.col("price") > 0).unique("product_id", keep="first", maintain_order=True)


def rule_rankings(catalog: pl.DataFrame, k: int = 10) -> dict[str, list[str]]:
    """query -> up to `k` product ids for every vocabulary query, by the rule in RANKING_NOTE.

    Leaf queries rank the leaf's products by review count (plain), price ("cheap") or rating
    ("best"), in the order of LEAF_TEMPLATES; brand queries rank that brand's products in the leaf
    by review count.
    """
    vocabulary = search_queries(catalog)
    ranked = catalog.with_columns(pl.col("review_count").fill_null(0), pl.col("rating").fill_null(0.0))
    popular = (["review_count", "product_id"], [True, False])
    orders = [
        popular,
        (["price", "product_id"], [False, False]),
        (["rating", "review_count", "product_id"], [True, True, False]),
    ]
    keys = [
        (pl.format(t.replace("{leaf}", "{}"), "leaf_category"), order)
        for t, order in zip(LEAF_TEMPLATES, orders, strict=True)
    ]
    keys.append(
        (pl.format(BRAND_TEMPLATE.replace("{brand}", "{}").replace("{leaf}", "{}"), "brand", "leaf_category"), popular)
    )
    rankings: dict[str, list[str]] = {}
    for key, (by, descending) in keys:
        query = key.str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()
        best = (
            ranked.with_columns(query.alias("query"))
            .filter(pl.col("query").is_in(vocabulary))
            .sort(by, descending=descending)
            .group_by("query", maintain_order=True)
            .agg(pl.col("product_id").head(k))
        )
        rankings.update(zip(best["query"].to_list(), best["product_id"].to_list(), strict=True))
    missing = set(vocabulary).difference(rankings)
    if missing:
        raise RuntimeError(f"the ranking rule left {len(missing)} queries without results, e.g. {sorted(missing)[:3]}")
    return rankings


def measure_scale(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker: simulate `customers` in cohorts, each written to Parquet before the next; time and memory."""
    catalog = load_catalog(Path(spec["catalog"]))
    index = build_catalog_index(catalog)
    rankings = rule_rankings(catalog)
    categories, brands = categories_and_brands(catalog)
    persona_config = PersonaConfig(cohort_size=spec["cohort_size"], span_months=spec["span_months"], seed=spec["seed"])
    config = SimulationConfig(seed=spec["seed"])
    rss_after_setup = psutil.Process().memory_info().rss / _MIB
    timings = {"personas": 0.0, "simulate": 0.0, "write": 0.0}
    events, files_bytes, rss_per_cohort = 0, 0, []
    arrow_schema = pl.DataFrame(schema=EVENT_SCHEMA).to_arrow().schema
    started_all = time.perf_counter()
    for cohort_index in range(spec["customers"] // spec["cohort_size"]):
        cohort = f"cohort-{cohort_index:03d}"
        started = time.perf_counter()
        personas = generate_personas(cohort, cohort_index, persona_config, categories, brands)
        timings["personas"] += time.perf_counter() - started
        path = Path(spec["workdir"]) / f"{cohort}.parquet"
        with pq.ParquetWriter(path, arrow_schema) as writer:
            batches = simulate_cohort(personas, index, rankings, config, batch_customers=spec["batch_customers"])
            while True:
                started = time.perf_counter()
                batch = next(batches, None)
                timings["simulate"] += time.perf_counter() - started
                if batch is None:
                    break
                started = time.perf_counter()
                writer.write_table(batch.to_arrow())
                timings["write"] += time.perf_counter() - started
                events += len(batch)
                del batch
        files_bytes += path.stat().st_size
        path.unlink()  # the files are not the subject here; keep the temp disk small at 100k customers
        rss_per_cohort.append(round(psutil.Process().memory_info().rss / _MIB, 1))
    total_s = time.perf_counter() - started_all
    return {
        "record": "scale_run",
        "customers": spec["customers"],
        "cohorts": len(rss_per_cohort),
        "span_months": spec["span_months"],
        "events": events,
        "events_per_customer": round(events / spec["customers"], 1),
        "simulate_s": round(timings["simulate"], 2),
        "personas_s": round(timings["personas"], 2),
        "write_parquet_s": round(timings["write"], 2),
        "total_s": round(total_s, 2),
        "simulator_events_per_s": round(events / timings["simulate"]),
        "end_to_end_events_per_s": round(events / total_s),
        "parquet_mib": round(files_bytes / _MIB, 1),
        "rss_after_setup_mib": round(rss_after_setup, 1),
        "rss_after_first_cohort_mib": rss_per_cohort[0],
        "rss_after_last_cohort_mib": rss_per_cohort[-1],
        "max_rss_after_a_cohort_mib": max(rss_per_cohort),
        "peak_rss_mib": peak_rss_mib(),
    }


def _run_worker(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """A measurement in a fresh interpreter; its last stdout line is the result."""
    spec_path = workdir / f"spec_{spec['customers']}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", "benchmarks.shopping_simulator", "--worker", str(spec_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Rates and peak memory per scale; memory growth = largest peak over smallest-scale peak."""
    by_scale = sorted(runs, key=lambda r: r["customers"])
    return {
        "record": "summary",
        "span_months": by_scale[0]["span_months"],
        "simulator_events_per_s": {str(r["customers"]): r["simulator_events_per_s"] for r in by_scale},
        "end_to_end_events_per_s": {str(r["customers"]): r["end_to_end_events_per_s"] for r in by_scale},
        "peak_rss_mib": {str(r["customers"]): r["peak_rss_mib"] for r in by_scale},
        "peak_rss_growth_largest_over_smallest": round(by_scale[-1]["peak_rss_mib"] / by_scale[0]["peak_rss_mib"], 3),
        "rankings": RANKING_NOTE,
    }


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Machine record, one fresh-process run per scale, a summary."""
    records: list[dict[str, Any]] = []
    machine = machine_info()
    machine["versions"] = {**machine["versions"], "polars": version("polars"), "pyarrow": version("pyarrow")}
    emit(machine, records)
    print(f"span: {args.span_months} months from 2023-01-01 at every scale; {RANKING_NOTE}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="shopping_simulator_") as tmp:
        for customers in args.scales:
            if customers % args.cohort_size:
                raise ValueError(f"--scales {customers} is not a multiple of --cohort-size {args.cohort_size}")
            spec = {
                "catalog": str(args.catalog),
                "customers": customers,
                "cohort_size": args.cohort_size,
                "batch_customers": args.batch_customers,
                "span_months": args.span_months,
                "seed": args.seed,
                "workdir": tmp,
            }
            emit(_run_worker(spec, Path(tmp)), records)
    emit(summarize([r for r in records if r["record"] == "scale_run"]), records)
    records[0]["load_average_at_end"] = [round(x, 2) for x in psutil.getloadavg()]
    return records


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=DEFAULT_CATALOG)
    parser.add_argument("--scales", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--span-months", type=int, default=12, help="36 months at 100k customers takes >4 min")
    parser.add_argument("--cohort-size", type=int, default=1_000)
    parser.add_argument("--batch-customers", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark (or, with --worker, one scale) and write the results file."""
    args = _parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker.read_text(encoding="utf-8"))
        print(json.dumps(measure_scale(spec)), flush=True)
        return
    config = {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items() if key != "worker"}
    config["start"] = datetime(2023, 1, 1).isoformat()
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "config": config,
        "machine": records[0],
        "runs": [r for r in records if r["record"] == "scale_run"],
        "summary": records[-1],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
