"""The shopping chain as Dagster runs it, on a tiny never-seen catalog: catalog (with a column mapping
and bad rows), search index, personas, simulation, questions, contexts, the agent evaluation with a
scripted fake LLM, the RL export and the DuckDB event view (real store, LanceDB, DuckDB and checks)."""

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl
import pytest

from ops.common.llm import ChatRequest
from ops.shopping.agent import ACTION_SCHEMA
from pipelines.definitions import build_definitions
from pipelines.profiles import build_resources
from resources.inputs import InputFoldersResource
from resources.scale import ScaleResource
from tests.fakes import Answer, FakeLLMResource

pytestmark = pytest.mark.slow
COHORT = "cohort-000"
COUNT_SQL = "SELECT count(*) FROM events WHERE event_type = 'purchase'"


class FakeShopLLM(FakeLLMResource):
    """A scripted model: the agent first runs one SQL query, then answers with its first cell; the
    long-context baseline always answers "none". Tokens are whitespace-separated words."""

    model_id: str = "fake-shop"
    window: int = 50_000

    def context_window(self) -> int:
        return self.window

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(text.split()) for text in texts]

    def answer(self, request: ChatRequest) -> Answer:
        if request.json_schema != ACTION_SCHEMA:
            return {"answer": "none"}
        last = request.messages[-1]["content"]
        if "<result>" not in last:
            return {"action": "sql", "content": COUNT_SQL}
        cell = last.split("<result>", 1)[1].split("</result>", 1)[0].strip().splitlines()[-1]
        return {"action": "answer", "content": cell}


def write_catalog(path: Path) -> Path:
    """A catalog with its own column names, 40 good products and four bad rows."""
    rows = [
        {
            "code": f"P{i:03d}",
            "name": f"{kind} number {i}",
            "maker": ["Acme", "Bolt", "Crest"][i % 3],
            "dept": f"Toys / {kind}",
            "cost": f"{3 + (i * 7) % 40}.99",
        }
        for i, kind in enumerate(["Puzzles", "Balloons", "Trains", "Dolls"] * 10)
    ]
    rows += [
        {"code": "P000", "name": "duplicate", "maker": "Acme", "dept": "Toys / Puzzles", "cost": "5"},
        {"code": "B1", "name": "no price", "maker": "Acme", "dept": "Toys / Puzzles", "cost": ""},
        {"code": "B2", "name": "", "maker": "Acme", "dept": "Toys / Puzzles", "cost": "4"},
        {"code": "B3", "name": "too dear", "maker": "Acme", "dept": "Toys / Puzzles", "cost": "99999"},
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_shopping_chain_end_to_end(instance, assay_home, tmp_path):
    catalog_file = write_catalog(tmp_path / "tiny_shop.csv")
    resources = {
        **build_resources("local"),
        "llm": FakeShopLLM(),
        "inputs": InputFoldersResource(simulated_shop="tiny_shop"),
        "scale": ScaleResource(
            shopping_customers_per_cohort=3,
            shopping_span_months=6,
            shoptrajqa_questions_per_customer=6,
            shoptrajqa_budgets=[300, 40_000, 100_000],
            shoptrajqa_eval_questions_per_cohort=4,
            customer_agent_max_steps=3,
        ),
    }
    defs = build_definitions(resources)
    source = {
        "name": "tiny_shop",
        "path": str(catalog_file),
        "id": "code",
        "title": "name",
        "brand": "maker",
        "category": "dept",
        "category_separator": " / ",
        "price": "cost",
        "currency": "EUR",
    }
    catalog_config = {"ops": {"product_catalog": {"config": {"sources": [source], "max_price": 1000.0}}}}

    catalog_run = defs.resolve_job_def("shopping_catalog").execute_in_process(
        instance=instance, run_config=catalog_config
    )
    assert catalog_run.success and all(check.passed for check in catalog_run.get_asset_check_evaluations())
    products = catalog_run.output_for_node("product_catalog", "product_catalog")
    quarantine = catalog_run.output_for_node("product_catalog", "product_catalog_quarantine")
    assert products.height == 40 and quarantine.height == 4
    assert set(quarantine["reason"]) == {"duplicate_id", "missing_price", "empty_title", "absurd_price"}
    assert products["product_id"].str.starts_with("tiny_shop:").all()

    cohort_run = defs.resolve_job_def("shopping").execute_in_process(instance=instance, partition_key=COHORT)
    assert cohort_run.success
    checks = cohort_run.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)
    assert "shoptrajqa_rl_dataset_valid" in {check.check_name for check in checks}

    events = cohort_run.output_for_node("shopping_trajectories")
    assert events["customer_id"].n_unique() == 3 and "purchase" in set(events["event_type"])
    questions = cohort_run.output_for_node("shoptrajqa_questions")
    assert questions.height > 0 and questions["sql"].str.contains("events").all()

    contexts = cohort_run.output_for_node("shoptrajqa_contexts")
    skipped = contexts.filter(pl.col("budget_tokens") == 100_000)
    assert (skipped["status"] == "skipped").all() and skipped["text"].is_null().all()
    assert skipped["note"].str.contains("50000").all()
    rendered = contexts.filter(pl.col("status") == "rendered")
    assert (rendered["tokens"] <= rendered["budget_tokens"]).all()

    evals = cohort_run.output_for_node("customer_agent_eval")
    agent = evals.filter(pl.col("method") == "agent")
    assert agent.height > 0 and set(agent["outcome"]) == {"answered"}
    assert all(json.loads(queries) == [COUNT_SQL] for queries in agent["queries_json"])
    # The fake answers with the cell it read back from the sandbox: each customer's purchase count.
    purchases = events.filter(pl.col("event_type") == "purchase").group_by("customer_id").len()
    counts = dict(zip(purchases["customer_id"], purchases["len"].cast(pl.String), strict=True))
    assert agent["prediction"].to_list() == [counts[customer] for customer in agent["customer_id"]]
    rl = cohort_run.output_for_node("shoptrajqa_rl_dataset")
    assert rl.filter(pl.col("extra_info").struct.field("mode") == "agent").height == questions.height
    assert (rl["ground_truth"] == rl["reward_model"].struct.field("ground_truth")).all()

    log_run = defs.resolve_job_def("shopping_summary").execute_in_process(instance=instance)
    assert log_run.success
    assert [(c.check_name, c.passed) for c in log_run.get_asset_check_evaluations()] == [
        ("shopping_event_log_valid", True)
    ]
    with resources["duckdb"].connect(read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM shopping_events").fetchone()[0] == events.height


def test_persona_config_outside_bounds_fails_with_the_field_named(instance, assay_home, tmp_path):
    resources = {
        **build_resources("local"),
        "llm": FakeShopLLM(),
        "inputs": InputFoldersResource(simulated_shop="tiny_shop"),
    }
    defs = build_definitions(resources)
    source = {
        "name": "tiny_shop",
        "path": str(write_catalog(tmp_path / "tiny_shop.csv")),
        "id": "code",
        "title": "name",
        "brand": "maker",
        "category": "dept",
        "category_separator": " / ",
        "price": "cost",
        "currency": "EUR",
    }
    config = {"ops": {"product_catalog": {"config": {"sources": [source]}}}}
    assert defs.resolve_job_def("shopping_catalog").execute_in_process(instance=instance, run_config=config).success
    bad = {"ops": {"customer_personas": {"config": {"customers": 2, "span_months": 500}}}}
    run = defs.resolve_job_def("shopping").execute_in_process(
        instance=instance, partition_key=COHORT, run_config=bad, raise_on_error=False
    )
    assert not run.success
    failure = next(event for event in run.all_events if event.is_step_failure)
    assert "span_months=500" in str(failure.event_specific_data.error) and "[1, 120]" in str(
        failure.event_specific_data.error
    )
