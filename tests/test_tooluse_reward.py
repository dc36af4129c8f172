"""Correctness bar for the BFCL-style tool reward on the bundled BFCL v3 single-turn examples, plus units."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ops.tooluse.bfcl import KNOWN_ORACLE_ISSUES, BfclExample, ExpectedCall, FunctionSpec, load_single_turn
from ops.tooluse.perturbations import RewardCheck, oracle_calls, reward_checks
from ops.tooluse.reward import (
    RewardResult,
    ToolCall,
    UnparseableOutput,
    normalize_string,
    parse_tool_calls,
    score_calls,
    score_example,
    score_output,
    tool_reward,
)

BFCL_DIR = Path(__file__).resolve().parent.parent / "samples" / "bfcl_v3"


@dataclass
class BarReport:
    """Counts from running the correctness bar over every bundled example."""

    examples: int = 0
    checks: Counter[str] = field(default_factory=Counter)
    disagreements: list[str] = field(default_factory=list)
    not_perturbable: list[str] = field(default_factory=list)
    known_issues: int = 0

    def expect(self, check: RewardCheck, result: RewardResult) -> None:
        """Count one check and record a disagreement when score or outcome differ."""
        self.checks[check.kind] += 1
        if result.score != check.want_score or result.outcome != check.want_outcome:
            self.disagreements.append(
                f"{check.where} {check.kind}: got {result.score} {result.outcome}, "
                f"want {check.want_score} {check.want_outcome}"
            )


@pytest.fixture(scope="module")
def examples() -> list[BfclExample]:
    return load_single_turn(BFCL_DIR)


@pytest.fixture(scope="module")
def bar(examples: list[BfclExample]) -> BarReport:
    report = BarReport()
    for ex in examples:
        report.examples += 1
        if ex.id in KNOWN_ORACLE_ISSUES:
            report.known_issues += 1
            continue
        checks, not_perturbable = reward_checks(ex)
        report.not_perturbable += not_perturbable
        for check in checks:
            if check.calls is None:
                report.expect(check, score_example(check.text, ex))
            else:
                report.expect(check, score_calls(list(check.calls), ex.expected, ex.functions))
    print(
        f"\nBFCL bar: {report.examples} examples ({report.known_issues} known oracle issues), "
        f"{sum(report.checks.values())} checks, {len(report.disagreements)} disagreements, "
        f"{len(report.not_perturbable)} not perturbable; per kind {dict(report.checks)}"
    )
    return report


def test_bar_covers_every_bundled_example(bar: BarReport, examples: list[BfclExample]) -> None:
    counts = Counter(ex.category for ex in examples)
    assert counts == {"simple": 400, "multiple": 200, "parallel": 200, "parallel_multiple": 200, "irrelevance": 240}
    assert bar.examples == 1240
    assert bar.known_issues == len(KNOWN_ORACLE_ISSUES) == 2
    scored = 1000 - bar.known_issues
    for kind in ("oracle_calls", "oracle_python", "oracle_json", "oracle_reversed", "no_call"):
        assert bar.checks[kind] == scored, kind
    assert bar.checks["abstention"] == 3 * 240
    assert bar.checks["irrelevant_call"] == bar.checks["irrelevant_unparseable"] == 240
    for kind in ("wrong_function", "unknown", "missing_required", "wrong_type", "value_not_accepted"):
        assert bar.checks[kind] >= scored, kind


def test_bar_has_no_disagreements(bar: BarReport) -> None:
    assert bar.disagreements == []


def test_known_oracle_issues_really_fail(examples: list[BfclExample]) -> None:
    by_id = {ex.id: ex for ex in examples}
    for ex_id in KNOWN_ORACLE_ISSUES:
        ex = by_id[ex_id]
        assert score_calls(oracle_calls(ex), ex.expected, ex.functions).score == 0.0


def test_not_perturbable_cases_are_only_any_type_or_both_booleans(bar: BarReport) -> None:
    assert all("'any'" in n or "both booleans" in n for n in bar.not_perturbable)
    assert len(bar.not_perturbable) < 20


def test_normalize_string_follows_bfcl() -> None:
    assert normalize_string(" New-York_City, N.Y./*^ ") == "newyorkcityny"
    assert normalize_string("it's") == 'it"s'
    expected = [ExpectedCall("f", {"city": ["New York City"]})]
    spec = [FunctionSpec("f", "", {"properties": {"city": {"type": "string"}}, "required": ["city"]})]
    assert score_output('f(city="new_york-city.")', expected, spec).outcome == "match"
    assert score_output('f(city="Boston")', expected, spec).outcome == "value_not_accepted"


def test_tuple_becomes_list_and_int_is_a_float() -> None:
    spec = [
        FunctionSpec(
            "g",
            "",
            {
                "properties": {"pt": {"type": "tuple", "items": {"type": "integer"}}, "x": {"type": "float"}},
                "required": ["pt", "x"],
            },
        )
    ]
    expected = [ExpectedCall("g", {"pt": [[1, 2]], "x": [3.0]})]
    assert score_output("g(pt=(1, 2), x=3)", expected, spec).outcome == "match"
    assert score_output("g(pt=[1, 2], x=3.0)", expected, spec).outcome == "match"
    assert score_output("g(pt=(1, 2), x=True)", expected, spec).outcome == "wrong_type"
    assert score_output('g(pt=(1, 2), x="3")', expected, spec).outcome == "wrong_type"


def test_optional_parameter_and_nested_dict() -> None:
    props = {"q": {"type": "dict"}, "unit": {"type": "string"}}
    spec = [FunctionSpec("h", "", {"properties": props, "required": ["q"]})]
    expected = [ExpectedCall("h", {"q": [{"a": ["Paris Fr"], "b": [1, ""]}], "unit": ["km", ""]})]
    assert score_output('h(q={"a": "paris-fr"})', expected, spec).outcome == "match"
    assert score_output('h(q={"a": "paris", "b": 1})', expected, spec).outcome == "value_not_accepted"
    assert score_output('h(q={"a": "Paris Fr", "c": 1})', expected, spec).outcome == "value_not_accepted"
    assert score_output('h(q={"a": "Paris Fr"}, unit="mi")', expected, spec).outcome == "value_not_accepted"


def test_parallel_calls_match_in_any_order_one_to_one() -> None:
    spec = [FunctionSpec("w", "", {"properties": {"city": {"type": "string"}}, "required": ["city"]})]
    expected = [ExpectedCall("w", {"city": ["Paris"]}), ExpectedCall("w", {"city": ["Rome", "Roma"]})]
    assert score_output('[w(city="Roma"), w(city="Paris")]', expected, spec).score == 1.0
    same_twice = score_output('[w(city="Paris"), w(city="Paris")]', expected, spec)
    assert (same_twice.score, same_twice.outcome) == (0.0, "value_not_accepted")
    assert score_output('[w(city="Paris")]', expected, spec).outcome == "wrong_call_count"


def test_output_formats_parse_to_the_same_calls() -> None:
    want = [ToolCall("math.hypot", {"x": 4, "y": -5})]
    for text in (
        "math.hypot(x=4, y=-5)",
        "[math.hypot(x=4, y=-5)]",
        "```python\nmath.hypot(x=4, y=-5)\n```",
        '{"name": "math.hypot", "arguments": {"x": 4, "y": -5}}',
        '[{"function": {"name": "math.hypot", "arguments": "{\\"x\\": 4, \\"y\\": -5}"}}]',
        '[{"math.hypot": {"x": 4, "y": -5}}]',
        '<tool_call>\n{"name": "math.hypot", "arguments": {"x": 4, "y": -5}}\n</tool_call>',
    ):
        assert parse_tool_calls(text) == want, text
    assert parse_tool_calls("f(a=1)\ng(b='x')") == [ToolCall("f", {"a": 1}), ToolCall("g", {"b": "x"})]


@pytest.mark.parametrize(
    "text",
    [
        'get_weather(city="Paris"',
        '[{"name": "get_weather", "arguments": {"city": "Par',
        '<tool_call>{"name": "f", "arguments": }</tool_call>',
        'get_weather("Paris")',
        "get_weather(city=__import__('os').system('true'))",
        "get_weather(city=1 + 2)",
        '{"arguments": {"city": "Paris"}, "other": 1}',
        "[1, 2]",
    ],
)
def test_broken_outputs_are_unparseable_not_no_call(text: str) -> None:
    with pytest.raises(UnparseableOutput):
        parse_tool_calls(text)
    spec = [FunctionSpec("get_weather", "", {"properties": {"city": {"type": "string"}}, "required": ["city"]})]
    for expected in ([], [ExpectedCall("get_weather", {"city": ["Paris"]})]):
        result = score_output(text, expected, spec)
        assert (result.score, result.outcome) == (0.0, "unparseable")


def test_free_text_is_no_call() -> None:
    assert parse_tool_calls("I don't have a tool for that.") == []
    assert parse_tool_calls("  []  ") == []


def test_tool_reward_for_trl(examples: list[BfclExample]) -> None:
    oracle = {
        "ground_truth": [{"get_weather": {"city": ["Paris"], "unit": ["C", ""]}}],
        "functions": [
            {"name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}}, "required": ["city"]}}
        ],
    }
    no_call = {"ground_truth": [], "functions": oracle["functions"]}
    completions = [
        'get_weather(city="paris")',
        [
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}],
            }
        ],
        "get_weather(city=",
        "No tool fits.",
        "get_weather(",
        'get_weather(city="Paris")',
    ]
    oracles = [oracle, oracle, oracle, no_call, json.dumps(no_call), examples[0]]
    scores = tool_reward(completions, oracles, prompts=["p"] * 6, completion_ids=[[1]] * 6)
    assert scores == [1.0, 1.0, 0.0, 1.0, 0.0, 0.0]
