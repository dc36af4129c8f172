"""The webdocs local sample's size knobs (issue 19): the first N records of a shard, and how much of each
document the teacher sees, as a real Dagster run applies them (real instance and store, a fake teacher)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import polars as pl

from assets.webdocs.intake import clean_web_docs, raw_web_docs
from assets.webdocs.taxonomy import annotate_web_docs
from ops.common.llm import ChatRequest
from pipelines.partitions import web_doc_shards
from pipelines.profiles import build_resources
from resources.io_manager import latest_materialization
from resources.scale import ScaleResource
from tests.conftest import sample_records, write_jsonl
from tests.fakes import Answer, FakeLLMResource

SHARD = "size.jsonl"


class FakeAbstainingTeacher(FakeLLMResource):
    """Abstains on every field of every pass (a valid answer under each pass's schema)."""

    model_id: str = "fake-abstainer"

    def answer(self, request: ChatRequest) -> Answer:
        return {field: {"primary": "-1", "secondary": None} for field in request.json_schema["properties"]}


def _materialize(instance: dg.DagsterInstance, scale: ScaleResource, run_config: dict | None = None):
    resources = {**build_resources("local"), "scale": scale, "llm": FakeAbstainingTeacher()}
    return dg.materialize(
        [raw_web_docs, clean_web_docs, annotate_web_docs],
        instance=instance,
        partition_key=SHARD,
        resources=resources,
        run_config=run_config,
    )


def test_records_per_shard_reads_the_first_records_and_everything_downstream_follows(instance, assay_home):
    records = sample_records("c4_en_sample_1000.jsonl", 12)
    write_jsonl(Path(os.environ["ASSAY_WEB_DOCS_INPUT"]) / SHARD, records)
    instance.add_dynamic_partitions(web_doc_shards.name, [SHARD])
    result = _materialize(instance, ScaleResource(web_docs_records_per_shard=5, annotation_docs_per_shard=2))
    assert result.success
    raw = result.output_for_node("raw_web_docs")
    assert raw["url"].to_list() == [record["url"] for record in records[:5]]
    meta = latest_materialization(instance, dg.AssetKey("raw_web_docs"), SHARD).metadata
    assert meta["records_in_file"].value == 12 and meta["dagster/row_count"].value == 5
    kept = result.output_for_node("clean_web_docs", "web_docs")
    quarantined = result.output_for_node("clean_web_docs", "web_docs_quarantine")
    assert kept.height + quarantined.height == 5 and kept.height >= 2


def test_teacher_sees_the_profiles_characters_unless_run_config_says_otherwise(instance, assay_home):
    write_jsonl(Path(os.environ["ASSAY_WEB_DOCS_INPUT"]) / SHARD, sample_records("c4_en_sample_1000.jsonl", 8))
    instance.add_dynamic_partitions(web_doc_shards.name, [SHARD])
    scale = ScaleResource(annotation_docs_per_shard=3, annotation_max_doc_chars=300)

    def shown(result: dg.ExecuteInProcessResult) -> pl.DataFrame:
        return result.output_for_node("annotate_web_docs", "web_doc_annotations").select("chars", "annotated_chars")

    profile = shown(_materialize(instance, scale))
    assert profile.height == 3 and profile["chars"].min() > 300
    assert profile["annotated_chars"].to_list() == [300] * 3
    config = {"ops": {"annotate_web_docs": {"config": {"max_doc_chars": 100}}}}
    assert shown(_materialize(instance, scale, config))["annotated_chars"].to_list() == [100] * 3
