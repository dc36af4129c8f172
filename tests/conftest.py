"""Shared fixtures: a throwaway assay home with a real Dagster instance and real resources."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import dagster as dg
import pytest

from ops.common.threads import available_threads

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES = REPO_ROOT / "samples"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
# One dequantized copy of the packaged GGUF for the whole suite (and across runs on one machine): every test
# that loads SmolLM2 into torch reads it in seconds instead of dequantizing for minutes.
os.environ.setdefault("ASSAY_MODEL_CACHE", str(Path(tempfile.gettempdir()) / "assay-test-model-cache"))


def _xdist_workers() -> int:
    """How many pytest-xdist workers share this machine (1 without xdist)."""
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


# Under `make test` (pytest-xdist) each worker gets its share of the cores for torch's and BLAS's OpenMP
# threads: two workers running two threads each on two cores stall each other at every barrier.
if _xdist_workers() > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, available_threads() // _xdist_workers())))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist, files with slow tests first (stable order otherwise): `--dist loadfile` hands out files
    in this order, so the minute-long chains start early and the short files fill the gaps instead of one
    long file running alone at the end."""
    if _xdist_workers() > 1:
        slow_files = {item.path for item in items if item.get_closest_marker("slow")}
        items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture
def assay_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty ASSAY_HOME with the repo's dagster.yaml, and an input folder of its own."""
    home = tmp_path / "assay"
    (home / "dagster").mkdir(parents=True)
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster" / "dagster.yaml")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    monkeypatch.setenv("ASSAY_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    monkeypatch.setenv("ASSAY_WEB_DOCS_INPUT", str(inputs))
    monkeypatch.setenv("ASSAY_PROFILE", "local")
    for name in ("ASSAY_STORE_ROOT", "ASSAY_LANCEDB_URI", "ASSAY_DUCKDB_PATH", "ASSAY_EMBEDDER_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def instance(assay_home: Path):
    """The real Dagster instance of the temporary home (SQLite, the repo's dagster.yaml)."""
    with dg.DagsterInstance.get() as home_instance:
        yield home_instance


def write_jsonl(path: Path, records: list[dict]) -> Path:
    """Write records as JSON Lines (UTF-8, one object a line)."""
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")
    return path


def sample_records(name: str, count: int) -> list[dict]:
    """The first `count` records of a bundled sample shard."""
    with (SAMPLES / "web_docs" / name).open(encoding="utf-8") as handle:
        return [json.loads(next(handle)) for _ in range(count)]
