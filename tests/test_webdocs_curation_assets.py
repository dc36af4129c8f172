"""The curation chain as Dagster runs it: real instance, store, DuckDB, checks; upstream labels are fakes."""

import os
import signal
import subprocess
import sys
import time

import dagster as dg
import duckdb
import numpy as np
import polars as pl
import pytest

from assets.outputs import frame_output
from assets.webdocs import curation, curation_checks, proxies
from ops.webdocs.taxonomy import vocabularies
from pipelines.partitions import curation_compounds, curation_filters, web_doc_shards
from pipelines.profiles import build_resources
from resources.io_manager import latest_materialization
from tests.conftest import REPO_ROOT, sample_records
from training.webdocs.mlp_filter import predictions_frame

pytestmark = pytest.mark.slow
SHARDS = ("a.jsonl", "b.jsonl")
TINY = {
    "ASSAY_PROXY_TOKEN_BUDGET": "1024",
    "ASSAY_PROXY_HIDDEN": "32",
    "ASSAY_PROXY_LAYERS": "1",
    "ASSAY_PROXY_TARGET_BYTES": "1024",
    "ASSAY_FILTER_SEARCH_MAX_FILTERS": "2",
    "ASSAY_FILTER_SEARCH_TOP_K": "2",
}


def shard_docs(shard: str) -> pl.DataFrame:
    """30 real documents per shard; shard b repeats one of shard a's documents with a small edit."""
    records = sample_records("c4_en_sample_1000.jsonl", 60)
    half = records[:30] if shard == SHARDS[0] else records[30:]
    rows = [{"doc_id": f"{shard[0]}-{i:02d}", "shard": shard, "text": r["text"]} for i, r in enumerate(half)]
    if shard == SHARDS[1]:
        rows.append({"doc_id": "b-dup", "shard": shard, "text": records[4]["text"] + " Posted again."})
    return pl.DataFrame(rows)


@dg.asset(name="web_docs", partitions_def=web_doc_shards, group_name="webdocs", code_version="fake")
def FakeWebDocs(context: dg.AssetExecutionContext) -> dg.Output:
    """Stand-in for the cleaned documents of one shard."""
    return frame_output(shard_docs(context.partition_key))


@dg.asset(name="web_doc_labels", partitions_def=web_doc_shards, group_name="webdocs", code_version="fake")
def FakeWebDocLabels(context: dg.AssetExecutionContext) -> dg.Output:
    """Stand-in for the MLP filter's labels: seeded random probabilities per document."""
    ids = shard_docs(context.partition_key)["doc_id"].to_list()
    rng = np.random.default_rng(SHARDS.index(context.partition_key))
    probs = {d: rng.dirichlet(np.ones(len(c)), size=len(ids)).astype(np.float32) for d, c in vocabularies().items()}
    return frame_output(predictions_frame(ids, probs, vocabularies()))


ASSETS = [FakeWebDocs, FakeWebDocLabels, *dg.load_assets_from_modules([curation, proxies])]
CHECKS = dg.load_asset_checks_from_modules([curation_checks])


def materialize(instance, selection: list[str], partition: str | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        ASSETS + CHECKS,
        selection=selection,
        partition_key=partition,
        instance=instance,
        resources=build_resources("local"),
        raise_on_error=False,
    )


def passed(result: dg.ExecuteInProcessResult) -> bool:
    """The run succeeded and every (blocking) check it ran passed."""
    evaluations = result.get_asset_check_evaluations()
    return result.success and all(evaluation.passed for evaluation in evaluations)


def metadata(instance, key: str, name: str, partition: str | None = None):
    return latest_materialization(instance, dg.AssetKey(key), partition).metadata[name].value


@pytest.fixture
def upstream(instance, monkeypatch):
    for name, value in TINY.items():
        monkeypatch.setenv(name, value)
    instance.add_dynamic_partitions(web_doc_shards.name, list(SHARDS))
    for shard in SHARDS:
        assert materialize(instance, ["web_docs", "web_doc_labels"], shard).success
    return instance


def test_chain_from_dedup_to_curated_corpus(upstream, assay_home):
    instance = upstream
    result = materialize(instance, ["web_docs_dedup", "web_docs_dedup_quarantine", "filter_candidates"])
    assert passed(result) and len(result.get_asset_check_evaluations()) == 3
    assert metadata(instance, "web_docs_dedup", "rows_quarantined") == 1
    quarantine = pl.read_parquet(f"{metadata(instance, 'web_docs_dedup_quarantine', 'artifact_path')}/data.parquet")
    assert quarantine.select("record_id", "duplicate_of").rows() == [("b-dup", "a-04")]

    filters = instance.get_dynamic_partitions(curation_filters.name)
    assert "none" in filters and any(name.startswith("random_y") for name in filters)
    for name in filters:
        assert passed(materialize(instance, ["proxy_runs"], name)), name
    assert passed(materialize(instance, ["filter_search_pass1", "compound_filters"]))
    compounds = instance.get_dynamic_partitions(curation_compounds.name)
    assert any("__and__" in name for name in compounds) and any("__or__" in name for name in compounds)
    for name in compounds:
        assert passed(materialize(instance, ["compound_proxy_runs"], name)), name
    result = materialize(instance, ["filter_search_pass2", "curated_corpus"])
    assert passed(result) and len(result.get_asset_check_evaluations()) == 2

    assert metadata(instance, "filter_search_pass2", "full_grid_runs") == 2 + 2 * 1
    assert metadata(instance, "filter_search_pass2", "two_pass_runs") == len(filters) + len(compounds)
    rows = metadata(instance, "curated_corpus", "dagster/row_count")
    with duckdb.connect(str(assay_home / "assay.duckdb"), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM curated_corpus").fetchone()[0] == rows > 0


def test_bad_filter_expression_fails_naming_the_filter(upstream):
    instance = upstream
    assert materialize(instance, ["web_docs_dedup", "web_docs_dedup_quarantine"]).success
    result = dg.materialize(
        ASSETS + CHECKS,
        selection=["filter_candidates"],
        instance=instance,
        resources=build_resources("local"),
        run_config={"ops": {"filter_candidates": {"config": {"extra_filters": {"my_filter": "timeliness__p1 >= ("}}}}},
        raise_on_error=False,
    )
    assert not result.success
    errors = [event.event_specific_data.error.to_string() for event in result.all_events if event.is_step_failure]
    assert any("'my_filter'" in message and "does not parse" in message for message in errors)


KILL_SCRIPT = """
import sys
from tests.test_webdocs_curation_assets import materialize
import dagster as dg
with dg.DagsterInstance.get() as instance:
    materialize(instance, ["proxy_runs"], sys.argv[1])
"""


def test_killed_proxy_run_resumes_without_duplicate_partitions(upstream, assay_home, monkeypatch):
    instance = upstream
    monkeypatch.setenv("ASSAY_PROXY_TOKEN_BUDGET", str(128 * 8 * 100))  # 100 steps a seed, checkpoints every 20
    assert materialize(instance, ["web_docs_dedup", "web_docs_dedup_quarantine", "filter_candidates"]).success
    scratch = assay_home / "store" / "_scratch" / "proxy_runs" / "none"
    process = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, "none"], cwd=REPO_ROOT, env=dict(os.environ), start_new_session=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None and not list(scratch.glob("*.safetensors")):
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert list(scratch.glob("*.safetensors")), "no checkpoint was written before the kill"
    partitions = instance.get_dynamic_partitions(curation_filters.name)
    assert materialize(instance, ["proxy_runs"], "none").success
    resumed = [int(step) for step in str(metadata(instance, "proxy_runs", "resumed_from_steps", "none")).split(", ")]
    assert resumed[0] > 0
    assert instance.get_dynamic_partitions(curation_filters.name) == partitions
    assert not list(scratch.glob("*.safetensors"))  # the stored version supersedes the checkpoints
