"""Tool specs: every bundled BFCL function doc validates; bad specs are quarantined with a reason;
user tool files in OpenAI and bare JSON-schema formats are converted to the BFCL form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ops.tooluse.specs import (
    MAX_DEPTH,
    SPEC_REASONS,
    canonical_json,
    canonical_spec,
    load_bfcl_specs,
    load_user_tool_files,
    spec_problem,
    spec_text,
    validate_spec,
)

BFCL_DIR = Path(__file__).resolve().parent.parent / "samples" / "bfcl_v3"


def _tool(properties: Any, required: Any = None, name: str = "get_weather") -> dict[str, Any]:
    parameters: dict[str, Any] = {"type": "dict", "properties": properties}
    if required is not None:
        parameters["required"] = required
    return {"name": name, "description": "Get the weather.", "parameters": parameters}


def _nested(depth: int) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        node = {"type": "dict", "properties": {"inner": node}}
    return node


@pytest.fixture(scope="module")
def bfcl_specs():
    return load_bfcl_specs(BFCL_DIR)


def test_every_bundled_bfcl_spec_validates(bfcl_specs) -> None:
    assert bfcl_specs.records_read == 1917  # function docs offered across the 1240 questions
    assert bfcl_specs.rows_in == 1363  # distinct canonical specs
    assert bfcl_specs.specs.height == 1363
    assert bfcl_specs.quarantine.height == 0
    assert bfcl_specs.split.accounted()
    counts = dict(bfcl_specs.specs.group_by("source").len().iter_rows())
    assert counts == {
        "bfcl:simple": 400,
        "bfcl:multiple": 353,
        "bfcl:parallel": 113,
        "bfcl:parallel_multiple": 257,
        "bfcl:irrelevance": 240,
    }
    for spec_json in bfcl_specs.specs["spec_json"]:
        spec = json.loads(spec_json)
        assert validate_spec(spec) is None
        assert spec_json == canonical_json(spec)


def test_bfcl_tool_ids_unique_and_name_clashes_suffixed(bfcl_specs) -> None:
    frame = bfcl_specs.specs
    assert frame["tool_id"].n_unique() == frame.height
    assert frame["spec_json"].n_unique() == frame.height
    suffixed = frame.filter(frame["tool_id"].str.contains("@"))
    assert suffixed.height == 629  # names offered with more than one distinct spec
    assert frame["name"].n_unique() == 983
    factorials = frame.filter(frame["name"] == "math.factorial")
    assert factorials.height > 1
    assert all(tid.startswith(f"{src}:math.factorial@") for tid, src in factorials.select("tool_id", "source").rows())
    assert frame.filter(frame["name"] == "calculate_triangle_area").height == 3
    single = frame.filter(frame["name"] == "CalculateTax")
    assert single["tool_id"].to_list() == ["bfcl:irrelevance:CalculateTax"]
    row = single.row(0, named=True)
    assert (row["n_params"], row["n_required"], row["warnings"]) == (3, 3, "")


def test_bfcl_type_names_are_kept(bfcl_specs) -> None:
    all_json = "".join(bfcl_specs.specs["spec_json"])
    assert '"type":"tuple"' in all_json
    assert '"type":"any"' in all_json
    assert '"type":"object"' not in all_json


@pytest.mark.parametrize(
    ("spec", "reason_part"),
    [
        (_tool({"when": {"type": "datetime"}}), "unknown type 'datetime'"),
        (_tool({"n": {"type": "int64"}}), "unknown type 'int64'"),
        (_tool({"node": {"$ref": "#/definitions/node"}}), "recursive schema ($ref)"),
        (_tool({"node": {"type": "dict", "properties": {"next": {"$ref": "#"}}}}), "recursive schema ($ref)"),
        (_tool({"deep": _nested(MAX_DEPTH + 2)}), "nested deeper than"),
        (_tool({"city": {"type": "string"}}, required=["city", "country"]), "do not exist: ['country']"),
        (_tool({"city": {"type": "string"}}, name="get weather!"), "invalid name"),
        (_tool({"city": {"type": "string"}}, name="1st_tool"), "invalid name"),
        ({"description": "no name", "parameters": {"type": "dict", "properties": {}}}, "missing name"),
        (_tool(["city", "country"]), "properties is a list"),
        (_tool({"city": "string"}), "schema is a str"),
        (_tool({"city": {"description": "no type"}}), "no type"),
        (_tool({"v": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}), "composed schema (anyOf)"),
        (_tool({"v": {"type": ["string", "integer"]}}), "unknown type"),
        ({"name": "f", "parameters": {"type": "array", "items": {"type": "string"}}}, "must be of type dict"),
    ],
)
def test_bad_specs_have_reasons(spec: dict[str, Any], reason_part: str) -> None:
    reason = validate_spec(canonical_spec(spec))
    assert reason is not None
    assert reason_part in reason
    problem = spec_problem(canonical_spec(spec))
    assert problem is not None and problem.code in SPEC_REASONS and problem.detail == reason


def test_shallow_nesting_is_fine_and_missing_required_is_a_warning(tmp_path: Path) -> None:
    assert validate_spec(canonical_spec(_tool({"deep": _nested(MAX_DEPTH - 1)}))) is None
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([_tool({"city": {"type": "string"}})]))
    result = load_user_tool_files([path])
    assert result.quarantine.height == 0
    row = result.specs.row(0, named=True)
    assert row["warnings"] == "required missing: read as []"
    assert row["n_required"] == 0
    assert json.loads(row["spec_json"])["parameters"]["required"] == []


def test_quarantine_frame_records_source_number_and_excerpt(tmp_path: Path) -> None:
    good = _tool({"city": {"type": "string"}}, required=["city"])
    records = [
        good,
        _tool({"when": {"type": "datetime"}}, name="get_time"),
        _tool({"node": {"$ref": "#"}}, name="walk"),
        _tool({"deep": _nested(MAX_DEPTH + 2)}, name="deep"),
        _tool({"a": {"type": "string"}}, required=["b"], name="req"),
        _tool({"a": {"type": "string"}}, name="bad name"),
        {"name": "props", "parameters": {"type": "object", "properties": "a,b"}},
        "not a tool",
        good,  # exact duplicate: dropped, not counted in rows_in
    ]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(records))
    result = load_user_tool_files([path])
    assert result.records_read == 9
    assert result.rows_in == 8
    assert result.specs.height == 1
    assert result.specs["tool_id"].to_list() == ["user:mixed.json:get_weather"]
    quarantine = result.quarantine
    assert quarantine.height == 7
    assert quarantine["source"].unique().to_list() == ["user:mixed.json"]
    assert quarantine["record_number"].to_list() == [2, 3, 4, 5, 6, 7, 8]
    assert quarantine["name"].to_list() == ["get_time", "walk", "deep", "req", "bad name", "props", None]
    assert quarantine["record_id"].to_list() == [f"user:mixed.json#{number}" for number in range(2, 9)]
    assert quarantine["reason"].to_list() == [
        "unknown_type",
        "recursive_schema",
        "too_deep",
        "bad_required",
        "invalid_name",
        "bad_parameters",
        "not_an_object",
    ]
    parts = ["unknown type", "$ref", "nested deeper", "do not exist", "invalid name", "properties is a str"]
    for detail, part in zip(quarantine["detail"], [*parts, "not an object"], strict=True):
        assert part in detail
    assert all(0 < len(excerpt) <= 500 for excerpt in quarantine["excerpt"])
    assert result.split.accounted()


def test_user_files_openai_and_bare_formats(tmp_path: Path) -> None:
    openai = {
        "type": "function",
        "function": {
            "name": "convert_currency",
            "description": "Convert an amount between currencies.",
            "parameters": {
                "type": "object",
                "properties": {
                    "amount": {"type": "number", "description": "Amount to convert."},
                    "from": {"type": "string", "enum": ["USD", "EUR"]},
                    "to": {"type": ["string", "null"]},
                    "options": {
                        "type": "object",
                        "properties": {"round": {"type": "integer"}},
                        "required": ["round"],
                    },
                    "history": {"type": "array", "items": {"type": "number"}},
                },
                "required": ["amount", "from"],
            },
            "strict": True,
        },
    }
    bare = {
        "name": "ping",
        "description": "Check that the service answers.",
    }
    bare_list = [
        {"name": "send_email", "description": "Send an email.", "parameters": {"type": "object", "properties": {}}},
        {"type": "function", "function": {"name": "reset", "description": "Reset.", "parameters": {"type": "object"}}},
    ]
    files = []
    for name, content in [("openai.json", openai), ("bare.json", bare), ("list.json", bare_list)]:
        files.append(tmp_path / name)
        files[-1].write_text(json.dumps(content))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = load_user_tool_files([*files, broken])
    assert result.rows_in == 5
    assert result.specs["tool_id"].to_list() == [
        "user:openai.json:convert_currency",
        "user:bare.json:ping",
        "user:list.json:send_email",
        "user:list.json:reset",
    ]
    spec = json.loads(result.specs["spec_json"][0])
    assert set(spec) == {"name", "description", "parameters"}
    props = spec["parameters"]["properties"]
    assert spec["parameters"]["type"] == "dict"
    assert props["amount"]["type"] == "float"
    assert props["to"]["type"] == "string"
    assert props["options"]["type"] == "dict"
    assert props["options"]["properties"]["round"]["type"] == "integer"
    assert props["history"]["items"]["type"] == "float"
    assert result.specs["n_params"].to_list() == [5, 0, 0, 0]
    assert result.specs["n_required"].to_list() == [2, 0, 0, 0]
    warnings = result.specs["warnings"].to_list()
    no_required = "required missing: read as []"
    assert warnings == ["", "parameters missing: tool takes no arguments", no_required, no_required]
    assert result.quarantine.row(0, named=True)["record_number"] == 0
    assert result.quarantine["reason"][0] == "unreadable"
    assert "unreadable JSON" in result.quarantine["detail"][0]


def test_canonical_spec_is_idempotent_on_bfcl_form() -> None:
    spec = _tool({"city": {"type": "string"}, "days": {"type": "integer"}}, required=["city"])
    assert canonical_spec(spec) == spec
    assert canonical_spec(canonical_spec(spec)) == spec


def test_spec_text_holds_name_description_and_parameters() -> None:
    spec = {
        "name": "weather.getForecast",
        "description": "Daily forecast for a city.",
        "parameters": {
            "type": "dict",
            "properties": {"city": {"type": "string", "description": "City name."}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    }
    text = spec_text(spec)
    assert text.startswith("weather.getForecast (weather get forecast): Daily forecast for a city.")
    assert "city: City name." in text
    assert "days" in text


def test_canonical_json_is_sorted_compact_and_unicode() -> None:
    assert canonical_json({"b": 1, "a": ["é", (1, 2)]}) == '{"a":["é",[1,2]],"b":1}'
