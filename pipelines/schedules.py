"""Schedules for recurring work."""

import dagster as dg

from pipelines.jobs import webdocs_job
from pipelines.partitions import web_doc_shards


@dg.schedule(job=webdocs_job, cron_schedule="0 3 * * *", default_status=dg.DefaultScheduleStatus.STOPPED)
def nightly_webdocs_refresh(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Re-run every registered shard nightly: changed input files produce new versions, unchanged
    ones recompute nothing new (content-addressed store, embedding reuse) and keep their versions."""
    shards = context.instance.get_dynamic_partitions(web_doc_shards.name)
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    return [dg.RunRequest(partition_key=shard, run_key=f"nightly:{day}:{shard}") for shard in shards]
