"""Filter search figures: pass 1 Δ bpb with seed error bars, pass 2 against the best single filter, yield
against quality, rank agreement between two proxy sizes, dedup throughput and memory, proxy tokens/s.

The same functions as the Dagster assets (`ops/webdocs/filters.py`, `filter_search.py`, `dedup.py`,
`training/webdocs/proxy_lm.py`), without Dagster:

- labels: the latest `web_doc_labels` and `web_docs_dedup` of the Dagster home in `$DAGSTER_HOME` when
  there are any (`make run` makes them; MLP-filter labels), otherwise seeded random label
  probabilities over the bundled C4 documents ("synthetic"): then every filter is a random subset and
  the figures are the noise floor of the method, which is what a null check should show (Δ ~ 0).
- pass 1: every chosen single filter, the no-filter and random-at-equal-yield baselines, trained with
  the small proxy and the larger one, `--seeds` seeds each; Kendall τ between the two sizes' rankings.
- noise floor: `--random-draws` more random subsets per baseline yield (other sha256 orders), trained the
  same way. The seed spread only says how much one subset's score moves with the proxy's seed; which
  random subset is drawn moves it too. A filter's score against the mean and sd of the random subsets of
  its yield (`noise_z`) says whether it beats picking documents at random.
- pass 2: AND / OR of the small proxy's top `--top-k`, scored the same way (with the noise floor at the
  compounds' yields), against the best single.
- dedup: `--dedup-base` documents of `samples/web_text_more` replicated 1x, 10x, 100x with word-level
  perturbations (each copy is a near-duplicate), streamed in batches through the MinHash LSH index in a
  fresh subprocess per size: documents/s, peak RSS and the RSS growth while indexing.

    python -m benchmarks.filter_search [--real] [--seeds 2] [--random-draws 3] [--small-tokens 16384]

Prints one JSON object per line and writes them all to `benchmarks/results/filter_search.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import psutil
import torch
from scipy.stats import kendalltau
from scipy.stats import t as student_t

from benchmarks.embedding_throughput import emit, machine_info, peak_rss_mib
from ops.webdocs.dedup import DedupConfig, dedup_split, find_near_duplicates
from ops.webdocs.filter_search import pass2_table, proxy_compute, score_filters, seed_scores
from ops.webdocs.filters import (
    RANDOM,
    CandidateConfig,
    FilterTable,
    compound_filters,
    filter_candidates,
    label_table,
    random_order,
    to_spec,
    trained,
)
from ops.webdocs.proxy_data import target_sets, training_texts
from ops.webdocs.taxonomy import vocabularies
from training.webdocs.mlp_filter import predictions_frame
from training.webdocs.proxy_lm import CheckpointIO, ProxyConfig, train_seeds

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "filter_search.json"
BUNDLED = (
    REPO / "samples/web_docs/c4_en_sample_1000.jsonl",
    REPO / "samples/web_text_more/c4_en_train00000_first300.jsonl",
)
MORE_TEXT = BUNDLED[1]
TARGETS = REPO / "samples/proxy_targets"


def read_texts(path: Path, limit: int = 0) -> list[str]:
    """The `text` field of (the first `limit`) JSON lines of a file."""
    with path.open(encoding="utf-8") as handle:
        texts = [json.loads(line)["text"] for line in handle if line.strip()]
    return texts[:limit] if limit else texts


def synthetic_corpus(limit: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Bundled C4 documents with seeded random label probabilities (a stand-in when no run exists)."""
    texts = [text for path in BUNDLED for text in read_texts(path)][: limit or None]
    ids = [f"doc-{i:05d}" for i in range(len(texts))]
    rng = np.random.default_rng(seed)
    probs = {d: rng.dirichlet(np.ones(len(c)), size=len(ids)).astype(np.float32) for d, c in vocabularies().items()}
    return pl.DataFrame({"doc_id": ids, "text": texts}), predictions_frame(ids, probs, vocabularies())


def materialized_corpus() -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any]] | None:
    """The deduplicated documents and every shard of `web_doc_labels` from the Dagster home, if labelled, with
    where they came from. `web_docs_dedup` is read when materialized, else computed here from `web_docs`
    with the asset's defaults (it runs in a later stage of `make run` than the labels)."""
    if not os.environ.get("DAGSTER_HOME"):
        return None
    import dagster as dg

    from resources.io_manager import latest_materialization, materialized_partition_files

    with dg.DagsterInstance.get() as instance:
        dedup = latest_materialization(instance, dg.AssetKey("web_docs_dedup"), None)
        shards = instance.get_dynamic_partitions("web_doc_shards")
        files, missing = materialized_partition_files(instance, dg.AssetKey("web_doc_labels"), shards)
        doc_files, _ = materialized_partition_files(instance, dg.AssetKey("web_docs"), shards)
    if missing or not files:
        return None
    if dedup is not None:
        docs, source = pl.read_parquet(f"{dedup.metadata['artifact_path'].value}/data.parquet"), "web_docs_dedup"
    else:
        docs, source = dedup_split(pl.scan_parquet(doc_files), DedupConfig()).kept, "web_docs, deduplicated here"
    labels = pl.read_parquet(files)
    return docs, labels, {"shards": len(shards), "labelled_docs": labels.height, "documents_from": source}


def label_summary(labels: pl.DataFrame) -> pl.DataFrame:
    """Per dimension: how many primary codes occur and the share of the commonest (1.0: the labels cannot
    split the corpus on that dimension), and the mean top probability (how sure the labeller is)."""
    rows = []
    for dimension in vocabularies():
        counts = labels[f"{dimension}__primary"].value_counts(sort=True)
        rows.append(
            {
                "dimension": dimension,
                "primary_codes": counts.height,
                "top_code": str(counts[0, 0]) if counts.height else "",
                "top_share": float(counts[0, 1] / labels.height) if labels.height else math.nan,
                "mean_max_prob": float(labels[f"{dimension}__probs"].list.max().mean()) if labels.height else math.nan,
            }
        )
    return pl.DataFrame(rows)


def filter_subsets(table: pl.DataFrame, filters: pl.DataFrame) -> dict[str, list[str]]:
    """The ids each trained filter (and baseline) of a filters table keeps."""
    with FilterTable(table) as evaluator:
        rows = filters.filter(pl.col("name").is_in(trained(filters))).iter_rows(named=True)
        return {row["name"]: evaluator.kept_ids(to_spec(row)) for row in rows}


def random_draws(table: pl.DataFrame, filters: pl.DataFrame, draws: int) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    """`draws` more random subsets per random baseline of `filters`, each in its own sha256 order (order seeds
    1..draws; the baseline is order seed 0), as rows of kind `random` whose baseline is that one, and their ids."""
    rows, subsets = [], {}
    for row in filters.filter((pl.col("kind") == RANDOM) & pl.col("name").is_in(trained(filters))).iter_rows(
        named=True
    ):
        for draw in range(1, draws + 1):
            name = f"{row['name']}_draw{draw}"
            subsets[name] = sorted(random_order(table["doc_id"], seed=draw)[: row["kept_docs"]])
            rows.append({**row, "name": name, "expression": f"{row['expression']}, order seed {draw}"})
            rows[-1]["baseline"] = row["name"]
    return pl.DataFrame(rows, schema=filters.schema), subsets


def proxy_scores(
    docs: pl.DataFrame, subsets: dict[str, list[str]], config: ProxyConfig, seeds: list[int], targets: dict
) -> tuple[pl.DataFrame, float]:
    """Train every subset's proxies (like `proxy_runs`); the run table and the tokens/s of the training."""
    rows, tokens, seconds = [], 0, 0.0
    for name, ids in subsets.items():
        texts = training_texts(docs, ids, seed=0)
        results = train_seeds(texts, targets, config, seeds, lambda seed: CheckpointIO(lambda: None, lambda p: None))
        for result in results:
            tokens, seconds = tokens + result.tokens_trained, seconds + result.train_seconds
            rows += [
                {"filter": name, "seed": result.config.seed, "target": target, "bits_per_byte": value}
                for target, value in result.bits_per_byte.items()
            ]
    frame = pl.DataFrame(rows).with_columns(tokens_trained=pl.lit(config.steps * config.batch_size * config.seq_len))
    return frame, tokens / seconds if seconds else 0.0


def noise_floor(runs: pl.DataFrame, draws: pl.DataFrame) -> pl.DataFrame:
    """Per random baseline, the scores of all its random subsets at equal yield (the baseline and its draws):
    mean and sample std of their mean bpb over seeds, and the draws' Δ vs the baseline (paired seeds). A
    filter's Δ vs that baseline is a draw from the same distribution if the filter is no better than random."""
    scored = score_filters(runs, draws, kinds=(RANDOM,))
    means = seed_scores(runs).group_by("filter").agg(pl.col("score").mean())
    rows = []
    for baseline, group in scored.group_by("baseline", maintain_order=True):
        pool = means.filter(pl.col("filter").is_in([baseline[0], *group["name"]]))["score"]
        rows.append(
            {
                "baseline": baseline[0],
                "subsets": pool.len(),
                "random_mean_bpb": float(pool.mean()),
                "random_sd_bpb": float(pool.std()),
                "z_needed": z_needed(pool.len()),
                "draw_deltas": group.sort("name")["delta_vs_random"].to_list(),
            }
        )
    return pl.DataFrame(rows, schema=FLOOR_SCHEMA)


def z_needed(subsets: int, level: float = 0.05) -> float:
    """|z| beyond which one more score falls outside the two-sided `level` prediction interval of `subsets`
    random scores whose sd is estimated from themselves: t(1 - level/2, n - 1) * sqrt(1 + 1/n)."""
    return float(student_t.ppf(1 - level / 2, subsets - 1) * math.sqrt(1 + 1 / subsets)) if subsets > 1 else math.nan


FLOOR_SCHEMA: dict[str, pl.DataType] = {
    "baseline": pl.String,
    "subsets": pl.Int64,
    "random_mean_bpb": pl.Float64,
    "random_sd_bpb": pl.Float64,
    "z_needed": pl.Float64,
    "draw_deltas": pl.List(pl.Float64),
}


def against_noise(pass1: pl.DataFrame, floor: pl.DataFrame) -> pl.DataFrame:
    """Pass 1 with each filter's score against the random subsets of its yield: Δ vs their mean and that
    in units of their standard deviation (|z| below the floor's `z_needed`: indistinguishable from picking
    documents at random)."""
    joined = pass1.join(floor.select("baseline", "random_mean_bpb", "random_sd_bpb"), on="baseline", how="left")
    delta = pl.col("mean_bpb") - pl.col("random_mean_bpb")
    return joined.with_columns(delta_vs_random_mean=delta, noise_z=delta / pl.col("random_sd_bpb")).drop(
        "random_mean_bpb"
    )


def kendall(first: pl.DataFrame, second: pl.DataFrame) -> float:
    """Kendall τ between two rankings of the same filters (by Δ vs random)."""
    joined = first.select("name", "delta_vs_random").join(
        second.select("name", pl.col("delta_vs_random").alias("other")), on="name"
    )
    return (
        float(kendalltau(joined["delta_vs_random"], joined["other"]).statistic) if joined.height > 1 else float("nan")
    )


def perturbed(texts: list[str], copies: int, batch: int, seed: int = 0) -> Iterator[pl.DataFrame]:
    """`copies` versions of every text, copy 0 unchanged and the others with ~1% of words replaced (about 5%
    of the word 5-grams change: estimated Jaccard ~0.9, above the 0.8 threshold), in batches."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for copy in range(copies):
        for index, text in enumerate(texts):
            words = text.split()
            if copy:
                for position in rng.sample(range(len(words)), k=max(1, len(words) // 100)) if words else []:
                    words[position] = f"w{rng.randrange(10_000)}"
            rows.append({"doc_id": f"{copy:04d}-{index:05d}", "text": " ".join(words)})
            if len(rows) == batch:
                yield pl.DataFrame(rows)
                rows = []
    if rows:
        yield pl.DataFrame(rows)


def dedup_worker(base: int, scale: int) -> dict[str, Any]:
    """One dedup size in this process: documents/s, peak RSS, and how much the RSS grew while indexing
    (texts are generated batch by batch, so the growth is the LSH index and the signatures)."""
    texts = read_texts(MORE_TEXT, base)
    process = psutil.Process()
    before = process.memory_info().rss
    started = time.perf_counter()
    duplicates, rows = find_near_duplicates(perturbed(texts, scale, batch=1_000), DedupConfig())
    seconds = time.perf_counter() - started
    grown = process.memory_info().rss - before
    return {
        "record": "dedup",
        "scale": f"{scale}x",
        "documents": rows,
        "duplicates_found": len(duplicates),
        "duplicates_planted": len(texts) * (scale - 1),
        "docs_per_s": round(rows / seconds, 1),
        "seconds": round(seconds, 1),
        "peak_rss_mib": peak_rss_mib(),
        "rss_growth_mib": round(grown / 2**20, 1),
    }


def search(docs: pl.DataFrame, labels: pl.DataFrame, args: argparse.Namespace, records: list[dict]) -> None:
    """Pass 1 with two proxy sizes and the random-subset noise floor of each, rank agreement, pass 2 with the
    small one (and the noise floor at its new yields), compute accounting."""
    table = label_table(labels, docs["doc_id"])
    candidates = filter_candidates(table, CandidateConfig(max_filters=args.filters), {})
    targets = target_sets(TARGETS, args.target_bytes)
    seeds = list(range(args.seeds))
    small = ProxyConfig(hidden=64, layers=2, token_budget=args.small_tokens)
    large = ProxyConfig(hidden=128, layers=3, heads=4, token_budget=args.large_tokens)
    draws, draw_ids = random_draws(table, candidates, args.random_draws)
    subsets = {**filter_subsets(table, candidates), **draw_ids}
    scored = {}
    for size, config in (("small", small), ("large", large)):
        runs, rate = proxy_scores(docs, subsets, config, seeds, targets)
        floor = _emit_floor(runs, draws, size, records)
        scored[size] = (runs, score_filters(runs, candidates), floor)
        emit({"record": "proxy_speed", "size": size, **asdict(config), "tokens_per_s": round(rate, 1)}, records)
        for row in against_noise(scored[size][1], floor).iter_rows(named=True):
            emit({"record": "pass1", "size": size, **_rounded(row)}, records)
    emit(
        {"record": "rank_agreement", "kendall_tau": round(kendall(scored["small"][1], scored["large"][1]), 4)}, records
    )
    runs, pass1, floor = scored["small"]
    baselines = candidates.filter(pl.col("kind") == RANDOM)["name"].to_list()
    compounds = compound_filters(table, pass1, args.top_k, 0.1, baselines)
    more_draws, more_ids = random_draws(table, compounds, args.random_draws)
    compound_runs, _ = proxy_scores(docs, {**filter_subsets(table, compounds), **more_ids}, small, seeds, targets)
    both = pl.concat([runs, compound_runs], how="diagonal_relaxed")
    floor = pl.concat([floor, _emit_floor(compound_runs, more_draws, "small", records)])
    final = against_noise(pass2_table(pass1, score_filters(both, compounds, kinds=("compound",))), floor)
    for row in final.iter_rows(named=True):
        emit({"record": "pass2", **_rounded(row)}, records)
    singles = candidates.filter((pl.col("kind") == "single") & (pl.col("status") == "selected")).height
    compute = proxy_compute(len(trained(candidates)), len(trained(compounds)), singles, args.seeds, small.steps * 1024)
    emit({"record": "compute", **compute, "noise_floor_runs": draws.height + more_draws.height}, records)


def _emit_floor(runs: pl.DataFrame, draws: pl.DataFrame, size: str, records: list[dict]) -> pl.DataFrame:
    """The noise floor of one proxy size, emitted; empty (no draws) gives NaN z-scores downstream."""
    floor = noise_floor(runs, draws) if draws.height else pl.DataFrame(schema=FLOOR_SCHEMA)
    for row in floor.iter_rows(named=True):
        emit({"record": "noise_floor", "size": size, **_rounded(row)}, records)
    return floor


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    def one(value: Any) -> Any:
        return round(value, 4) if isinstance(value, float) else value

    return {k: [one(x) for x in v] if isinstance(v, list) else one(v) for k, v in row.items()}


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Machine, corpus, search figures, then one dedup subprocess per size."""
    torch.set_num_threads(args.threads)
    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    corpus = None if args.synthetic else materialized_corpus()
    if corpus is None and args.real:
        raise SystemExit("--real: no labelled corpus in $DAGSTER_HOME (materialize web_doc_labels for every shard)")
    docs, labels, origin = corpus or (*synthetic_corpus(args.docs), {})
    kind = "synthetic" if corpus is None else "web_doc_labels"
    emit({"record": "corpus", "labels": kind, "documents": docs.height, **origin}, records)
    for row in label_summary(labels.join(docs.select("doc_id"), on="doc_id", how="semi")).iter_rows(named=True):
        emit({"record": "label_summary", **_rounded(row)}, records)
    search(docs, labels, args, records)
    for scale in args.dedup_scales:
        command = [sys.executable, "-m", "benchmarks.filter_search", "--dedup-worker", f"{args.dedup_base},{scale}"]
        output = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout
        emit(json.loads(output.strip().splitlines()[-1]), records)
    emit({"record": "load_average_at_end", "load": [round(x, 2) for x in os.getloadavg()]}, records)
    return records


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--filters", type=int, default=4, help="single filters searched in pass 1")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--small-tokens", type=int, default=16_384)
    parser.add_argument("--large-tokens", type=int, default=16_384)
    parser.add_argument("--random-draws", type=int, default=3, help="extra random subsets per baseline yield")
    parser.add_argument("--target-bytes", type=int, default=4_096)
    parser.add_argument("--docs", type=int, default=0, help="synthetic corpus size (0 = all bundled documents)")
    parser.add_argument("--synthetic", action="store_true", help="ignore a Dagster home's labels")
    parser.add_argument("--real", action="store_true", help="fail unless $DAGSTER_HOME has the labels")
    parser.add_argument("--dedup-base", type=int, default=100)
    parser.add_argument("--dedup-scales", type=lambda s: [int(x) for x in s.split(",") if x], default=[1, 10, 100])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--dedup-worker", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dedup_worker:
        base, scale = (int(x) for x in args.dedup_worker.split(","))
        print(json.dumps(dedup_worker(base, scale)), flush=True)
        return 0
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
