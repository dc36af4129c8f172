"""`make run`'s scheduler: batches wait for what they read, independent ones run side by side up to the
worker limit, a failure skips only what reads it; the plan of the real code location has no forward reads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import dagster as dg
import psutil
import pytest

from pipelines.profiles import build_resources
from pipelines.sample import Batch, _runner, _schedule, batch_dependencies, planned_batches

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_the_real_plan_reads_only_earlier_batches_and_keeps_domains_apart(assay_home):
    from pipelines.definitions import build_definitions

    defs = build_definitions(build_resources("local"))
    graph = defs.resolve_asset_graph()
    batches = planned_batches(graph, [defs.resolve_job_def(job.name) for job in defs.jobs])
    dependencies = batch_dependencies(batches, graph)  # raises on a forward read
    keys = [key for batch in batches for key in batch.keys]
    assert sorted(keys) == sorted(graph.materializable_asset_keys) and len(keys) == len(set(keys))
    of = {key.to_user_string(): index for index, batch in enumerate(batches) for key in batch.keys}

    def upstream(index: int) -> set[int]:
        found = set(dependencies[index])
        for parent in dependencies[index]:
            found |= upstream(parent)
        return found

    assert of["shopping_trajectories"] in upstream(of["customer_agent_grpo"])
    assert {of["web_docs"], of["distilled_classifier"]} <= upstream(of["web_doc_labels"])
    assert of["web_docs"] not in upstream(of["tool_specs"]) and of["tool_specs"] not in upstream(of["web_docs"])
    for index, batch in enumerate(batches):  # every parent of every asset is upstream of its batch (or in it)
        for key in batch.keys:
            assert {of[parent.to_user_string()] for parent in graph.get(key).parent_keys} - {index} <= upstream(index)


def test_schedule_runs_side_by_side_within_the_limit_and_skips_what_reads_a_failure():
    cohorts = dg.StaticPartitionsDefinition(["c1", "c2"])
    batches = [
        Batch("a", None, (dg.AssetKey("a"),)),
        Batch("b", cohorts, (dg.AssetKey("b"),)),  # fails for c2
        Batch("c", None, (dg.AssetKey("c"),)),
        Batch("d", None, (dg.AssetKey("d"),)),  # reads a and b: skipped
        Batch("e", None, (dg.AssetKey("e"),)),  # reads c: runs
    ]
    dependencies = [frozenset(), frozenset(), frozenset(), frozenset({0, 1}), frozenset({2})]
    spans: dict[tuple[str, str | None], tuple[float, float]] = {}
    running, most = [0], [0]
    lock = threading.Lock()

    def execute(batch: Batch, partition: str | None) -> tuple[str, bool, float]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        started = time.monotonic()
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        spans[(batch.label, partition)] = (started, time.monotonic())
        return f"run-{batch.label}-{partition}", (batch.label, partition) != ("b", "c2"), 0.05

    with ThreadPoolExecutor(2) as pool:
        runs = _schedule(
            None, batches, dependencies, [5, 4, 3, 2, 1], lambda b, p: pool.submit(execute, b, p), workers=2
        )

    ran = sorted((batches[run.batch].label, run.partition) for run in runs)
    assert ran == [("a", None), ("b", "c1"), ("b", "c2"), ("c", None), ("e", None)]
    assert [run.success for run in runs if run.partition == "c2"] == [False]
    assert spans[("c", None)][1] <= spans[("e", None)][0]  # e waited for what it reads
    assert spans[("b", "c1")][1] <= spans[("b", "c2")][0]  # one partition of a batch at a time
    assert most[0] == 2  # side by side, never more than the workers


@pytest.mark.slow  # two spawned workers, each loading the code location
def test_two_spawned_workers_run_real_batches_on_the_instance(assay_home, instance):
    from pipelines.recovery import LAUNCHER_PID_TAG

    batches = [
        Batch(None, None, (dg.AssetKey("multilingual_tasks"), dg.AssetKey("multilingual_tasks_quarantine"))),
        Batch(None, None, (dg.AssetKey("product_catalog"), dg.AssetKey("product_catalog_quarantine"))),
    ]
    with _runner(2, 1) as submit:
        futures = [submit(batch, None) for batch in batches]
        outcomes = [future.result() for future in futures]
    assert all(success for _, success, _ in outcomes), outcomes
    runs = [instance.get_run_by_id(run_id) for run_id, _, _ in outcomes]
    assert all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
    pids = {run.tags[LAUNCHER_PID_TAG] for run in runs}
    assert str(os.getpid()) not in pids  # executed in the workers, not here
    for key in ("multilingual_tasks", "product_catalog"):
        assert instance.get_latest_materialization_event(dg.AssetKey(key)) is not None


PARENT = """
import multiprocessing, os, time
from concurrent.futures import ProcessPoolExecutor
from pipelines.sample import _start_worker

pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker, initargs=(1,))
print(pool.submit(os.getpid).result(), flush=True)
time.sleep(600)
"""


@pytest.mark.slow  # a spawned worker loads the code location
def test_a_worker_ends_with_the_sample_process_that_started_it():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    parent.kill()  # what `kill -9` of `make run` does: nothing reaches the workers but the parent's death
    parent.wait()
    deadline = time.monotonic() + 60  # a bound on waiting, not a timing assertion
    while psutil.pid_exists(worker) and psutil.Process(worker).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"worker {worker} outlived the sample's process"
        time.sleep(0.2)


def test_a_dead_worker_is_named_with_the_batches_it_took_down():
    batches = [Batch("a", None, (dg.AssetKey("a"),)), Batch("b", None, (dg.AssetKey("b"),))]

    def submit(batch: Batch, partition: str | None) -> Future:
        future: Future = Future()
        future.set_exception(BrokenProcessPool("A process in the process pool was terminated abruptly"))
        return future

    with pytest.raises(RuntimeError, match=r"worker process died while running (a, b|b, a) .*make run"):
        _schedule(None, batches, [frozenset(), frozenset()], [1, 1], submit, workers=2)
