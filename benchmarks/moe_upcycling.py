"""Expert upcycling figures: gap closure per strategy with its spread over seeds, training tokens/s, peak RSS.

For each seed: pretrain an E-expert Mixtral-class MoE for `--base-tokens`, score its experts on calibration
batches, then for every strategy upcycle E -> mE (router rows copied with noise, Adam state copied, top-K
held) and continue pretraining for `--cpt-tokens`; the two baselines are the E model trained on for the
same CPT budget (L_E) and an mE model trained from scratch for base + CPT tokens (L_mE). Gap closure is
(L_E - L_up) / (L_E - L_mE) on the held-out documents; the paper reports that utility-based copying more
than triples it over uniform copying when CPT is short. The seed changes the initialisation and the
batches. Corpus: the bundled web-doc samples (byte tokens), split by document as `moe_pretraining_corpus`.

    python -m benchmarks.moe_upcycling [--seeds 0 1 2] [--base-tokens 204800] [--cpt-tokens 61440]

Defaults are 880 optimizer steps per seed: about 6 minutes per seed on the shared 2-core machine at a
load average of ~20 (0.4 s per step of 8 x 128 tokens, one torch thread). Prints one JSON object per
line (machine, one record per seed and run, a summary per strategy) and writes them all to
`benchmarks/results/moe_upcycling.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from pathlib import Path
from typing import Any

import polars as pl
import torch

from benchmarks.embedding_throughput import emit, machine_info, peak_rss_mib
from ops.moe.corpus import split_stream, tokenize_corpus
from ops.moe.report import gap_closure
from ops.moe.selection import parse_strategy, plan_sources
from training.moe.model import MoEShape
from training.moe.train import TrainSettings, batch_at, fresh_checkpoint, train, validation_windows
from training.moe.upcycle import preservation, upcycle
from training.moe.utilities import expert_utilities

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "moe_upcycling.json"
SAMPLES = REPO / "samples" / "web_docs"
STRATEGIES = ("uniform", "greedy-weight_norm", "greedy-saliency", "greedy-grad_sq", "greedy-fisher", "softmax-fisher")


def load_corpus(min_tokens: int = 64) -> pl.DataFrame:
    """The bundled web-doc samples, byte-tokenized and split by document (90/10)."""
    rows = []
    for path in sorted(SAMPLES.glob("*.jsonl")):
        with path.open(encoding="utf-8") as handle:  # not splitlines(): texts hold U+2028 and friends
            for index, line in enumerate(handle):
                rows.append({"doc_id": f"{path.name}:{index}", "text": json.loads(line).get("text") or ""})
    return tokenize_corpus(pl.DataFrame(rows), min_tokens, 0.1, 0).kept


def run_seed(args: argparse.Namespace, seed: int, corpus: pl.DataFrame, records: list) -> None:
    """One seed: base, baselines and every strategy; one record per run."""
    shape = MoEShape(layers=args.layers, hidden=args.hidden, experts=args.experts, top_k=args.top_k, seq_len=args.seq)
    train_stream, val_stream = split_stream(corpus, "train"), split_stream(corpus, "validation")

    def settings(tokens: int, warm: bool) -> TrainSettings:
        return TrainSettings(
            tokens=tokens,
            batch_size=args.batch,
            lr=args.lr,
            warmup_steps=0 if warm else 20,
            eval_every=args.eval_every,
            eval_windows=args.eval_windows,
            threads=args.threads,
            seed=seed,
        )

    def timed(name: str, run: Any) -> Any:
        started = time.perf_counter()
        result = run()
        record = {
            "record": "run",
            "seed": seed,
            "run": name,
            "final_val_loss": round(result.history[-1].val_loss, 4),
            "tokens_per_second": round(result.tokens_per_second, 1),
            "wall_s": round(time.perf_counter() - started, 1),
            "peak_rss_mib": peak_rss_mib(),
        }
        emit(record, records)
        return result

    base = timed(
        "base-E",
        lambda: train(
            fresh_checkpoint(shape.config(), seed), train_stream, val_stream, settings(args.base_tokens, False)
        ),
    ).checkpoint
    base_tokens = int(base.optimizer_meta["tokens"])
    keep = timed(
        "baseline-keep-E",
        lambda: train(base, train_stream, val_stream, settings(args.cpt_tokens, True), token_offset=base_tokens),
    )
    scratch_config = shape.config()
    scratch_config.num_local_experts = args.factor * args.experts
    scratch = timed(
        "baseline-scratch-mE",
        lambda: train(
            fresh_checkpoint(scratch_config, seed),
            train_stream,
            val_stream,
            settings(base_tokens + args.cpt_tokens, False),
        ),
    )
    loss_e, loss_me = keep.history[-1].val_loss, scratch.history[-1].val_loss
    batches = [batch_at(train_stream, i, args.batch, args.seq, 10_000 + seed) for i in range(4)]
    utilities = expert_utilities(base, batches)
    windows = validation_windows(val_stream, args.seq, args.eval_windows)
    for key in args.strategies:
        sources = plan_sources(parse_strategy(key), utilities, args.factor, seed=seed)
        upcycled = upcycle(base, sources, args.router_noise, seed)
        measured = preservation(base, upcycled, sources, windows)
        result = timed(
            key,
            lambda u=upcycled, s=sources: train(
                u, train_stream, val_stream, settings(args.cpt_tokens, True), token_offset=base_tokens, sources=s
            ),
        )
        emit(
            {
                "record": "strategy",
                "seed": seed,
                "strategy": key,
                "sources": sources,
                "loss_keep_E": round(loss_e, 4),
                "loss_scratch_mE": round(loss_me, 4),
                "loss_upcycled": round(result.history[-1].val_loss, 4),
                "gap_closure": round(gap_closure(loss_e, result.history[-1].val_loss, loss_me), 4),
                "loss_right_after_upcycling": round(result.history[0].val_loss, 4),
                "topk_loss_increase_at_upcycling": round(measured.upcycled_loss - measured.source_loss, 4),
                "top1_exact_max_abs_diff": measured.top1_exact_max_abs_diff,
                "duplicate_cosine_end": round(result.history[-1].duplicate_cosine, 4),
            },
            records,
        )


def summarize(records: list[dict]) -> list[dict]:
    """Per strategy: mean, standard deviation and values of gap closure over the seeds where it is defined
    (NaN where the scratch model did not beat the E model), and the ratio of the mean to uniform's."""
    by_strategy: dict[str, list[float]] = {}
    for record in records:
        if record["record"] == "strategy":
            by_strategy.setdefault(record["strategy"], []).append(record["gap_closure"])
    means = {key: _nan_mean(values) for key, values in by_strategy.items()}
    uniform = means.get("uniform", math.nan)
    summaries = []
    for strategy, values in by_strategy.items():
        defined = [value for value in values if not math.isnan(value)]
        summaries.append(
            {
                "record": "summary",
                "strategy": strategy,
                "gap_closure_mean": round(means[strategy], 4),
                "gap_closure_std": round(statistics.stdev(defined), 4) if len(defined) > 1 else math.nan,
                "gap_closure_values": values,
                "seeds_defined": len(defined),
                "ratio_to_uniform": round(means[strategy] / uniform, 3)
                if uniform and not math.isnan(uniform)
                else math.nan,
            }
        )
    runs = [r for r in records if r["record"] == "run"]
    summaries.append(
        {
            "record": "summary",
            "strategy": "all",
            "training_tokens_per_second_median": statistics.median(r["tokens_per_second"] for r in runs)
            if runs
            else 0.0,
            "peak_rss_mib": max((r["peak_rss_mib"] for r in runs), default=peak_rss_mib()),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        }
    )
    return summaries


def _nan_mean(values: list[float]) -> float:
    defined = [value for value in values if not math.isnan(value)]
    return statistics.fmean(defined) if defined else math.nan


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--base-tokens", type=int, default=204_800)
    parser.add_argument("--cpt-tokens", type=int, default=61_440)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--experts", type=int, default=4)
    parser.add_argument("--top-k", type=int, default=2)
    parser.add_argument("--factor", type=int, default=2)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--router-noise", type=float, default=0.01)
    parser.add_argument("--eval-every", type=int, default=20)
    parser.add_argument("--eval-windows", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run every seed, print and write the records."""
    args = _parse_args(argv)
    torch.set_num_threads(args.threads)
    records: list[dict] = []
    emit(
        {
            **machine_info(),
            "versions": {"torch": torch.__version__},
            "args": {k: str(v) for k, v in vars(args).items()},
        },
        records,
    )
    corpus = load_corpus()
    for seed in args.seeds:
        run_seed(args, seed, corpus, records)
    for summary in summarize(records):
        emit(summary, records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1))
    return records


if __name__ == "__main__":
    main()
