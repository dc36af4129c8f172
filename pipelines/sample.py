"""`python -m pipelines.sample`: run the `sample` job on the bundled data and say what came out.

Used by `make run`. Runs go to the Dagster instance in `$DAGSTER_HOME`, so they appear in the UI
(`make ui`) with their metadata. Partitioned assets run once per registered shard, then the
corpus-wide assets run once, exactly as the sensors would chain them.
"""

from __future__ import annotations

import sys
import time

import dagster as dg

from ops.webdocs.reading import shard_files
from pipelines.definitions import defs
from pipelines.partitions import web_doc_shards
from pipelines.recovery import fail_orphaned_runs, launcher_tags
from resources.io_manager import ARTIFACT_PATH, latest_materialization


def register_sample_shards(instance: dg.DagsterInstance, folder: str) -> list[str]:
    """Register every input file as a web-doc shard (idempotent) and return all shard keys."""
    names = [path.name for path in shard_files(folder)]
    known = set(instance.get_dynamic_partitions(web_doc_shards.name))
    instance.add_dynamic_partitions(web_doc_shards.name, [name for name in names if name not in known])
    return names


def stages(graph) -> list[tuple[bool, list[dg.AssetKey]]]:
    """Assets grouped into stages that alternate between per-shard and corpus-wide work.

    An asset's stage is the number of switches between partitioned and unpartitioned assets on the
    longest path from a root to it, so every stage only needs stages before it.
    """
    stage: dict[dg.AssetKey, int] = {}
    for key in graph.toposorted_asset_keys:
        partitioned = graph.get(key).partitions_def is not None
        stage[key] = max(
            (
                stage[parent] + ((graph.get(parent).partitions_def is not None) != partitioned)
                for parent in graph.get(key).parent_keys
                if parent in stage
            ),
            default=0 if partitioned else 1,
        )
    return [
        (graph.get(keys[0]).partitions_def is not None, keys)
        for number in sorted(set(stage.values()))
        if (keys := [key for key in stage if stage[key] == number])
    ]


def run_sample(instance: dg.DagsterInstance) -> list[dg.ExecuteInProcessResult]:
    """Materialize every asset of the `sample` job, stage by stage; partitioned stages shard by shard."""
    graph = defs.resolve_asset_graph()
    job = defs.resolve_job_def("sample")
    folder = defs.resources["inputs"].web_docs
    for run_id in fail_orphaned_runs(instance):
        print(f"[assay] run {run_id} was interrupted earlier; marked failed, its work resumes now", flush=True)
    quiet = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}  # steps' own logs, not engine events
    options = {"instance": instance, "raise_on_error": False, "tags": launcher_tags(), "run_config": quiet}
    shards = register_sample_shards(instance, folder)
    results = []
    for partitioned, keys in stages(graph):
        names = ", ".join(key.to_user_string() for key in keys)
        for shard in shards if partitioned else [None]:
            print(f"[assay] materializing {names}" + (f" for shard {shard}" if shard else ""), flush=True)
            results.append(job.execute_in_process(partition_key=shard, asset_selection=keys, **options))
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
                f"  {key.to_user_string():<22} {partition or '-':<44} rows={getattr(rows, 'value', '?'):<6} "
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
