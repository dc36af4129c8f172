"""The Shopping Reasoning Bench chain as Dagster runs it: drafts gated by review, missions, two models
under test as dynamic partitions, rubric grades (with an undecided judge), scores and DuckDB tables.
A scripted fake LLM plays assistant, drafter and judge; everything else is real."""

import hashlib
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ops.common.llm import ChatRequest
from pipelines.definitions import build_definitions
from pipelines.partitions import models_under_test
from pipelines.profiles import REPO_ROOT, build_resources
from resources.inputs import InputFoldersResource
from resources.scale import ScaleResource
from tests.fakes import Answer, FakeLLMResource, SchemaViolation, schema_properties

pytestmark = pytest.mark.slow


class FakeBenchLLM(FakeLLMResource):
    """Drafts a fixed valid mission, answers as `model_id`, and judges by a hash of the request: a
    quarter of the verdicts are "maybe", which the engine must retry and then record as ungraded
    (the retries change the seed, not the prompt, so they stay "maybe")."""

    model_id: str = "default-fake"

    def for_model(self, model: str) -> "FakeBenchLLM":
        return self if model == "default" else FakeBenchLLM(model_id=model)

    def close(self) -> None:
        """Nothing to release."""

    def answer(self, request: ChatRequest) -> Answer:
        properties = schema_properties(request)
        if "criteria_met" in properties:
            digest = int(hashlib.sha256(request.messages[-1]["content"].encode()).hexdigest(), 16)
            if digest % 4 == 0:
                return SchemaViolation(json.dumps({"explanation": "unsure", "criteria_met": "maybe"}))
            return {"explanation": "checked", "criteria_met": digest % 3 != 0}
        if "turns" in properties:
            criterion = {"text": "Names at least one product from the catalog list", "weight": 3, "required": True}
            return {"title": "drafted", "turns": [{"user": "What should I buy?", "criteria": [criterion]}]}
        return f"{self.model_id} suggests the first product."


def test_shopbench_chain_end_to_end(instance, assay_home, tmp_path: Path):
    reviewed_file = tmp_path / "reviewed.txt"
    resources = {
        **build_resources("local"),
        "llm": FakeBenchLLM(),
        "inputs": InputFoldersResource(
            shopping_catalogs=str(REPO_ROOT / "samples" / "shopping"),
            shopbench_missions=str(REPO_ROOT / "samples" / "shopbench" / "missions.jsonl"),
            shopbench_reviewed_drafts=str(reviewed_file),
        ),
        "scale": ScaleResource(shopbench_missions=4, shopbench_drafts=2),
    }
    defs = build_definitions(resources)
    missions_job = defs.resolve_job_def("shopbench_missions")

    first = missions_job.execute_in_process(instance=instance)
    assert first.success and all(check.passed for check in first.get_asset_check_evaluations())
    assert "mission_drafts_valid" in {check.check_name for check in first.get_asset_check_evaluations()}
    drafts = first.output_for_node("mission_drafts", "mission_drafts")
    assert drafts.height == 2 and set(drafts["status"]) == {"draft"}
    bundled = first.output_for_node("shopping_missions", "shopping_missions")
    assert not set(drafts["draft_id"]) & set(bundled["mission_id"])  # drafts stay out until reviewed

    reviewed_file.write_text(drafts["draft_id"][0] + "\n", encoding="utf-8")
    second = missions_job.execute_in_process(instance=instance)
    missions = second.output_for_node("shopping_missions", "shopping_missions")
    assert set(missions["mission_id"]) == set(bundled["mission_id"]) | {drafts["draft_id"][0]}

    instance.add_dynamic_partitions(models_under_test.name, ["default", "model-b"])
    bench = defs.resolve_job_def("shopbench")
    for model in ("default", "model-b"):
        run = bench.execute_in_process(instance=instance, partition_key=model)
        assert run.success and all(check.passed for check in run.get_asset_check_evaluations())
        assert "assistant_responses_valid" in {check.check_name for check in run.get_asset_check_evaluations()}
        responses = run.output_for_node("assistant_responses")
        assert responses["mission_id"].n_unique() == 4 and responses["turn_index"].max() >= 2
        assert responses["response"].str.starts_with("default-fake" if model == "default" else "model-b").all()
        # Turn 2's prompt holds the model's own answers to turns 0 and 1.
        later = responses.filter(pl.col("turn_index") == 2)["conversation_json"][0]
        assert sum(message["role"] == "assistant" for message in json.loads(later)) == 3
        grades = run.output_for_node("rubric_grades")
        undecided = grades.filter(pl.col("status") == "ungraded")
        assert undecided.height > 0 and undecided["attempts"].min() == 3
        assert grades.filter(pl.col("status") != "ungraded").height > undecided.height

    # Human labels for some graded criteria: the judge's agreement and kappa against them.
    graded = grades.filter(pl.col("status") != "ungraded").head(6)
    labels = graded.select("criterion_id", "response_id", (pl.col("status") == "met").alias("label"))
    labels = labels.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(~pl.col("label")).otherwise("label"))
    labels.write_csv(tmp_path / "human.csv")
    report_config = {"ops": {"shopbench_scores": {"config": {"human_labels_path": str(tmp_path / "human.csv")}}}}
    scores_run = defs.resolve_job_def("shopbench_report").execute_in_process(
        instance=instance, run_config=report_config
    )
    assert scores_run.success
    assert [(c.check_name, c.passed) for c in scores_run.get_asset_check_evaluations()] == [
        ("shopbench_scores_valid", True)
    ]
    report = instance.get_latest_materialization_event(dg.AssetKey("shopbench_scores")).asset_materialization
    assert 0.0 <= report.metadata["pass_rate_default"].value <= 1.0  # numeric, so the UI can plot it
    agreement = report.metadata["judge_agreement"].value
    assert agreement["n"] == 6
    assert abs(agreement["agreement"] - 5 / 6) < 1e-9
    breakdowns = scores_run.output_for_node("shopbench_scores")
    assert set(breakdowns.filter(pl.col("dimension") == "model")["model"]) == {"default", "model-b"}
    assert {"required", "optional"} <= set(breakdowns.filter(pl.col("dimension") == "required")["value"])
    with resources["duckdb"].connect(read_only=True) as connection:
        query = "SELECT model, healthbench_score FROM shopbench_model_scores ORDER BY model"
        models = connection.execute(query).fetchall()
    assert [model for model, _ in models] == ["default", "model-b"]
    assert all(score is not None and 0.0 <= score <= 1.0 for _, score in models)  # every model has graded turns
