"""The annotate -> measure -> distill -> label chain as Dagster runs it, with a fake teacher and tiny
randomly initialised students so that it trains in seconds (real store, LanceDB, embedder, checks)."""

import hashlib
import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ops.common.llm import ChatRequest
from ops.webdocs.taxonomy import DIMENSIONS
from pipelines.definitions import build_definitions
from pipelines.partitions import web_doc_shards
from pipelines.profiles import build_resources
from resources.io_manager import latest_materialization
from resources.scale import ScaleResource
from tests.conftest import sample_records, write_jsonl
from tests.fakes import Answer, FakeLLMResource
from training.webdocs.encoder_student import write_tiny_random_encoder
from training.webdocs.generative_student import byte_tokenizer, tiny_base

pytestmark = pytest.mark.slow
SHARD = "tax.jsonl"


class FakeTeacherLLM(FakeLLMResource):
    """Answers every pass with valid codes picked by a hash of the request, so labels vary by document."""

    model_id: str = "fake-teacher"

    def answer(self, request: ChatRequest) -> Answer:
        digest = int(hashlib.sha256(request.messages[-1]["content"].encode()).hexdigest(), 16)
        answer = {}
        for field, spec in request.json_schema["properties"].items():
            option = spec["anyOf"][0] if "anyOf" in spec else spec
            codes = option["properties"]["primary"]["enum"]
            secondaries = [c for c in option["properties"]["secondary"].get("enum", []) if c is not None]
            primary = codes[digest % len(codes)]
            others = [c for c in secondaries if c != primary]
            answer[field] = {"primary": primary, "secondary": others[digest % len(others)] if others else None}
            digest //= 7
        return answer


@pytest.fixture
def tiny_bases(tmp_path: Path) -> dict[str, str]:
    encoder = write_tiny_random_encoder(tmp_path / "encoder")
    generative = tiny_base(tmp_path / "generative", byte_tokenizer())
    return {"encoder": str(encoder), "generative": str(generative)}


def test_chain_annotates_measures_distills_and_labels(instance, assay_home, tiny_bases):
    write_jsonl(Path(os.environ["ASSAY_WEB_DOCS_INPUT"]) / SHARD, sample_records("c4_en_sample_1000.jsonl", 24))
    instance.add_dynamic_partitions(web_doc_shards.name, [SHARD])
    resources = {
        **build_resources("local"),
        "llm": FakeTeacherLLM(),
        "scale": ScaleResource(annotation_docs_per_shard=16, student_epochs=1, generative_max_examples=6),
    }
    defs = build_definitions(resources)

    shard_run = defs.resolve_job_def("webdocs").execute_in_process(instance=instance, partition_key=SHARD)
    assert shard_run.success and all(c.passed for c in shard_run.get_asset_check_evaluations())
    annotations = shard_run.output_for_node("annotate_web_docs", "web_doc_annotations")
    assert annotations.height == 16 and annotations["doc_id"].n_unique() == 16
    assert {f"{d}__primary" for d in DIMENSIONS} <= set(annotations.columns)

    corpus_config = {
        "ops": {
            "encoder_classifier": {"config": {"base_model": tiny_bases["encoder"]}},
            "distilled_classifier": {"config": {"base_model": tiny_bases["generative"], "max_new_tokens": 8}},
        }
    }
    corpus_run = defs.resolve_job_def("webdocs_corpus").execute_in_process(instance=instance, run_config=corpus_config)
    assert corpus_run.success
    passed = {check.check_name for check in corpus_run.get_asset_check_evaluations() if check.passed}
    assert passed >= {
        "mlp_filter_sound",
        "encoder_classifier_sound",
        "distilled_classifier_sound",
        "student_agreement_valid",
        "taxonomy_nmi_valid",
    }
    figures = latest_materialization(instance, dg.AssetKey("student_agreement"), None).metadata
    assert all(isinstance(figures[f"accuracy_{s}"].value, float) for s in ("mlp_filter", "encoder_classifier"))
    nmi = corpus_run.output_for_node("taxonomy_nmi")
    assert nmi.height == len(DIMENSIONS) and nmi.columns == ["dimension", *DIMENSIONS]
    agreement = corpus_run.output_for_node("student_agreement")
    assert set(agreement["student"]) == {"mlp_filter", "encoder_classifier", "distilled_classifier"}
    assert agreement.height == 3 * len(DIMENSIONS)
    for model in ("mlp_filter", "encoder_classifier", "distilled_classifier"):
        event = latest_materialization(instance, dg.AssetKey(model), None)
        folder = Path(event.metadata["artifact_path"].value)
        assert (folder / "card.md").exists() and (folder / "manifest.json").exists()

    labels_run = defs.resolve_job_def("webdocs_labels").execute_in_process(instance=instance, partition_key=SHARD)
    assert labels_run.success
    assert [(c.check_name, c.passed) for c in labels_run.get_asset_check_evaluations()] == [
        ("web_doc_labels_valid", True)
    ]
    labels = labels_run.output_for_node("web_doc_labels")
    docs = shard_run.output_for_node("clean_web_docs", "web_docs")
    assert labels.height == docs.height and set(labels["doc_id"]) == set(docs["doc_id"])
    probs = labels["timeliness__probs"].list.sum()
    assert probs.is_between(0.999, 1.001).all()
    assert labels.schema["timeliness__primary"] == pl.String
