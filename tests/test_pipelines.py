"""Sensors and schedules turn input files into partitions and runs."""

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from pipelines.partitions import web_doc_shards
from pipelines.profiles import build_resources
from pipelines.schedules import nightly_webdocs_refresh
from pipelines.sensors import pending_shards, web_doc_shard_sensor
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


def test_corpus_refresh_waits_for_every_shard(instance):
    instance.add_dynamic_partitions(web_doc_shards.name, ["a.jsonl", "b.jsonl"])
    instance.report_runless_asset_event(dg.AssetMaterialization("web_docs", partition="a.jsonl"))
    assert pending_shards(instance) == ["b.jsonl"]
    instance.report_runless_asset_event(dg.AssetMaterialization("web_docs", partition="b.jsonl"))
    assert pending_shards(instance) == []
