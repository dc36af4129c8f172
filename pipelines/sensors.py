"""Sensors: new input files become partitions and runs without anyone clicking."""

import dagster as dg

from ops.webdocs.reading import shard_files
from pipelines.jobs import webdocs_corpus_job, webdocs_job, webdocs_labels_job
from pipelines.partitions import web_doc_shards
from resources.inputs import InputFoldersResource


@dg.sensor(job=webdocs_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def web_doc_shard_sensor(context: dg.SensorEvaluationContext, inputs: InputFoldersResource) -> dg.SensorResult:
    """Register each new file in the web-docs input folder as a shard and request its run."""
    known = set(context.instance.get_dynamic_partitions(web_doc_shards.name))
    new = [path.name for path in shard_files(inputs.web_docs) if path.name not in known]
    if not new:
        return dg.SensorResult(skip_reason=f"no new files in {inputs.web_docs}")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=name, run_key=f"web_doc_shard:{name}") for name in new],
        dynamic_partitions_requests=[web_doc_shards.build_add_request(new)],
    )


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[webdocs_job],
    request_job=webdocs_corpus_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def web_corpus_refresh_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    """After a shard run succeeds, refresh the corpus summary and the DuckDB tables, once every
    registered shard has clean documents (the summary reads them all)."""
    pending = pending_shards(context.instance)
    if pending:
        return dg.SkipReason(f"{len(pending)} shard(s) not cleaned yet, e.g. {pending[0]}")
    return dg.RunRequest(run_key=f"web_corpus_after:{context.dagster_run.run_id}")


def pending_shards(instance: dg.DagsterInstance) -> list[str]:
    """Registered shards whose `web_docs` was never materialized, sorted."""
    registered = set(instance.get_dynamic_partitions(web_doc_shards.name))
    return sorted(registered - instance.get_materialized_partitions(dg.AssetKey("web_docs")))


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[webdocs_corpus_job],
    request_job=webdocs_labels_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def web_doc_labels_sensor(context: dg.RunStatusSensorContext) -> list[dg.RunRequest]:
    """After the students are (re)trained, relabel every shard with the MLP filter."""
    shards = context.instance.get_dynamic_partitions(web_doc_shards.name)
    run_id = context.dagster_run.run_id
    return [dg.RunRequest(partition_key=shard, run_key=f"web_doc_labels:{run_id}:{shard}") for shard in shards]
