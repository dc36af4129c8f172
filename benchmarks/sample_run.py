"""`make run`'s sample with its runs side by side (2 workers, a core each) against one run at a time.

Each variant materializes every asset of the local sample into a fresh `ASSAY_HOME` (empty LLM cache, no
checkpoints: the work of a first `make run`, the venv's bytecode already compiled), alternated `--rounds` times
(baseline first). Wall and CPU seconds count the sample process and its workers; `runs` and `succeeded` come
from its report. About 10 minutes per variant on an idle 2-core machine.

    python -m benchmarks.sample_run [--rounds 1] [--workers 2]

Prints one JSON object per line and writes them to `benchmarks/results/sample_run.json`. Every SmolLM2-135M
output inside is a pipeline check, not evidence; what this measures is time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.step_launch import emit, machine_info

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "benchmarks" / "results" / "sample_run.json"


def sample_environment(home: Path, workers: int) -> dict[str, str]:
    """A fresh instance home with the repo's dagster.yaml; offline, as the Makefile sets it."""
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO / "dagster.yaml", home / "dagster" / "dagster.yaml")
    env = {key: value for key, value in os.environ.items() if not key.startswith("ASSAY_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env | {
        "ASSAY_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "ASSAY_SAMPLE_WORKERS": str(workers),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "GX_ANALYTICS_ENABLED": "false",
    }


def measure(workers: int) -> dict[str, Any]:
    """One whole sample run with `workers` runs at a time."""
    with tempfile.TemporaryDirectory(prefix="assay-sample-bench-") as folder:
        env = sample_environment(Path(folder), workers)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.sample"], cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    outcomes = run_outcomes(done.stdout)
    return {
        "record": "sample",
        "workers": workers,
        "returncode": done.returncode,
        "wall_s": round(wall, 1),
        "cpu_s": round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 1),
        "runs": len(outcomes),
        "succeeded": outcomes.count("succeeded"),
        "peak_rss_mb_so_far": round(after.ru_maxrss / 1024),  # the largest process of this benchmark so far
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def run_outcomes(stdout: str) -> list[str]:
    """ "succeeded" or "FAILED" for each run the sample reported finishing (`pipelines.sample._schedule`)."""
    return re.findall(r"^\[assay\] .*: (succeeded|FAILED) in \d+ s$", stdout, flags=re.MULTILINE)


def summary(rows: list[dict[str, Any]], workers: int) -> dict[str, Any]:
    """Median wall and CPU per variant and the ratio of the parallel sample's wall time to the baseline's."""
    by = {count: sorted(row["wall_s"] for row in rows if row["workers"] == count) for count in (1, workers)}
    medians = {count: walls[len(walls) // 2] for count, walls in by.items()}
    return {
        "record": "summary",
        "wall_s_one_at_a_time": medians[1],
        f"wall_s_{workers}_workers": medians[workers],
        "ratio_wall": round(medians[workers] / medians[1], 3),
        "all_runs_succeeded": all(row["returncode"] == 0 and row["runs"] == row["succeeded"] for row in rows),
    }


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    rows = []
    for _ in range(args.rounds):
        for workers in (1, args.workers):
            rows.append(measure(workers))
            emit(rows[-1], records)
    emit(summary(rows, args.workers), records)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
