"""Issue 20: adding a shard from the command line, and an unreadable shard that must not block the corpus."""

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.definitions import build_definitions
from pipelines.partitions import web_doc_shards
from pipelines.profiles import build_resources
from resources.io_manager import latest_materialization
from tests.conftest import REPO_ROOT, sample_records, write_jsonl

pytestmark = pytest.mark.slow
CLEANING = [dg.AssetKey(key) for key in ("raw_web_docs", "web_docs", "web_docs_quarantine")]


def _unreadable(path: Path) -> Path:
    """A shard whose every line is JSON in Latin-1: invalid UTF-8 throughout."""
    records = [{"text": f"Caf\u00e9 cr\u00e8me num\u00e9ro {i}, servi chaud."} for i in range(4)]
    path.write_bytes(b"".join(json.dumps(r, ensure_ascii=False).encode("latin-1") + b"\n" for r in records))
    return path


def _metadata(instance: dg.DagsterInstance, key: str, name: str, partition: str | None = None):
    return latest_materialization(instance, dg.AssetKey(key), partition).metadata[name].value


def test_unreadable_shard_is_recorded_and_the_corpus_proceeds_without_it(instance, assay_home):
    inputs = Path(os.environ["ASSAY_WEB_DOCS_INPUT"])
    write_jsonl(inputs / "good.jsonl", sample_records("c4_en_sample_1000.jsonl", 8))
    _unreadable(inputs / "latin1.jsonl")
    instance.add_dynamic_partitions(web_doc_shards.name, ["good.jsonl", "latin1.jsonl"])
    defs = build_definitions(build_resources("local"))
    job = defs.resolve_implicit_global_asset_job_def()
    for shard in ("good.jsonl", "latin1.jsonl"):
        run = job.execute_in_process(instance=instance, partition_key=shard, asset_selection=CLEANING)
        assert run.success and all(check.passed for check in run.get_asset_check_evaluations())
    # Nothing registered is left unmaterialized, so nothing downstream waits for the shard.
    registered = set(instance.get_dynamic_partitions(web_doc_shards.name))
    assert instance.get_materialized_partitions(dg.AssetKey("web_docs")) == registered
    assert _metadata(instance, "web_docs", "dagster/row_count", "latin1.jsonl") == 0
    summary_run = job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey("web_corpus_summary")])
    assert summary_run.success
    assert _metadata(instance, "web_corpus_summary", "unreadable_shards") == 1
    assert _metadata(instance, "web_corpus_summary", "unreadable_shard_names") == "latin1.jsonl"
    summary = summary_run.output_for_node("web_corpus_summary")
    bad = summary.filter(summary["shard"] == "latin1.jsonl").row(0, named=True)
    assert (bad["rows_in"], bad["kept"], bad["unreadable_shard"]) == (4, 0, 4)


def test_add_shard_cli_registers_and_materializes_on_a_fresh_instance(instance, assay_home, tmp_path):
    elsewhere = tmp_path / "my_crawl"
    elsewhere.mkdir()
    good = write_jsonl(elsewhere / "crawl-001.jsonl", sample_records("c4_en_sample_1000.jsonl", 10))
    bad = _unreadable(elsewhere / "crawl-002.jsonl")
    completed = subprocess.run(
        [sys.executable, "-m", "pipelines.add_shard", str(good), str(bad), "--corpus"],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-3000:]
    assert "shard crawl-001.jsonl: ok" in completed.stdout and "web_corpus_summary: ok" in completed.stdout
    inputs = Path(os.environ["ASSAY_WEB_DOCS_INPUT"])
    assert (inputs / "crawl-001.jsonl").read_bytes() == good.read_bytes()  # copied into the input folder
    assert set(instance.get_dynamic_partitions(web_doc_shards.name)) == {"crawl-001.jsonl", "crawl-002.jsonl"}
    for key in ("raw_web_docs", "web_docs", "web_docs_quarantine", "web_doc_embeddings"):
        assert latest_materialization(instance, dg.AssetKey(key), "crawl-001.jsonl") is not None, key
    assert _metadata(instance, "raw_web_docs", "dagster/row_count", "crawl-001.jsonl") == 10
    assert _metadata(instance, "web_docs", "dagster/row_count", "crawl-002.jsonl") == 0
    assert _metadata(instance, "web_corpus_summary", "unreadable_shard_names") == "crawl-002.jsonl"
    again = subprocess.run(
        [sys.executable, "-m", "pipelines.add_shard", str(inputs / "crawl-001.jsonl")],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert again.returncode == 0, again.stderr[-3000:]  # re-adding a file already in the folder is a rerun
