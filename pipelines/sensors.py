"""Sensors: new input files become partitions and runs without anyone clicking.

Only what changes outside Dagster needs a sensor; what follows a shard run (the corpus refresh, the
students, the labels) is declared on the assets (`pipelines.automation`)."""

import dagster as dg

from ops.webdocs.reading import shard_files
from pipelines.jobs import webdocs_job
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
