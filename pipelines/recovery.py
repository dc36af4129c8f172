"""Recover from runs whose process was killed (SIGKILL, OOM, a closed laptop).

Such a run stays STARTED forever and keeps the `llm` / `gpu` pool slots it claimed, so the next
run would wait on them indefinitely. Runs started by `python -m pipelines.sample` carry the pid and
host of their process; when that process is gone, the run is marked failed and its slots freed.
Finished work is not lost: artifacts are content-addressed and LLM completions and embeddings are
cached, so the rerun recomputes only what the killed run had not finished. Runs launched by the
daemon (UI, sensors, backfills) are covered by the run monitoring configured in dagster.yaml.
"""

from __future__ import annotations

import os
import socket

import dagster as dg
import psutil

LAUNCHER_PID_TAG = "assay/launcher_pid"
LAUNCHER_HOST_TAG = "assay/launcher_host"


def launcher_tags() -> dict[str, str]:
    """Tags naming this process, to put on every run it executes in-process."""
    return {LAUNCHER_PID_TAG: str(os.getpid()), LAUNCHER_HOST_TAG: socket.gethostname()}


def fail_orphaned_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark in-progress runs whose launching process on this host is dead as failed; free their slots."""
    in_progress = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING])
    )
    orphaned = []
    for run in in_progress:
        pid, host = run.tags.get(LAUNCHER_PID_TAG), run.tags.get(LAUNCHER_HOST_TAG)
        if pid is None or host != socket.gethostname() or psutil.pid_exists(int(pid)):
            continue
        instance.report_run_failed(
            run,
            f"the process that ran it (pid {pid}) is gone; marked failed so its "
            "pool slots are freed and the work can resume",
        )
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        orphaned.append(run.run_id)
    return orphaned
