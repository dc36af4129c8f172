"""The webdocs intake as Dagster runs it: real instance, real store, real LanceDB and models."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import lancedb
import polars as pl
import pytest

from assets.webdocs.embeddings import embeddings_table_name
from pipelines.definitions import build_definitions
from pipelines.partitions import web_doc_shards
from pipelines.profiles import build_resources
from pipelines.recovery import fail_orphaned_runs
from resources.io_manager import latest_materialization
from tests.conftest import REPO_ROOT, sample_records, write_jsonl

pytestmark = pytest.mark.slow
SHARD = "docs.jsonl"
INTAKE = [dg.AssetKey(key) for key in ("raw_web_docs", "web_docs", "web_docs_quarantine", "web_doc_embeddings")]


def run_shard(instance: dg.DagsterInstance, shard: str = SHARD) -> dg.ExecuteInProcessResult:
    """Register a shard and run the intake part of the per-shard webdocs job on it (annotation has its
    own tests with a fake teacher)."""
    instance.add_dynamic_partitions(web_doc_shards.name, [shard])
    defs = build_definitions(build_resources("local"))
    return defs.resolve_job_def("webdocs").execute_in_process(
        instance=instance, partition_key=shard, asset_selection=INTAKE, raise_on_error=False
    )


def data_versions(instance: dg.DagsterInstance, shard: str = SHARD) -> dict[str, str]:
    keys = ["raw_web_docs", "web_docs", "web_docs_quarantine", "web_doc_embeddings"]
    return {key: latest_materialization(instance, dg.AssetKey(key), shard).tags["dagster/data_version"] for key in keys}


def metadata_value(instance, key: str, name: str, shard: str = SHARD):
    return latest_materialization(instance, dg.AssetKey(key), shard).metadata[name].value


def store_files(home: Path) -> set[str]:
    return {str(p.relative_to(home)) for p in (home / "store").rglob("*") if p.is_file()}


def embeddings_table(home: Path):
    model_id = build_resources("local")["embedder"].model_id
    return lancedb.connect(str(home / "lancedb")).open_table(embeddings_table_name(model_id))


@pytest.fixture
def small_shard(assay_home: Path) -> Path:
    """30 real C4 documents plus a duplicate, an HTML-only page, a record without text and a broken line."""
    records = sample_records("c4_en_sample_1000.jsonl", 30)
    records += [dict(records[0]), {"text": "<div><span></span></div>" * 40}, {"url": "https://x.example"}]
    path = write_jsonl(Path(os.environ["ASSAY_WEB_DOCS_INPUT"]) / SHARD, records)
    with path.open("a") as handle:
        handle.write('{"text": "cut off in the middle\n')
    return path


def test_shard_end_to_end_accounts_for_every_row(instance, small_shard, assay_home):
    result = run_shard(instance)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 4 and all(check.passed for check in checks)
    raw = metadata_value(instance, "raw_web_docs", "dagster/row_count")
    kept = metadata_value(instance, "web_docs", "dagster/row_count")
    quarantined = metadata_value(instance, "web_docs_quarantine", "dagster/row_count")
    assert (raw, raw - quarantined) == (34, kept) and quarantined >= 4
    folder = Path(metadata_value(instance, "web_docs_quarantine", "artifact_path"))
    reasons = pl.read_parquet(folder / "data.parquet")["reason"].to_list()
    assert {"duplicate", "markup", "no_text", "unreadable"} <= set(reasons)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["rows"] == quarantined and manifest["upstream_versions"]["raw_web_docs"]
    assert embeddings_table(assay_home).count_rows() == kept


def test_second_run_keeps_versions_and_writes_nothing(instance, small_shard, assay_home):
    assert run_shard(instance).success
    versions, files = data_versions(instance), store_files(assay_home)
    lance_version = embeddings_table(assay_home).version
    assert run_shard(instance).success
    assert data_versions(instance) == versions
    assert store_files(assay_home) == files
    assert embeddings_table(assay_home).version == lance_version
    assert metadata_value(instance, "web_doc_embeddings", "embedded_now") == 0


def test_changed_input_makes_new_versions_and_keeps_old_ones(instance, small_shard, assay_home):
    assert run_shard(instance).success
    before = data_versions(instance)
    old_folder = Path(metadata_value(instance, "web_docs", "artifact_path"))
    lines = small_shard.read_text().splitlines(keepends=True)
    edited = json.loads(lines[1])
    edited["text"] += " An added closing sentence changes this document."
    lines[1] = json.dumps(edited) + "\n"
    small_shard.write_text("".join(lines))
    assert run_shard(instance).success
    after = data_versions(instance)
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {"raw_web_docs", "web_docs", "web_doc_embeddings"}  # the quarantine did not change
    new_folder = Path(metadata_value(instance, "web_docs", "artifact_path"))
    assert new_folder != old_folder and (old_folder / "manifest.json").exists()  # the old version stays
    old_text = pl.read_parquet(old_folder / "data.parquet").filter(pl.col("line") == 2)["text"].item()
    new_text = pl.read_parquet(new_folder / "data.parquet").filter(pl.col("line") == 2)["text"].item()
    assert new_text == old_text + " An added closing sentence changes this document."
    table = embeddings_table(assay_home)
    assert table.count_rows() == metadata_value(instance, "web_docs", "dagster/row_count")
    assert metadata_value(instance, "web_doc_embeddings", "deleted_stale") == 1
    assert metadata_value(instance, "web_doc_embeddings", "embedded_now") == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty\.jsonl: the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", r"invalid UTF-8"),
    ],
)
def test_broken_file_is_recorded_as_an_unreadable_shard(instance, assay_home, content, message):
    (Path(os.environ["ASSAY_WEB_DOCS_INPUT"]) / "empty.jsonl").write_bytes(content)
    result = run_shard(instance, "empty.jsonl")
    assert result.success and all(check.passed for check in result.get_asset_check_evaluations())
    assert metadata_value(instance, "web_docs", "dagster/row_count", "empty.jsonl") == 0
    assert metadata_value(instance, "raw_web_docs", "unreadable_shard", "empty.jsonl") is True
    folder = Path(metadata_value(instance, "web_docs_quarantine", "artifact_path", "empty.jsonl"))
    quarantine = pl.read_parquet(folder / "data.parquet")
    assert set(quarantine["reason"]) == {"unreadable_shard"}
    assert re.search(message, quarantine["detail"][0])


def test_killed_run_resumes_without_duplicates(instance, assay_home):
    """SIGKILL the sample run while it embeds, then run again: finished batches are reused."""
    records = sample_records("c4_en_sample_1000.jsonl", 240)
    write_jsonl(Path(os.environ["ASSAY_WEB_DOCS_INPUT"]) / SHARD, records)
    # one run at a time, so the one in flight when killed is the shard's (in parallel, another domain's run is too)
    env = {
        **os.environ,
        "ASSAY_EMBEDDER_BATCH": "16",
        "ASSAY_ANNOTATION_DOCS_PER_SHARD": "1",
        "ASSAY_SAMPLE_WORKERS": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "pipelines.sample"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 600  # a bound on waiting, not a timing assertion: loading the definitions
    # and the stages before the embeddings take minutes on a loaded 2-core machine
    stored = 0
    while time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.5)
        try:
            stored = embeddings_table(assay_home).count_rows()
        except (ValueError, FileNotFoundError, RuntimeError):
            continue
        if stored >= 32:
            break
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert stored >= 32, "the run ended before it could be killed half-way"
    partial = embeddings_table(assay_home).count_rows()
    assert len(fail_orphaned_runs(instance)) == 1  # what `make run` does first: free the dead run's pool slot
    assert run_shard(instance).success
    kept = metadata_value(instance, "web_docs", "dagster/row_count")
    assert partial < kept
    assert metadata_value(instance, "web_doc_embeddings", "reused") == partial
    assert metadata_value(instance, "web_doc_embeddings", "embedded_now") == kept - partial
    ids = embeddings_table(assay_home).to_arrow()["doc_id"].to_pylist()
    assert len(ids) == len(set(ids)) == kept
