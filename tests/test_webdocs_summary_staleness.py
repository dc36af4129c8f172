"""`web_corpus_summary` is reported in sync after the sample's order of runs, as the UI's process sees it.

The "Unsynced" seen after `make run` came from code versions, not from the graph: the summary's derived
code version counted the intake's cleaning rules (its module imported `GROUP` from the intake module), so
an edit to the intake, anywhere in a tree edited while the run went on, marked the summary unsynced by itself.
"""

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.code_versions import module_closure
from tests.conftest import REPO_ROOT, sample_records, write_jsonl

SHARDS = ("a.jsonl", "b.jsonl")
INTAKE = ("raw_web_docs", "web_docs", "web_docs_quarantine")
SUMMARY = "web_corpus_summary"
PROBE = """
import json
import sys

import dagster as dg
from dagster._core.definitions.data_version import CachingStaleStatusResolver
from dagster._core.loader import LoadingContextForTest
from pipelines.definitions import defs

intake, shards, summary = json.loads(sys.argv[1])
with dg.DagsterInstance.get() as instance:
    resolver = CachingStaleStatusResolver(instance, defs.resolve_asset_graph(), LoadingContextForTest(instance))
    statuses = {f"{key}/{shard}": resolver.get_status(dg.AssetKey(key), shard).value
                for key in intake for shard in shards}
    key = dg.AssetKey(summary)
    statuses[key.to_user_string()] = resolver.get_status(key).value
    causes = [cause.reason for cause in resolver.get_stale_causes(key)]
print(json.dumps({"statuses": statuses, "causes": causes}))
"""


def test_the_summary_version_counts_only_the_code_it_runs() -> None:
    closure = set(module_closure("assets.webdocs.corpus"))
    assert {"assets.webdocs.corpus", "ops.webdocs.corpus", "ops.common.plots"} <= closure
    assert not closure & {"assets.webdocs.intake", "ops.webdocs.cleaning", "ops.webdocs.reading"}, closure


def _probe() -> dict:
    """Stale statuses computed in a fresh interpreter, as the UI's code server computes them."""
    arguments = json.dumps([INTAKE, SHARDS, SUMMARY])
    command = [sys.executable, "-c", PROBE, arguments]
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # two intake runs, the summary and two code-location loads in fresh interpreters
def test_summary_is_in_sync_after_the_sample_order_and_a_rerun_of_unchanged_shards(
    instance: dg.DagsterInstance, assay_home: Path
) -> None:
    from pipelines.definitions import build_definitions
    from pipelines.partitions import web_doc_shards
    from pipelines.profiles import build_resources

    inputs = assay_home.parent / "inputs"
    for index, shard in enumerate(SHARDS):
        write_jsonl(inputs / shard, sample_records("c4_en_sample_1000.jsonl", 8 + 4 * index))
    instance.add_dynamic_partitions(web_doc_shards.name, list(SHARDS))
    defs = build_definitions(build_resources("local"))
    intake = [dg.AssetKey(key) for key in INTAKE]

    def run_intake(shard: str) -> None:
        job = defs.resolve_job_def("webdocs")
        assert job.execute_in_process(instance=instance, partition_key=shard, asset_selection=intake).success

    for shard in SHARDS:  # the order of `make run`: every shard's intake, then the corpus-wide stage
        run_intake(shard)
    job = defs.resolve_job_def("webdocs_corpus")
    assert job.execute_in_process(instance=instance, asset_selection=[dg.AssetKey(SUMMARY)]).success
    first = _probe()
    assert set(first["statuses"].values()) == {"FRESH"}, first

    run_intake(SHARDS[0])  # same file, same content: same data versions, nothing to refresh
    again = _probe()
    assert set(again["statuses"].values()) == {"FRESH"}, again
