"""`python -m pipelines.sample`: run the `sample` job on the bundled data and say what came out.

Used by `make run`. Runs go to the Dagster instance in `$DAGSTER_HOME`, so they appear in the UI
(`make ui`) with their metadata. Partitioned assets run once per partition (web-doc shard, customer
cohort, model under test), unpartitioned ones once, in dependency order, as the sensors and
backfills would chain them.
"""

from __future__ import annotations

import sys
import time

import dagster as dg

from ops.webdocs.reading import shard_files
from pipelines.definitions import defs
from pipelines.partitions import models_under_test, web_doc_shards
from pipelines.recovery import fail_orphaned_runs, launcher_tags
from resources.io_manager import ARTIFACT_PATH, latest_materialization


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


def run_sample(instance: dg.DagsterInstance) -> list[dg.ExecuteInProcessResult]:
    """Materialize every asset, stage by stage, each through its domain job (else the implicit asset job);
    partitioned stages key by key."""
    graph = defs.resolve_asset_graph()
    implicit = defs.resolve_implicit_global_asset_job_def()
    domain_jobs = [defs.resolve_job_def(job.name) for job in defs.jobs]
    for run_id in fail_orphaned_runs(instance):
        print(f"[assay] run {run_id} was interrupted earlier; marked failed, its work resumes now", flush=True)
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # steps' own logs, not engine events
    options = {"instance": instance, "raise_on_error": False, "tags": launcher_tags(), "run_config": quiet}
    register_sample_partitions(instance)
    results = []
    for partitions_def, keys in stages(graph):
        partitions = partitions_def.get_partition_keys(dynamic_partitions_store=instance) if partitions_def else [None]
        jobs = [job for job in domain_jobs if job.partitions_def == partitions_def]
        for partition in partitions:
            for job, batch in job_batches(keys, jobs, graph):
                names = ", ".join(key.to_user_string() for key in batch)
                where = f" for {partition}" if partition else ""
                print(f"[assay] {(job or implicit).name}: materializing {names}{where}", flush=True)
                run = (job or implicit).execute_in_process(partition_key=partition, asset_selection=batch, **options)
                results.append(run)
        if not all(result.success for result in results):
            break  # later stages read what this one failed to produce
    return results


def summary_lines(instance: dg.DagsterInstance) -> list[str]:
    """One line per asset (partition): rows, data version and where the artifact lives."""
    graph = defs.resolve_asset_graph()
    lines = []
    for key in sorted(graph.materializable_asset_keys, key=lambda k: k.to_user_string()):
        partitions_def = graph.get(key).partitions_def
        partitions = partitions_def.get_partition_keys(dynamic_partitions_store=instance) if partitions_def else [None]
        for partition in partitions:
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
    results = run_sample(instance)
    failed = [result.run_id for result in results if not result.success]
    print(f"\n[assay] sample finished in {time.perf_counter() - started:.0f}s; produced:")
    print("\n".join(summary_lines(instance)))
    print("\n[assay] open the UI on these runs:  make ui   ->  http://127.0.0.1:3000")
    if failed:
        print(f"[assay] FAILED runs: {', '.join(failed)} (see `make ui`, Runs)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
