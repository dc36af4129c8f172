"""End to end as a user runs it: `dagster asset materialize` in a subprocess, from the repo root."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.partitions import web_doc_shards
from tests.conftest import REPO_ROOT, sample_records, write_jsonl

pytestmark = pytest.mark.slow


def test_dagster_cli_materializes_the_webdocs_selection(instance, assay_home):
    write_jsonl(Path(os.environ["ASSAY_WEB_DOCS_INPUT"]) / "cli.jsonl", sample_records("c4_en_sample_1000.jsonl", 12))
    instance.add_dynamic_partitions(web_doc_shards.name, ["cli.jsonl"])
    dagster = Path(sys.executable).with_name("dagster")
    completed = subprocess.run(
        [
            str(dagster),
            "asset",
            "materialize",
            "-m",
            "pipelines.definitions",
            "--select",
            "raw_web_docs,web_docs,web_docs_quarantine,web_doc_embeddings",
            "--partition",
            "cli.jsonl",
        ],
        cwd=REPO_ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    for key in ("raw_web_docs", "web_docs", "web_docs_quarantine", "web_doc_embeddings"):
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(key), asset_partitions=["cli.jsonl"]), limit=1
        ).records
        assert records, f"{key} was not materialized by the CLI run"
    checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("web_docs"), "web_docs_valid")]
    )
    assert checks and all(record.status.value == "SUCCEEDED" for record in checks.values())
    raw = instance.fetch_materializations(dg.AssetKey("raw_web_docs"), limit=1).records[0]
    assert raw.asset_materialization.metadata["dagster/row_count"].value == 12
