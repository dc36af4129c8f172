"""Sensors and schedules turn input files into partitions and runs."""

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from pipelines.partitions import web_doc_shards
from pipelines.profiles import build_resources
from pipelines.schedules import nightly_webdocs_refresh
from pipelines.sensors import web_doc_shard_sensor
from tests.conftest import sample_records, write_jsonl


def test_sensor_registers_each_new_file_once(instance, assay_home):
    folder = Path(os.environ["ASSAY_WEB_DOCS_INPUT"])
    write_jsonl(folder / "a.jsonl", sample_records("c4_en_sample_1000.jsonl", 2))
    (folder / "notes.txt").write_text("not a shard")
    resources = {"inputs": build_resources("local")["inputs"]}

    first = web_doc_shard_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert [request.partition_key for request in first.run_requests] == ["a.jsonl"]
    assert first.dynamic_partitions_requests[0].partition_keys == ["a.jsonl"]
    instance.add_dynamic_partitions(web_doc_shards.name, ["a.jsonl"])  # what the daemon does with it

    write_jsonl(folder / "b.jsonl", sample_records("c4_en_sample_1000.jsonl", 2))
    second = web_doc_shard_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert [request.partition_key for request in second.run_requests] == ["b.jsonl"]
    instance.add_dynamic_partitions(web_doc_shards.name, ["b.jsonl"])

    third = web_doc_shard_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert not third.run_requests and "no new files" in third.skip_reason.skip_message


def test_nightly_schedule_requests_every_shard(instance):
    instance.add_dynamic_partitions(web_doc_shards.name, ["a.jsonl", "b.jsonl"])
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 11, 26, 3, tzinfo=UTC)
    )
    requests = nightly_webdocs_refresh(context)
    assert [(r.partition_key, r.run_key) for r in requests] == [
        ("a.jsonl", "nightly:2026-11-26:a.jsonl"),
        ("b.jsonl", "nightly:2026-11-26:b.jsonl"),
    ]


def test_sample_runs_each_stage_through_its_domain_jobs_in_dependency_order(assay_home):
    from pipelines.definitions import build_definitions
    from pipelines.sample import job_batches, stages

    defs = build_definitions(build_resources("local"))
    graph = defs.resolve_asset_graph()
    jobs = [defs.resolve_job_def(job.name) for job in defs.jobs]
    job_of_key = {}
    for partitions_def, keys in stages(graph):
        batches = job_batches(keys, [job for job in jobs if job.partitions_def == partitions_def], graph)
        done: set = set()
        for job, batch in batches:
            assert not any(graph.get(key).parent_keys & (set(keys) - done - set(batch)) for key in batch)
            done |= set(batch)
            job_of_key.update({key.to_user_string(): job.name if job else None for key in batch})
        assert sorted(done) == sorted(keys)  # every asset once
    assert job_of_key["web_docs"] == "webdocs" and job_of_key["mlp_filter"] == "webdocs_corpus"
    assert job_of_key["web_doc_labels"] == "webdocs_labels" and job_of_key["rubric_grades"] == "shopbench"
