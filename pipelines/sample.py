"""`python -m pipelines.sample`: run the `sample` job on the bundled data and say what came out.

Used by `make run`. Runs go to the Dagster instance in `$DAGSTER_HOME`, so they appear in the UI
(`make ui`) with their metadata. Partitioned assets run once per partition (web-doc shard, customer
cohort, model under test), unpartitioned ones once, in dependency order, as the sensors and
backfills would chain them.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
from dagster._core.instance.ref import InstanceRef

from ops.common.threads import CPU_THREADS_ENV, available_threads
from ops.webdocs.reading import shard_files
from pipelines.definitions import defs
from pipelines.executors import HEAVY_KINDS
from pipelines.partitions import models_under_test, web_doc_shards
from pipelines.recovery import fail_orphaned_runs, launcher_tags
from resources.io_manager import ARTIFACT_PATH, latest_materialization

SAMPLE_WORKERS_ENV = "ASSAY_SAMPLE_WORKERS"
IMPLICIT_JOB = "__ASSET_JOB"
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def register_sample_partitions(instance: dg.DagsterInstance) -> None:
    """Register every web-docs input file as a shard and the configured models under test (idempotent)."""
    wanted = {
        web_doc_shards.name: [path.name for path in shard_files(defs.resources["inputs"].web_docs)],
        models_under_test.name: list(defs.resources["scale"].shopbench_models),
    }
    for name, keys in wanted.items():
        known = set(instance.get_dynamic_partitions(name))
        instance.add_dynamic_partitions(name, [key for key in keys if key not in known])


def stages(graph) -> list[tuple[dg.PartitionsDefinition | None, list[dg.AssetKey]]]:
    """Assets grouped into stages, each of one partitioning, in an order that only needs earlier stages.

    An asset's stage is the number of switches of partitioning (none, web-doc shards, customer
    cohorts, models under test) on the longest path from a root to it; unpartitioned roots start at 1
    so that they join the first corpus-wide stage. Assets of one stage number but different
    partitionings never depend on each other, so they run as separate stages.
    """
    stage: dict[dg.AssetKey, int] = {}
    for key in graph.toposorted_asset_keys:
        partitions_def = graph.get(key).partitions_def
        stage[key] = max(
            (
                stage[parent] + (graph.get(parent).partitions_def != partitions_def)
                for parent in graph.get(key).parent_keys
                if parent in stage
            ),
            default=0 if partitions_def is not None else 1,
        )
    groups: dict[tuple[int, str], list[dg.AssetKey]] = {}
    for key, number in stage.items():
        groups.setdefault((number, _partitioning_name(graph.get(key).partitions_def)), []).append(key)
    return [(graph.get(keys[0]).partitions_def, keys) for _, keys in sorted(groups.items())]


def _partitioning_name(partitions_def: dg.PartitionsDefinition | None) -> str:
    if partitions_def is None:
        return ""
    if isinstance(partitions_def, dg.StaticPartitionsDefinition):  # unnamed: two static sets differ by their keys
        return "static:" + ",".join(partitions_def.get_partition_keys())
    return getattr(partitions_def, "name", None) or type(partitions_def).__name__


def job_batches(
    keys: list[dg.AssetKey], jobs: list[dg.JobDefinition], graph
) -> list[tuple[dg.JobDefinition | None, list[dg.AssetKey]]]:
    """A stage's assets (in dependency order) as runs of the domain job that selects them (None: no job does).

    Each batch takes the keys of one job that depend on no key still waiting, so batches run in order and
    the runs show up under their domain job in the UI.
    """
    job_of = {key: next((job for job in jobs if key in job.asset_layer.selected_asset_keys), None) for key in keys}
    remaining, batches = list(keys), []
    while remaining:
        job, batch, blocked = job_of[remaining[0]], [], set()
        for key in remaining:
            if job_of[key] is job and not (graph.get(key).parent_keys & blocked):
                batch.append(key)
            else:
                blocked.add(key)
        batches.append((job, batch))
        remaining = [key for key in remaining if key not in batch]
    return batches


@dataclass(frozen=True)
class Batch:
    """Assets of one stage that one job (None: the implicit asset job) materializes in one run per partition."""

    job_name: str | None
    partitions_def: dg.PartitionsDefinition | None
    keys: tuple[dg.AssetKey, ...]

    @property
    def label(self) -> str:
        return self.job_name or IMPLICIT_JOB


@dataclass(frozen=True)
class SampleRun:
    """One finished run of the sample."""

    batch: int
    partition: str | None
    run_id: str
    success: bool
    seconds: float


def planned_batches(graph, jobs: list[dg.JobDefinition]) -> list[Batch]:
    """Every asset once, stage by stage and within a stage by job (`job_batches`): a valid sequential order."""
    batches = []
    for partitions_def, keys in stages(graph):
        same = [job for job in jobs if job.partitions_def == partitions_def]
        for job, keys_of_job in job_batches(keys, same, graph):
            batches.append(Batch(job.name if job else None, partitions_def, tuple(keys_of_job)))
    return batches


def batch_dependencies(batches: list[Batch], graph) -> list[frozenset[int]]:
    """For each batch, the batches holding a parent of its assets or an input of their checks.

    A batch waits for every partition of those; batches that share no lineage run side by side. Raises if a
    dependency points forward (the plan's order would have read data not produced yet).
    """
    owner = {key: index for index, batch in enumerate(batches) for key in batch.keys}
    dependencies = []
    for index, batch in enumerate(batches):
        parents: set[dg.AssetKey] = set()
        for key in batch.keys:
            parents |= graph.get(key).parent_keys
            for check in graph.get_check_keys_for_assets({key}):
                parents |= {entity for entity in graph.get(check).parent_entity_keys if isinstance(entity, dg.AssetKey)}
        needed = {owner[parent] for parent in parents if parent in owner} - {index}
        forward = sorted(batches[i].keys[0].to_user_string() for i in needed if i > index)
        if forward:
            raise ValueError(
                f"batch {batch.label} ({batch.keys[0].to_user_string()}, ...) reads {forward} of a later batch"
            )
        dependencies.append(frozenset(needed))
    return dependencies


def critical_path(
    batches: list[Batch], dependencies: list[frozenset[int]], graph, instance: dg.DagsterInstance
) -> list[int]:
    """Per batch, the weight of the heaviest chain from it to a leaf (model and LLM steps weigh most, times the
    partitions known now), so the scheduler starts long chains first and the last minutes are not one chain
    running alone."""
    weight = [
        len(_partitions(batch.partitions_def, instance))
        * (1 + sum(4 for key in batch.keys if HEAVY_KINDS & graph.get(key).kinds))
        for batch in batches
    ]
    path = list(weight)
    for index in reversed(range(len(batches))):
        for parent in dependencies[index]:
            path[parent] = max(path[parent], weight[parent] + path[index])
    return path


def sample_workers() -> int:
    """Runs executed side by side: `ASSAY_SAMPLE_WORKERS`, else 2 where there are 2 cores or more."""
    return max(1, int(os.environ.get(SAMPLE_WORKERS_ENV) or min(2, available_threads())))


def run_sample(instance: dg.DagsterInstance, workers: int = 1) -> list[SampleRun]:
    """Materialize every asset, each batch through its domain job (else the implicit asset job), partitioned
    batches key by key, up to `workers` runs at a time (each in its own process with its share of the cores).

    A batch starts when the batches it reads are done; its partitions are read then (filter search registers
    its own). A failed batch skips those that read it; independent ones go on.
    """
    graph = defs.resolve_asset_graph()
    batches = planned_batches(graph, [defs.resolve_job_def(job.name) for job in defs.jobs])
    dependencies = batch_dependencies(batches, graph)
    for run_id in fail_orphaned_runs(instance):
        print(f"[assay] run {run_id} was interrupted earlier; marked failed, its work resumes now", flush=True)
    register_sample_partitions(instance)
    priority = critical_path(batches, dependencies, graph, instance)
    threads = max(1, available_threads() // workers)
    if workers > 1:
        print(f"[assay] {len(batches)} batches, up to {workers} runs at a time, {threads} thread(s) each", flush=True)
    with _runner(workers, threads) as submit:
        return _schedule(instance, batches, dependencies, priority, submit, workers)


def _schedule(instance, batches, dependencies, priority, submit, workers) -> list[SampleRun]:
    """Start ready batches (highest `priority` first, one partition of a batch at a time) until all are done."""
    pending = {index: None for index in range(len(batches))}  # batch -> partitions left (None: not expanded)
    done: set[int] = set()
    failed: set[int] = set()
    runs: list[SampleRun] = []
    in_flight: dict[Future, tuple[int, str | None]] = {}
    while pending or in_flight:
        for index in sorted(pending, key=lambda i: -priority[i]):
            if len(in_flight) >= workers:
                break
            if any(i == index for i, _ in in_flight.values()) or not dependencies[index] <= done:
                continue
            if pending[index] is None:
                pending[index] = _partitions(batches[index].partitions_def, instance)
            if pending[index]:
                partition = pending[index].pop(0)
                in_flight[submit(batches[index], partition)] = (index, partition)
            else:  # all partitions run (or none to run)
                del pending[index]
                (failed if index in failed else done).add(index)
        skipped = [index for index in pending if dependencies[index] & failed]
        for index in skipped:
            print(f"[assay] {batches[index].label}: skipped, it reads a batch that failed", flush=True)
            del pending[index]
            failed.add(index)
        if not in_flight:
            if pending and not skipped and not any(dependencies[i] <= done for i in pending):
                raise RuntimeError(f"no batch of {sorted(pending)} can start: their inputs never finish")
            continue
        finished, _ = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in finished:
            index, partition = in_flight.pop(future)
            try:
                outcome = future.result()
            except BrokenProcessPool as error:
                lost = ", ".join(_named(batches, i, p) for i, p in [(index, partition), *in_flight.values()])
                raise RuntimeError(
                    f"a worker process died while running {lost} (killed, or out of memory?); "
                    "run `make run` again: it marks those runs failed and reuses all finished work"
                ) from error
            run = SampleRun(index, partition, *outcome)
            runs.append(run)
            verdict = "succeeded" if run.success else "FAILED"
            print(f"[assay] {_named(batches, index, partition)}: {verdict} in {run.seconds:.0f} s", flush=True)
            if not run.success:
                failed.add(index)
            if index in pending and not pending[index]:
                del pending[index]
                (failed if index in failed else done).add(index)
    return runs


def _named(batches: list[Batch], index: int, partition: str | None) -> str:
    return batches[index].label + (f" for {partition}" if partition else "")


def _partitions(partitions_def: dg.PartitionsDefinition | None, instance: dg.DagsterInstance) -> list[str | None]:
    if partitions_def is None:
        return [None]
    return list(partitions_def.get_partition_keys(dynamic_partitions_store=instance))


@contextmanager
def _runner(workers: int, threads: int) -> Iterator[Callable[[Batch, str | None], Future]]:
    """`submit(batch, partition)`: in this process when `workers` is 1, else in a pool of spawned processes."""
    if workers == 1:

        def submit(batch: Batch, partition: str | None) -> Future:
            future: Future = Future()
            future.set_result(execute_batch(batch.job_name, partition, batch.keys, op_pools=True))
            return future

        yield submit
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker, initargs=(threads,)) as pool:
        yield lambda batch, partition: pool.submit(execute_batch, batch.job_name, partition, batch.keys, False)


def _start_worker(threads: int) -> None:
    """A worker's share of the cores, for llama.cpp (`ops.common.threads`) and torch's OpenMP (read at import);
    and its end with the sample's process, which a plain `kill` of `make run` would otherwise leave running."""
    die_with_parent()
    for name in (CPU_THREADS_ENV, "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(threads)


def die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent exits (`PR_SET_PDEATHSIG`); elsewhere, nothing.

    A killed worker's run stays STARTED, tagged with the worker's pid: the next `make run` marks it failed and
    redoes it (`pipelines.recovery.fail_orphaned_runs`), as for a killed single-process sample.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def worker_instance() -> dg.DagsterInstance:
    """The instance in `$DAGSTER_HOME` without op-level pool slots, for a worker of a parallel sample.

    The pools (`llm`, `gpu`: one step at a time) guard the cores for UI runs, which each take every free core;
    the sample's workers split the cores between them instead (`_start_worker`), so two LLM or model steps side
    by side each run on their own core. With op slots, one worker waited for the other's LLM step.
    """
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return dg.DagsterInstance.get()  # says what is missing
    overrides = {"concurrency": {"pools": {"granularity": "run"}}}
    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(home, overrides=overrides))


def execute_batch(
    job_name: str | None, partition: str | None, keys: tuple[dg.AssetKey, ...], op_pools: bool
) -> tuple[str, bool, float]:
    """Run one batch for one partition on the instance in `$DAGSTER_HOME`: (run id, success, seconds).

    `op_pools` False (a worker of a parallel sample): the instance without op-level pool slots (`worker_instance`).
    """
    started = time.perf_counter()
    job = defs.resolve_job_def(job_name) if job_name else defs.resolve_implicit_global_asset_job_def()
    names = ", ".join(key.to_user_string() for key in keys)
    print(f"[assay] {job.name}: materializing {names}" + (f" for {partition}" if partition else ""), flush=True)
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # steps' own logs, not engine events
    with dg.DagsterInstance.get() if op_pools else worker_instance() as instance:
        result = job.execute_in_process(
            instance=instance,
            partition_key=partition,
            asset_selection=list(keys),
            raise_on_error=False,
            tags=launcher_tags(),
            run_config=quiet,
        )
    return result.run_id, result.success, time.perf_counter() - started


def summary_lines(instance: dg.DagsterInstance) -> list[str]:
    """One line per asset (partition): rows, data version and where the artifact lives."""
    graph = defs.resolve_asset_graph()
    lines = []
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        partitions_def = graph.get(key).partitions_def
        for partition in _partitions(partitions_def, instance):
            event = latest_materialization(instance, key, partition)
            if event is None:
                continue
            rows = event.metadata.get("dagster/row_count")
            where = event.metadata.get(ARTIFACT_PATH) or event.metadata.get("lance_uri") or ""
            lines.append(
                f"  {key.to_user_string():<30} {partition or '-':<40} rows={getattr(rows, 'value', '?'):<6} "
                f"version={event.tags.get('dagster/data_version', '?'):<32} {getattr(where, 'value', where)}"
            )
    return lines


def main() -> int:
    """Run the sample and print what it produced and how to look at it."""
    started = time.perf_counter()
    instance = dg.DagsterInstance.get()
    runs = run_sample(instance, sample_workers())
    failed = [run.run_id for run in runs if not run.success]
    print(f"\n[assay] sample finished in {time.perf_counter() - started:.0f}s; produced:")
    print("\n".join(summary_lines(instance)))
    print("\n[assay] open the UI on these runs:  make ui   ->  http://127.0.0.1:3000")
    if failed:
        print(f"[assay] FAILED runs: {', '.join(failed)} (see `make ui`, Runs)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
