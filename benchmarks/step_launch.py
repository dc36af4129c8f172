"""What a cheap step costs to launch: loading the code location, and the executor around the step.

The questions it answers:
1. load: CPU, wall time and peak RSS of a fresh interpreter that runs `import pipelines.definitions`, with the
   code-version digest cache warm (what every step process after the first pays), against two baselines in the
   same run: an empty digest cache (every source file parsed, as before the cache) and one that also imports
   what the definitions imported at module level before issue 19 (torch, transformers' Mixtral, lancedb,
   scikit-learn, matplotlib, datasketch).
2. launch: `web_corpus_summary` (about one second of work, plus its blocking check) materialized by
   `dagster asset materialize` on a small sample instance (one shard of `--docs` C4 documents), with assay's
   executor as configured (`assay_default`: this light one-asset run executes in the run process), with every
   step spawned (`multiprocess`, the baseline: the run process and one spawned process per step each load the
   code location), with the in-process executor and with the multiprocess executor forking its step
   processes from a forkserver that preloaded the definitions, alternated `--rounds` times. CPU time counts the
   command and every step process it started.

    python -m benchmarks.step_launch [--parts load launch] [--rounds 3] [--docs 30]

Prints one JSON object per line and writes them to `benchmarks/results/step_launch.json`. The machine is
shared: load averages are in the machine record and the summary; CPU seconds are the steadier figure.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "step_launch.json"
SAMPLE = REPO / "samples" / "web_docs" / "c4_en_sample_1000.jsonl"
SHARD = "docs.jsonl"
CHEAP_ASSET = "web_corpus_summary"
# What loading the definitions imported at module level before the imports moved into the functions.
FORMERLY_AT_LOAD = (
    "torch",
    "transformers.models.mixtral.modeling_mixtral",
    "lancedb",
    "sklearn.cluster",
    "sklearn.linear_model",
    "sklearn.metrics",
    "matplotlib.pyplot",
    "datasketch",
)
# forkserver_preloaded: step processes fork from a server that imported the definitions once (measured, not used:
# see docs/decisions.md).
EXECUTORS = {
    "multiprocess": {"multiprocess": {"light_runs_in_process": False}},
    "assay_default": {"multiprocess": {}},
    "in_process": {"in_process": {}},
    "forkserver_preloaded": {
        "multiprocess": {
            "light_runs_in_process": False,
            "start_method": {"forkserver": {"preload_modules": ["pipelines.definitions"]}},
        }
    },
}
PARTS = ("load", "launch")


def emit(record: dict[str, Any], records: list[dict[str, Any]]) -> None:
    print(json.dumps(record), flush=True)
    records.append(record)


def machine_info() -> dict[str, Any]:
    """Where the figures come from; the load average shows whether other work shared the CPU."""
    return {
        "record": "machine",
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def timed(command: list[str], env: dict[str, str] | None = None) -> dict[str, float]:
    """Run `command` to completion: wall seconds, CPU seconds (it and its children), and the peak RSS in MB
    that it prints as its last line, when it does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed ({done.returncode}): {done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    figures = {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2)}
    last = done.stdout.strip().splitlines()[-1:] if done.stdout.strip() else []
    if last and last[0].startswith("max_rss_mb="):
        figures["max_rss_mb"] = float(last[0].split("=")[1])
    return figures


LOAD_VARIANTS = ("definitions", "definitions_cold_digest_cache", "definitions_with_former_imports")


def load_command(baseline: bool) -> list[str]:
    """A fresh interpreter that loads the definitions (after the formerly module-level imports, for the baseline)."""
    preload = "".join(f"import {name}; " for name in FORMERLY_AT_LOAD) if baseline else ""
    report = "import resource; print(f'max_rss_mb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}')"
    return [sys.executable, "-c", f"{preload}import pipelines.definitions; {report}"]


def load_environment(home: Path) -> dict[str, str]:
    """The environment of a load whose code-version digest cache lives under `home`."""
    return {**os.environ, "ASSAY_HOME": str(home)}


def measure_load(rounds: int) -> list[dict[str, Any]]:
    """The three variants, alternated, `rounds` times each; the warm digest cache is primed once first."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="step_load_") as tmp:
        warm = load_environment(Path(tmp) / "warm")
        timed(load_command(False), warm)
        for index, variant in itertools.product(range(rounds), LOAD_VARIANTS):
            baseline = variant == "definitions_with_former_imports"
            env = warm if variant == "definitions" else load_environment(Path(tmp) / f"{variant}-{index}")
            rows.append({"record": "load", "variant": variant, "round": index, **timed(load_command(baseline), env)})
    return rows


def sample_environment(root: Path, docs: int) -> dict[str, str]:
    """An assay home with the repo's dagster.yaml and one shard of `docs` sample documents."""
    home, inputs = root / "assay", root / "inputs"
    (home / "dagster").mkdir(parents=True)
    inputs.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    with SAMPLE.open(encoding="utf-8") as source:
        (inputs / SHARD).write_text("".join(itertools.islice(source, docs)), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSAY_", "DAGSTER_"))}
    return env | {
        "ASSAY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "ASSAY_WEB_DOCS_INPUT": str(inputs),
        "ASSAY_PROFILE": "local",
    }


def materialize_command(select: str, executor: str | None = None, partition: str | None = None) -> list[str]:
    command = [str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "pipelines.definitions"]
    command += ["--select", select]
    if partition:
        command += ["--partition", partition]
    if executor:
        command += ["--config-json", json.dumps({"execution": {"config": EXECUTORS[executor]}})]
    return command


def register_shard(env: dict[str, str]) -> None:
    """The shard as a dynamic partition of the sample instance."""
    script = (
        "import dagster as dg; from pipelines.partitions import web_doc_shards\n"
        f"with dg.DagsterInstance.get() as i: i.add_dynamic_partitions(web_doc_shards.name, [{SHARD!r}])"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, check=True, capture_output=True)


def measure_launch(rounds: int, docs: int) -> list[dict[str, Any]]:
    """The intake once (setup), then the cheap asset with each executor, alternated."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="step_launch_") as tmp:
        env = sample_environment(Path(tmp), docs)
        register_shard(env)
        timed(materialize_command("raw_web_docs,web_docs,web_docs_quarantine", "in_process", SHARD), env)
        for index, executor in itertools.product(range(rounds), EXECUTORS):
            figures = timed(materialize_command(CHEAP_ASSET, executor), env)
            rows.append({"record": "launch", "executor": executor, "round": index, "docs": docs, **figures})
    return rows


def median_of(rows: list[dict[str, Any]], field: str, **match: Any) -> float:
    return round(statistics.median(r[field] for r in rows if all(r.get(k) == v for k, v in match.items())), 2)


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per variant and the ratios against the baseline of the same run."""
    out: dict[str, Any] = {"record": "summary", "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    if any(r["record"] == "load" for r in rows):
        for field in ("cpu_s", "wall_s", "max_rss_mb"):
            new = median_of(rows, field, record="load", variant="definitions")
            old = median_of(rows, field, record="load", variant="definitions_with_former_imports")
            out[f"load_{field}"] = new
            out[f"load_{field}_with_former_imports"] = old
            out[f"load_{field}_ratio"] = round(new / old, 4) if old else None
            cold = median_of(rows, field, record="load", variant="definitions_cold_digest_cache")
            out[f"load_{field}_cold_digest_cache"] = cold
            out[f"load_{field}_ratio_over_cold_digest_cache"] = round(new / cold, 4) if cold else None
    if any(r["record"] == "launch" for r in rows):
        for field in ("cpu_s", "wall_s"):  # the launch's RSS is not measured: several processes
            multi = median_of(rows, field, record="launch", executor="multiprocess")
            out[f"launch_{field}_multiprocess"] = multi
            for executor in [e for e in list(EXECUTORS)[1:] if any(r.get("executor") == e for r in rows)]:
                value = median_of(rows, field, record="launch", executor=executor)
                out[f"launch_{field}_{executor}"] = value
                out[f"launch_{field}_ratio_{executor}_over_multiprocess"] = round(value / multi, 4) if multi else None
    return out


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--docs", type=int, default=30)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    rows: list[dict[str, Any]] = []
    if "load" in args.parts:
        rows += measure_load(args.rounds)
    if "launch" in args.parts:
        rows += measure_launch(args.rounds, args.docs)
    for row in rows:
        emit(row, records)
    emit(summary(rows), records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
