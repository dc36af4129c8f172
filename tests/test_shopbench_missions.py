"""Shopbench missions: taxonomy, the three loaders and their quarantine, the bundled missions, answering
turn by turn with the model's own earlier answers, and the drafting review gate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import polars as pl
import pytest

from ops.common.llm import ChatRequest, ChatResult
from ops.rubrics.criteria import CRITERIA_SCHEMA
from ops.shopbench.catalog import load_catalog, product_facts
from ops.shopbench.drafting import (
    DraftPlan,
    draft_requests,
    parse_drafts,
    read_reviewed_ids,
    reviewed,
)
from ops.shopbench.missions import MISSIONS_SCHEMA, QUARANTINE_SCHEMA, load_missions, parse_missions
from ops.shopbench.responses import answer_missions, turn_requests
from ops.shopbench.taxonomy import CATEGORIES, SUBCATEGORIES, category_of, subcategories_of
from tests.fakes import Answer, FakeLLM

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
MISSIONS_FILE = SAMPLES / "shopbench" / "missions.jsonl"
HEALTHBENCH_FILE = SAMPLES / "healthbench_sample" / "healthbench_oss_eval_sample30.jsonl"
AMAZON_CSV = SAMPLES / "shopping" / "amazon_uk_toys" / "products.csv"
LUMA_JSONL = SAMPLES / "shopping" / "magento_luma" / "products.jsonl"


def _assay(mission_id: str = "m-1", **overrides) -> dict:
    record = {
        "mission_id": mission_id,
        "category": "Product Inquiry",
        "subcategory": "specification lookup",
        "title": "t",
        "products": ["magento_luma:MH01"],
        "turns": [
            {"user": "What sizes?", "criteria": [{"id": f"{mission_id}-c0", "text": "Lists sizes", "weight": 3}]},
            {"user": "Colours?", "criteria": [{"id": f"{mission_id}-c1", "text": "Lists colours", "weight": 2}]},
        ],
    }
    record.update(overrides)
    return record


def _lines(*records: dict | str) -> list[str]:
    return [record if isinstance(record, str) else json.dumps(record) for record in records]


# --- taxonomy ---------------------------------------------------------------------------------


def test_taxonomy_has_five_categories_fifteen_subcategories_and_the_papers_three() -> None:
    assert len(CATEGORIES) == 5
    assert len(SUBCATEGORIES) == 15
    assert len({sub.name for sub in SUBCATEGORIES}) == 15
    assert {sub.name for sub in SUBCATEGORIES if sub.source == "paper"} == {
        "preference refinement",
        "trade-off analysis",
        "compatibility assessment",
    }
    assert category_of("preference refinement") == "Product Recommendation"
    assert category_of("trade-off analysis") == "Product Comparison"
    assert category_of("compatibility assessment") == "Product Inquiry"
    assert all(len(subcategories_of(category)) == 3 for category in CATEGORIES)
    assert all(sub.definition.endswith(".") and sub.definition.count(". ") == 0 for sub in SUBCATEGORIES)
    assert {sub.source for sub in SUBCATEGORIES} == {"paper", "assay"}


# --- loaders ----------------------------------------------------------------------------------


def test_healthbench_sample_loads_user_turns_and_last_turn_criteria() -> None:
    result = load_missions(HEALTHBENCH_FILE, "healthbench")
    assert (result.missions.height, result.criteria.height, result.quarantine.height) == (30, 352, 0)
    assert result.split.accounted() and result.rows_in == 30
    assert result.missions.schema == pl.Schema(MISSIONS_SCHEMA)
    assert result.criteria.schema == pl.Schema(CRITERIA_SCHEMA)
    first = result.missions.row(0, named=True)
    assert first["mission_id"].startswith("1f548d5b-")
    assert (first["category"], first["subcategory"], first["source_format"]) == (
        "context_seeking",
        "enough-context",
        "healthbench",
    )
    # Record 4 alternates user/assistant 4 times: 4 fixed user turns, criteria all on turn 3.
    fourth = result.missions.row(3, named=True)
    assert fourth["n_turns"] == 4
    extra = json.loads(fourth["extra_json"])
    assert [m["role"] for m in extra["scripted_conversation"]].count("assistant") == 3
    assert "canary" in extra and "example_tags" in extra
    its_criteria = result.criteria.filter(pl.col("item_id") == fourth["mission_id"])
    assert its_criteria["turn_index"].unique().to_list() == [3]
    crit0 = result.criteria.row(0, named=True)
    assert (crit0["weight"], crit0["required"], crit0["subcategory"]) == (10.0, True, "completeness")
    assert crit0["tags"] == ["level:example", "axis:completeness"]
    assert result.criteria["weight"].min() == -10.0  # penalties kept as negative points
    assert result.missions["n_turns"].to_list().count(1) == 21


def test_srb_loader_maps_odd_field_names_and_keeps_unknown_fields(tmp_path: Path) -> None:
    records = [
        {  # chat messages, mission-level rubric with 1-based turn numbers and words for required
            "uid": "srb-1",
            "reasoning_category": "Product Comparison",
            "sub_category": "trade-off analysis",
            "messages": [
                {"role": "user", "content": "Compare A and B"},
                {"role": "assistant", "content": "scripted"},
                {"role": "user", "content": "Which is cheaper?"},
            ],
            "rubrics": [
                {"description": "Names both", "importance": 4, "is_required": "required", "turn_number": 1},
                {"description": "Says B", "importance": 2, "is_required": "optional", "difficulty": "hard"},
            ],
            "config": "hard-multi",
        },
        {  # turn objects with nested criteria
            "id": 7,
            "category": "Product Inquiry",
            "turns": [
                {
                    "query": "Is it waterproof?",
                    "criteria": [{"criterion": "Says yes", "points": 5, "type": "required"}],
                },
                {"query": "Price?", "criteria": [{"criterion_id": "x-9", "criterion": "Gives price", "points": 3}]},
            ],
        },
        {"mission_id": "srb-3", "prompt": "Recommend a kite", "rubric": ["Asks the age"]},  # bare strings
    ]
    path = tmp_path / "srb.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n", encoding="utf-8")
    result = load_missions(path, "srb")
    assert result.quarantine.height == 0 and result.split.accounted()
    missions = {row["mission_id"]: row for row in result.missions.iter_rows(named=True)}
    assert set(missions) == {"srb-1", "7", "srb-3"}
    first = missions["srb-1"]
    assert (first["category"], first["subcategory"], first["n_turns"]) == (
        "Product Comparison",
        "trade-off analysis",
        2,
    )
    extra = json.loads(first["extra_json"])
    assert extra["config"] == "hard-multi"
    assert extra["scripted_assistant_turns"] == ["scripted"]
    assert extra["criteria_extra"] == {"srb-1-c1": {"difficulty": "hard"}}
    crit = {row["criterion_id"]: row for row in result.criteria.iter_rows(named=True)}
    assert (crit["srb-1-c0"]["turn_index"], crit["srb-1-c0"]["weight"], crit["srb-1-c0"]["required"]) == (0, 4.0, True)
    assert (crit["srb-1-c1"]["turn_index"], crit["srb-1-c1"]["required"]) == (1, False)  # default: last turn
    assert missions["7"]["user_turns"] == ["Is it waterproof?", "Price?"]
    assert (crit["7-c0"]["turn_index"], crit["x-9"]["turn_index"], crit["x-9"]["weight"]) == (0, 1, 3.0)
    assert (crit["srb-3-c0"]["text"], crit["srb-3-c0"]["weight"], crit["srb-3-c0"]["required"]) == (
        "Asks the age",
        1.0,
        True,
    )


@pytest.mark.parametrize(
    ("source_format", "record", "code"),
    [
        ("assay", _assay(turns=[{"user": "q", "criteria": [{"id": "a", "text": "t", "weight": 0}]}]), "zero_weight"),
        (
            "assay",
            _assay(turns=[{"user": "q", "criteria": [{"id": "a", "text": "t", "weight": "high"}]}]),
            "non_numeric_weight",
        ),
        (
            "assay",
            _assay(turns=[{"user": "q", "criteria": [{"id": "a", "text": "t", "weight": "3"}]}]),
            "non_numeric_weight",
        ),
        (
            "assay",
            _assay(turns=[{"user": "q", "criteria": [{"id": "a", "text": "  ", "weight": 1}]}]),
            "empty_criterion_text",
        ),
        ("assay", _assay(category="Haggling"), "unknown_category"),
        ("assay", _assay(subcategory="trade-off analysis"), "unknown_category"),  # wrong category for it
        (
            "assay",
            _assay(turns=[{"user": "", "criteria": [{"id": "a", "text": "t", "weight": 1}]}]),
            "missing_user_turn",
        ),
        ("assay", _assay(turns=[]), "missing_user_turn"),
        ("assay", _assay(turns=[{"user": "q", "criteria": []}]), "no_criteria"),
        (
            "assay",
            _assay(turns=[{"user": "q", "criteria": [{"id": "a", "text": "t", "weight": 1, "required": "maybe"}]}]),
            "bad_required_flag",
        ),
        ("assay", _assay(mission_id=""), "missing_id"),
        ("assay", "{not json", "unreadable"),
        (
            "srb",
            {"id": "s", "prompt": "q", "criteria": [{"text": "t", "weight": 2, "turn_index": 1}]},
            "turn_index_out_of_range",
        ),
        (
            "srb",
            {"id": "s", "prompt": "q", "criteria": [{"text": "t", "weight": 2, "turn_index": -1}]},
            "turn_index_out_of_range",
        ),
        (
            "srb",
            {"id": "s", "messages": [{"role": "assistant", "content": "hi"}], "criteria": ["t"]},
            "missing_user_turn",
        ),
        (
            "healthbench",
            {
                "prompt_id": "h",
                "prompt": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
                "rubrics": [{"criterion": "c", "points": 3, "tags": []}],
            },
            "missing_user_turn",
        ),
        (
            "healthbench",
            {
                "prompt_id": "h",
                "prompt": [{"role": "user", "content": "q"}],
                "rubrics": [{"criterion": "c", "points": 0}],
            },
            "zero_weight",
        ),
    ],
)
def test_each_bad_record_is_quarantined_with_its_reason(source_format: str, record: dict | str, code: str) -> None:
    good = _assay("good") if source_format == "assay" else None
    lines = _lines(*([good] if good else []), record)
    result = parse_missions(lines, source_format)
    assert result.quarantine.height == 1, result.quarantine
    assert result.quarantine.schema == pl.Schema(QUARANTINE_SCHEMA)
    row = result.quarantine.row(0, named=True)
    assert row["reason"] == code and row["detail"]
    assert row["record_number"] == len(lines)
    assert row["source_format"] == source_format
    assert row["record_id"] not in (None, "")
    assert row["excerpt"] == lines[-1].strip()[:500]
    assert result.split.accounted()
    assert result.missions.height == (1 if good else 0)


def test_one_bad_criterion_quarantines_the_whole_mission() -> None:
    bad = _assay("bad")
    bad["turns"][1]["criteria"].append({"id": "bad-c2", "text": "Fine", "weight": 0})
    result = parse_missions(_lines(_assay("ok"), bad), "assay")
    assert result.missions["mission_id"].to_list() == ["ok"]
    refused = result.quarantine.row(0, named=True)
    assert (refused["record_id"], refused["reason"]) == ("bad", "zero_weight")
    assert "bad-c2" in refused["detail"]
    # None of the bad mission's criteria (the good ones included) reach the criteria frame.
    assert result.criteria["item_id"].unique().to_list() == ["ok"]


def test_duplicate_mission_and_criterion_ids_are_quarantined_after_the_first() -> None:
    reused_criterion = _assay("m-2")
    reused_criterion["turns"][0]["criteria"][0]["id"] = "m-1-c0"
    within = _assay("m-3")
    within["turns"][1]["criteria"][0]["id"] = "m-3-c0"
    result = parse_missions(_lines(_assay("m-1"), _assay("m-1"), reused_criterion, within, "", "  "), "assay")
    assert result.missions["mission_id"].to_list() == ["m-1"]
    reasons = result.quarantine["reason"].to_list()
    assert reasons == ["duplicate_mission_id", "duplicate_criterion_id", "duplicate_criterion_id"]
    assert result.quarantine["record_id"].to_list() == ["m-1", "m-2", "m-3"]
    assert result.quarantine["record_number"].to_list() == [2, 3, 4]
    assert result.rows_in == 4  # blank lines are not records
    assert result.split.accounted()


def test_unknown_format_raises() -> None:
    with pytest.raises(ValueError, match="unknown source format"):
        parse_missions([], "csv")


# --- the bundled missions ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundled():
    return load_missions(MISSIONS_FILE, "assay")


def test_bundled_missions_load_clean_and_meet_the_counts(bundled) -> None:
    missions, criteria = bundled.missions, bundled.criteria
    assert bundled.quarantine.height == 0
    assert missions.height >= 30
    assert missions.filter(pl.col("n_turns") >= 3).height >= 10
    assert set(missions["category"]) == set(CATEGORIES)
    assert set(missions["subcategory"]) == {sub.name for sub in SUBCATEGORIES}
    required_share = criteria["required"].mean()
    assert 0.7 <= required_share <= 0.9
    assert criteria.filter(pl.col("weight") < 0).height >= 5
    assert criteria.filter(~pl.col("required")).height >= 10
    positive = criteria.filter(pl.col("weight") > 0)["weight"]
    assert positive.min() >= 1 and positive.max() <= 5
    assert criteria["weight"].min() >= -5
    # Every turn of every mission has criteria to grade.
    turns_with_criteria = criteria.group_by("item_id").agg(pl.col("turn_index").n_unique().alias("graded"))
    joined = missions.join(turns_with_criteria, left_on="mission_id", right_on="item_id")
    assert (joined["graded"] == joined["n_turns"]).all()


def test_bundled_mission_products_exist_in_the_bundled_catalogs(bundled) -> None:
    with AMAZON_CSV.open(encoding="utf-8", newline="") as handle:
        amazon = {f"amazon_uk_toys:{row['uniq_id']}" for row in csv.DictReader(handle)}
    with LUMA_JSONL.open(encoding="utf-8") as handle:
        luma = {f"magento_luma:{json.loads(line)['sku']}" for line in handle if line.strip()}
    products = [product for row in bundled.missions["products"] for product in row]
    assert products and all(bundled.missions["products"].list.len() > 0)
    missing = sorted(set(products) - amazon - luma)
    assert missing == []
    assert any(p.startswith("amazon_uk_toys:") for p in products) and any(
        p.startswith("magento_luma:") for p in products
    )


def test_catalog_facts_show_the_prices_the_criteria_check() -> None:
    facts = product_facts(load_catalog(AMAZON_CSV, LUMA_JSONL))
    assert "price: £11.99" in facts["amazon_uk_toys:a2f1c8ca11d3d78eee673dfceaeefff2"]
    assert "Trefl Puzzle Country Idyll" in facts["amazon_uk_toys:a2f1c8ca11d3d78eee673dfceaeefff2"]
    luma = facts["magento_luma:WH06"]
    assert "price: $59.00" in luma and "colors: Purple" in luma and "sizes: L, M, S, XL, XS" in luma


# --- answering turn by turn -------------------------------------------------------------------


class FakeAssistantLLM(FakeLLM):
    """Answers "<mission>/answer-<k>" where k counts the user messages; can fail chosen (mission, turn)s."""

    def __init__(self, fail: frozenset[tuple[str, int]] = frozenset()) -> None:
        super().__init__(model_id="fake-assistant", prompt_tokens=10, completion_tokens=5, latency_s=0.5)
        self.fail = fail

    def answer(self, request: ChatRequest) -> Answer:
        _, mission_id, turn = request.request_id.rsplit(":", 2)
        turn_index = sum(message["role"] == "user" for message in request.messages) - 1
        assert turn_index == int(turn)
        return (
            RuntimeError("backend down")
            if (mission_id, turn_index) in self.fail
            else f"{mission_id}/answer-{turn_index}"
        )


def _two_missions() -> pl.DataFrame:
    return parse_missions(
        _lines(
            _assay(
                "long",
                turns=[
                    {"user": f"user turn {k}", "criteria": [{"id": f"long-{k}", "text": "t", "weight": 1}]}
                    for k in range(3)
                ],
            ),
            _assay(
                "short",
                turns=[{"user": "only turn", "criteria": [{"id": "short-0", "text": "t", "weight": 1}]}],
            ),
        ),
        "assay",
    ).missions


def test_turn_two_prompt_holds_the_models_own_earlier_answers() -> None:
    client = FakeAssistantLLM()
    responses = answer_missions(client, _two_missions())
    assert [len(call) for call in client.calls] == [2, 1, 1]  # one batch per turn index
    turn2 = client.calls[2][0]
    assert turn2.request_id == "fake-assistant:long:2"
    contents = [(m["role"], m["content"]) for m in turn2.messages[1:]]
    assert contents == [
        ("user", "user turn 0"),
        ("assistant", "long/answer-0"),
        ("user", "user turn 1"),
        ("assistant", "long/answer-1"),
        ("user", "user turn 2"),
    ]
    assert responses.columns == [
        "model",
        "mission_id",
        "turn_index",
        "response_id",
        "conversation_json",
        "response",
        "error",
        "tokens",
        "latency",
    ]
    assert responses.height == 4
    last = responses.filter((pl.col("mission_id") == "long") & (pl.col("turn_index") == 2)).row(0, named=True)
    assert last["response"] == "long/answer-2" and last["error"] is None
    assert json.loads(last["conversation_json"])[-1] == {"role": "assistant", "content": "long/answer-2"}
    assert (last["tokens"], last["latency"], last["response_id"]) == (15, 0.5, "fake-assistant:long:2")


def test_a_failed_turn_stops_that_mission_and_records_why() -> None:
    client = FakeAssistantLLM(fail=frozenset({("long", 1)}))
    responses = answer_missions(client, _two_missions(), model_label="m-under-test")
    long = responses.filter(pl.col("mission_id") == "long").sort("turn_index")
    assert long["response"].to_list() == ["long/answer-0", None, None]
    assert long["error"].to_list()[1] == "backend down"
    assert long["error"].to_list()[2] == "not asked: turn 1 of this mission got no answer"
    assert [len(call) for call in client.calls] == [2, 1]  # turn 2 was never sent
    assert set(responses["model"]) == {"m-under-test"}


def test_max_turns_and_product_facts_in_the_system_prompt() -> None:
    missions = _two_missions()
    client = FakeAssistantLLM()
    responses = answer_missions(client, missions, max_turns=1)
    assert responses["turn_index"].to_list() == [0, 0]
    requests = turn_requests(missions, "x", {"long": ["a0"]}, product_facts={"magento_luma:MH01": "Chaz; $52"})
    assert [r.request_id for r in requests] == ["x:long:1", "x:short:0"]
    assert "- Chaz; $52" in requests[0].messages[0]["content"]
    assert turn_requests(missions, "x", {"long": ["a", "b", "c"], "short": ["a"]}) == []


# --- drafting ---------------------------------------------------------------------------------


def _products() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "product_id": ["magento_luma:MH01", "magento_luma:MH02", "amazon_uk_toys:abc"],
            "facts": ["Chaz Kangeroo Hoodie; price: $52", "Teton Pullover Hoodie; price: $70", "Kite; price: £9.60"],
        }
    )


def _result(request_id: str, payload: object | None, text: str | None = None, error: str | None = None) -> ChatResult:
    text = text if text is not None else (json.dumps(payload) if payload is not None else None)
    return ChatResult(request_id, text, payload, error, 1, 1, 0.1, False)


def test_draft_requests_are_seeded_schema_constrained_and_cover_the_taxonomy() -> None:
    requests = draft_requests(_products(), n=15, seed=3)
    assert len(requests) == 15
    assert requests == draft_requests(_products(), n=15, seed=3)
    plans = [DraftPlan.from_request_id(r.request_id) for r in requests]
    assert {plan.subcategory for plan in plans} == {sub.name for sub in SUBCATEGORIES}
    assert all(r.json_schema is not None and r.json_schema["required"] == ["title", "turns"] for r in requests)
    comparison = next(p for p, r in zip(plans, requests, strict=True) if p.subcategory == "trade-off analysis")
    assert len(comparison.product_ids) == 2
    shown = next(r for r in requests if r.request_id == comparison.request_id).messages[1]["content"]
    assert all(
        fact in shown for fact in _products().filter(pl.col("product_id").is_in(comparison.product_ids))["facts"]
    )


def test_parse_drafts_marks_drafts_and_rejects_with_reasons_and_only_reviewed_ids_pass(tmp_path: Path) -> None:
    plan = DraftPlan("draft-3-0000", "trade-off analysis", ("magento_luma:MH01", "magento_luma:MH02"))
    good = {
        "title": "Hoodies",
        "turns": [
            {"user": "Which hoodie?", "criteria": [{"text": "Names both", "weight": 4, "required": True}]},
            {"user": "Cheaper?", "criteria": [{"text": "Says Chaz", "weight": 3, "required": False}]},
        ],
    }
    zero = {"title": "z", "turns": [{"user": "q", "criteria": [{"text": "t", "weight": 0, "required": True}]}]}
    results = [
        _result(plan.request_id, good),
        _result("draft-3-0001~specification lookup~amazon_uk_toys:abc", None, text="not json"),
        _result("draft-3-0002~suitability check~amazon_uk_toys:abc", zero),
        _result("draft-3-0003~value assessment~amazon_uk_toys:abc", None, error="timeout"),
    ]
    parsed = parse_drafts(results)
    drafts, rejects = parsed.kept, parsed.quarantined
    assert parsed.accounted() and parsed.rows_in == len(results)
    row = drafts.row(0, named=True)
    assert (row["draft_id"], row["status"], row["category"], row["n_turns"], row["n_criteria"]) == (
        "draft-3-0000",
        "draft",
        "Product Comparison",
        2,
        2,
    )
    assert row["products"] == ["magento_luma:MH01", "magento_luma:MH02"]
    reasons = {row["record_id"]: (row["reason"], row["detail"]) for row in rejects.iter_rows(named=True)}
    assert reasons["draft-3-0001"][0] == "not_json"
    assert reasons["draft-3-0002"][0] == "zero_weight"
    assert reasons["draft-3-0003"] == ("drafter_error", "timeout")
    assert rejects.filter(pl.col("record_id") == "draft-3-0001")["excerpt"].to_list() == ["not json"]
    # The stored mission JSON loads with the graded set's loader.
    loaded = parse_missions(drafts["mission_json"].to_list(), "assay")
    assert loaded.criteria["criterion_id"].to_list() == ["draft-3-0000-t0-c0", "draft-3-0000-t1-c0"]

    ids_file = tmp_path / "reviewed_ids.txt"
    assert read_reviewed_ids(ids_file) == set()
    assert reviewed(drafts, read_reviewed_ids(ids_file)).height == 0
    ids_file.write_text("# approved by reviewer\n\ndraft-3-0000  # checked criteria\ndraft-9-9999\n", encoding="utf-8")
    assert read_reviewed_ids(ids_file) == {"draft-3-0000", "draft-9-9999"}
    passed = reviewed(drafts, read_reviewed_ids(ids_file))
    assert passed["draft_id"].to_list() == ["draft-3-0000"] and passed["status"].to_list() == ["reviewed"]
