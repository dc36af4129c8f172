"""Issue 20: a teacher whose labels do not depend on the document is flagged (warning locally, blocking on gpu)."""

import os
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from scipy.stats import entropy as scipy_entropy

from ops.common.llm import ChatRequest
from ops.webdocs.annotation_health import HealthThresholds, annotation_health, label_entropy
from ops.webdocs.taxonomy import ABSTAIN, DIMENSIONS, vocabularies
from pipelines.definitions import build_definitions
from pipelines.partitions import web_doc_shards
from pipelines.profiles import build_resources
from resources.scale import ScaleResource
from tests.conftest import sample_records, write_jsonl
from tests.fakes import Answer, FakeLLMResource

SHARD = "health.jsonl"


def _annotations(rows: list[dict[str, str]]) -> pl.DataFrame:
    columns = {f"{d}__{role}": [row.get(d) if role == "primary" else None for row in rows] for d in DIMENSIONS
               for role in ("primary", "secondary")}  # fmt: skip
    return pl.DataFrame({"doc_id": [f"d{i}" for i in range(len(rows))], **columns})


def _varied(n: int) -> list[dict[str, str]]:
    vocab = vocabularies()
    return [
        {d: [c for c in vocab[d] if c != ABSTAIN][(i * 7 + k) % 3] for k, d in enumerate(DIMENSIONS)} for i in range(n)
    ]


def test_entropy_matches_scipy():
    codes = ["1", "1", "2", "3", "3", "3", ABSTAIN]
    counts = [2, 1, 3, 1]
    assert label_entropy(codes) == pytest.approx(scipy_entropy(counts, base=2))
    assert label_entropy(["4"] * 9) == 0.0 and label_entropy([]) == 0.0


def test_a_collapsed_teacher_is_flagged_with_its_figures():
    same = {d: vocabularies()[d][1] for d in DIMENSIONS}
    collapsed = _annotations([dict(same) for _ in range(8)])
    health = annotation_health(collapsed, list(DIMENSIONS), HealthThresholds())
    assert not health.healthy and len(health.problems) == 2
    assert health.constant_dimension_share == 1.0 and health.identical_answer_share == 1.0
    assert "label entropy" in health.problems[0] and "same answer" in health.problems[1]
    abstaining = _annotations([{d: ABSTAIN for d in DIMENSIONS} | {DIMENSIONS[0]: str(i)} for i in range(8)])
    figures = annotation_health(abstaining, list(DIMENSIONS), HealthThresholds())
    assert figures.abstain_share == pytest.approx((len(DIMENSIONS) - 1) / len(DIMENSIONS))
    assert any("abstentions" in problem for problem in figures.problems)


def test_a_teacher_that_reads_the_document_is_healthy_and_few_documents_say_nothing():
    varied = annotation_health(_annotations(_varied(10)), list(DIMENSIONS), HealthThresholds())
    assert varied.healthy and varied.identical_answer_share == pytest.approx(0.4)  # rows repeat every 3 documents
    assert min(varied.entropy_bits.values()) == pytest.approx(scipy_entropy([4, 3, 3], base=2))
    same = {d: vocabularies()[d][1] for d in DIMENSIONS}
    assert annotation_health(_annotations([same] * 4), list(DIMENSIONS), HealthThresholds()).healthy
    strict = HealthThresholds(max_identical_answer_share=0.1)
    assert not annotation_health(_annotations(_varied(10)), list(DIMENSIONS), strict).healthy


class FakeCollapsedTeacherLLM(FakeLLMResource):
    """Gives the same codes of every label set to every document: valid, and independent of the document."""

    model_id: str = "fake-collapsed-teacher"

    def answer(self, request: ChatRequest) -> Answer:
        answer = {}
        for field, spec in request.json_schema["properties"].items():
            option = spec["anyOf"][0] if "anyOf" in spec else spec
            primary = option["properties"]["primary"]["enum"][-1]
            secondaries = [c for c in option["properties"]["secondary"].get("enum", []) if c not in (None, primary)]
            answer[field] = {"primary": primary, "secondary": secondaries[0] if secondaries else None}
        return answer


@pytest.mark.slow
@pytest.mark.parametrize("blocking", [False, True], ids=["local_warns", "gpu_blocks"])
def test_health_check_on_a_collapsed_teacher(instance, assay_home, blocking):
    write_jsonl(Path(os.environ["ASSAY_WEB_DOCS_INPUT"]) / SHARD, sample_records("c4_en_sample_1000.jsonl", 16))
    instance.add_dynamic_partitions(web_doc_shards.name, [SHARD])
    scale = ScaleResource(annotation_docs_per_shard=8, annotation_health_blocking=blocking)
    defs = build_definitions({**build_resources("local"), "llm": FakeCollapsedTeacherLLM(), "scale": scale})
    keys = ["raw_web_docs", "web_docs", "web_docs_quarantine", "web_doc_annotations", "web_doc_annotations_quarantine"]
    run = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance, partition_key=SHARD, asset_selection=[dg.AssetKey(k) for k in keys], raise_on_error=False
    )
    health = next(c for c in run.get_asset_check_evaluations() if c.check_name == "web_doc_annotations_health")
    assert not health.passed
    assert health.severity == (dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN)
    assert health.metadata["identical_answer_share"].value == 1.0
    assert health.metadata["constant_dimension_share"].value == 1.0
    others = [c for c in run.get_asset_check_evaluations() if c.check_name != "web_doc_annotations_health"]
    assert all(check.passed for check in others)  # the schema checks alone let this teacher through
    assert run.success is not blocking
