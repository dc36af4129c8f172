"""COVERT stage 1: self-evolving synthesis with format, execution and judge validation, on a fake LLM."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from ops.common.llm import ChatRequest
from ops.tooluse.backends import SimulatedBackend
from ops.tooluse.bfcl import parse_function_spec, parse_ground_truth
from ops.tooluse.reward import score_output
from ops.tooluse.synthesis import (
    JUDGE_CRITERION,
    Failure,
    Seed,
    make_seeds,
    oracle_from_calls,
    synthesis_requests,
    synthesize,
)
from ops.tooluse.trajectories import REJECTS_SCHEMA, TRAJECTORY_SCHEMA
from tests.fakes import Answer, FakeLLM, OffSchema

AREA = {
    "name": "calculate_triangle_area",
    "description": "Calculate the area of a triangle given its base and height.",
    "parameters": {
        "type": "dict",
        "properties": {
            "base": {"type": "integer", "description": "The base."},
            "height": {"type": "integer", "description": "The height."},
            "unit": {"type": "string", "description": "Unit of measure.", "default": "units"},
        },
        "required": ["base", "height"],
    },
}
WEATHER = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "parameters": {
        "type": "dict",
        "properties": {
            "location": {"type": "string", "description": "City name."},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit."},
        },
        "required": ["location"],
    },
}
UNBACKED = {
    "name": "book_table",
    "description": "Book a restaurant table.",
    "parameters": {"type": "dict", "properties": {"restaurant": {"type": "string"}}, "required": ["restaurant"]},
}

AREA_TRAJECTORY = {
    "query": "What is the area of a triangle with base 10 and height 5?",
    "calls": [{"name": "calculate_triangle_area", "arguments": {"base": 10, "height": 5}}],
    "final_answer": "The area is 25 square units.",
}
WEATHER_TRAJECTORY = {
    "query": "How warm is it in Paris right now, in celsius?",
    "calls": [{"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}}],
    "final_answer": "It is mild in Paris.",
}
BOOK_TRAJECTORY = {
    "query": "Book me a table at Chez Nous.",
    "calls": [{"name": "book_table", "arguments": {"restaurant": "Chez Nous"}}],
    "final_answer": "Your table is booked.",
}


def _is_judge(request: ChatRequest) -> bool:
    """A rubric-engine request (its schema asks for `criteria_met`), not a trajectory request."""
    return "criteria_met" in (request.json_schema or {}).get("properties", {})


def _judged(request: ChatRequest) -> tuple[str, int]:
    """(seed id, round) of a judge request: the engine's id is "<index>|<response_id>|<criterion_id>" and the
    response id is the synthesis request id "<seed_id>|<round>"."""
    _, seed_id, round_text, _ = request.request_id.split("|")
    return seed_id, int(round_text)


class FakeSynthesisLLM(FakeLLM):
    """Answers trajectory requests from `scripts[seed_id][round]` (a dict -> JSON, a str -> raw text, which
    the resource reports as invalid JSON when it does not parse) and rubric-engine judge requests with
    `criteria_met = verdicts[(seed_id, round)]` (default: True; a value other than a boolean is JSON outside
    the judge's schema, passed on as a server without strict mode would). Records every request."""

    def __init__(self, scripts: dict[str, list[Any]], verdicts: dict[tuple[str, int], Any] | None = None) -> None:
        super().__init__(model_id="fake-synthesis", prompt_tokens=50, completion_tokens=30, latency_s=0.01)
        self.scripts = scripts
        self.verdicts = verdicts or {}

    def answer(self, request: ChatRequest) -> Answer:
        if _is_judge(request):
            met = self.verdicts.get(_judged(request), True)
            verdict = {"explanation": "ok" if met is True else "answer invents a number", "criteria_met": met}
            return verdict if isinstance(met, bool) else OffSchema(verdict)
        seed_id, round_text = request.request_id.split("|")
        return self.scripts[seed_id][int(round_text)]


def _backend() -> SimulatedBackend:
    return SimulatedBackend([AREA, WEATHER])


def test_valid_trajectory_is_accepted_with_oracle_outputs_and_answer() -> None:
    seed = Seed("s_area", (AREA,))
    result = synthesize(FakeSynthesisLLM({"s_area": [AREA_TRAJECTORY]}), [seed], _backend(), rounds=2)
    assert result.rejects.height == 0
    assert result.trajectories.schema == pl.Schema(TRAJECTORY_SCHEMA)
    row = result.trajectories.row(0, named=True)
    assert row["trajectory_id"] == "synth:s_area"
    assert (row["origin"], row["category"]) == ("synthesized", "synthesized")
    assert row["query"] == AREA_TRAJECTORY["query"]
    assert row["final_answer"] == "The area is 25 square units."
    oracle = json.loads(row["oracle_json"])
    assert oracle == [{"calculate_triangle_area": {"base": [10], "height": [5], "unit": ["", "units"]}}]
    outputs = json.loads(row["tool_outputs_json"])
    assert outputs == [
        {
            "name": "calculate_triangle_area",
            "output": _backend().execute(AREA["name"], {"base": 10, "height": 5}).output,
        }
    ]
    assert outputs[0]["output"]["result"] == 25
    # the synthesized oracle is scored 1 by the reward on the calls the LLM made
    expected = parse_ground_truth(oracle)
    assert score_output(json.dumps(AREA_TRAJECTORY["calls"]), expected, [parse_function_spec(AREA)]).score == 1.0
    assert result.acceptance_rate == 1.0


def test_each_level_rejects_with_its_reason() -> None:
    seeds = [
        Seed("s_json", (AREA,)),
        Seed("s_unknown", (AREA,)),
        Seed("s_type", (AREA,)),
        Seed("s_missing", (WEATHER,)),
        Seed("s_enum", (WEATHER,)),
        Seed("s_exec", (UNBACKED,)),
        Seed("s_judge", (WEATHER,)),
    ]
    scripts = {
        "s_json": ['{"query": "area?", "calls": [{"name": "calculate_triangle_area", "arguments": {"base": 1'],
        # a tool outside the schema's enum: only a backend without grammar-constrained output writes it
        "s_unknown": [
            OffSchema({**AREA_TRAJECTORY, "calls": [{"name": "get_weather", "arguments": {"location": "R"}}]})
        ],
        "s_type": [{**AREA_TRAJECTORY, "calls": [{"name": AREA["name"], "arguments": {"base": "ten", "height": 5}}]}],
        "s_missing": [{**WEATHER_TRAJECTORY, "calls": [{"name": "get_weather", "arguments": {"unit": "celsius"}}]}],
        "s_enum": [
            {**WEATHER_TRAJECTORY, "calls": [{"name": "get_weather", "arguments": {"location": "X", "unit": "kelvin"}}]}
        ],
        "s_exec": [BOOK_TRAJECTORY],
        "s_judge": [WEATHER_TRAJECTORY],
    }
    fake = FakeSynthesisLLM(scripts, verdicts={("s_judge", 0): False})
    result = synthesize(fake, seeds, _backend(), rounds=1)
    assert result.trajectories.height == 0
    assert result.rejects.schema == pl.Schema(REJECTS_SCHEMA)
    rejects = {r["record_id"]: r for r in result.rejects.iter_rows(named=True)}
    assert {k: v["level"] for k, v in rejects.items()} == {
        "synth:s_json": "format",
        "synth:s_unknown": "format",
        "synth:s_type": "format",
        "synth:s_missing": "format",
        "synth:s_enum": "format",
        "synth:s_exec": "execution",
        "synth:s_judge": "judge",
    }
    assert {k: v["reason"] for k, v in rejects.items()} == {
        "synth:s_json": "llm_error",  # the resource reports unparseable output as an "invalid JSON" error
        "synth:s_unknown": "unknown_tool",
        "synth:s_type": "bad_arguments",
        "synth:s_missing": "bad_arguments",
        "synth:s_enum": "bad_arguments",
        "synth:s_exec": "UnknownTool",
        "synth:s_judge": "inconsistent",
    }
    assert rejects["synth:s_json"]["detail"].startswith("invalid JSON")
    assert rejects["synth:s_unknown"]["detail"].startswith("'get_weather'")
    assert "TypeMismatch" in rejects["synth:s_type"]["detail"]
    assert "MissingArgument" in rejects["synth:s_missing"]["detail"]
    assert "InvalidEnumValue" in rejects["synth:s_enum"]["detail"]
    assert rejects["synth:s_judge"]["detail"] == "answer invents a number"
    assert set(result.rejects["round"]) == {0}
    # the judge's payload is the candidate trajectory with its tool outputs
    judged = json.loads(rejects["synth:s_judge"]["payload_json"])
    assert json.loads(judged["tool_outputs_json"])[0]["name"] == "get_weather"
    # only candidates that passed format and execution were judged
    judge_requests = [r for r in fake.requests if _is_judge(r)]
    assert [_judged(r) for r in judge_requests] == [("s_judge", 0)]
    # the engine's prompt holds the criterion and the whole trajectory, the final answer as the graded turn
    prompt = judge_requests[0].messages[1]["content"]
    assert JUDGE_CRITERION in prompt and WEATHER_TRAJECTORY["query"] in prompt and '"location": "Paris"' in prompt
    assert "[tool]" in prompt and "[assistant (the turn to grade)]\n" + WEATHER_TRAJECTORY["final_answer"] in prompt


def test_malformed_outputs_never_crash() -> None:
    bad = [
        "[]",
        "null",
        '"just a string"',
        {"query": "", "calls": [], "final_answer": "x"},
        {"query": "q", "calls": [], "final_answer": "x"},
        {"query": "q", "calls": "calculate_triangle_area(base=1)", "final_answer": "x"},
        {"query": "q", "calls": [["calculate_triangle_area"]], "final_answer": "x"},
        {"query": "q", "calls": [{"name": AREA["name"], "arguments": "base=1"}], "final_answer": "x"},
        {"query": "q", "calls": [{"name": AREA["name"], "arguments": {"base": 1, "height": 2, "colour": 3}}]},
        {
            "query": "q",
            "calls": [{"name": AREA["name"], "arguments": {"base": True, "height": 2}}],
            "final_answer": "a",
        },
    ]
    seeds = [Seed(f"s{i}", (AREA,)) for i in range(len(bad))]
    # passed on as written (off the trajectory schema), as a backend without grammar-constrained output may
    fake = FakeSynthesisLLM({f"s{i}": [a if isinstance(a, str) else OffSchema(a)] for i, a in enumerate(bad)})
    result = synthesize(fake, seeds, _backend(), rounds=1)
    assert result.trajectories.height == 0
    assert result.rejects.height == len(bad)
    assert set(result.rejects["level"]) == {"format"}
    reasons = set(result.rejects["reason"])
    assert reasons == {
        "not_object",
        "no_calls",
        "malformed_call",
        "missing_query",
        "missing_final_answer",
        "bad_arguments",
    }


def test_failed_seed_is_retried_with_its_reason_and_accepted() -> None:
    seeds = [Seed("s_ok", (AREA,)), Seed("s_retry", (WEATHER,)), Seed("s_never", (AREA,))]
    wrong_type = {**WEATHER_TRAJECTORY, "calls": [{"name": "get_weather", "arguments": {"location": 75001}}]}
    scripts = {
        "s_ok": [AREA_TRAJECTORY],
        "s_retry": [wrong_type, WEATHER_TRAJECTORY],
        "s_never": ["oops", "still not json", "nope"],
    }
    fake = FakeSynthesisLLM(scripts)
    result = synthesize(fake, seeds, _backend(), rounds=3)
    assert sorted(result.trajectories["trajectory_id"]) == ["synth:s_ok", "synth:s_retry"]
    # the retry prompt carries the level and the reason of the round-0 failure
    retry = next(r for r in fake.requests if r.request_id == "s_retry|1")
    prompt = retry.messages[-1]["content"]
    assert "failed the format check" in prompt
    assert "TypeMismatch" in prompt and "location" in prompt
    assert retry.seed == 1
    first = next(r for r in fake.requests if r.request_id == "s_retry|0")
    assert "failed" not in first.messages[-1]["content"]
    # the accepted seed is not asked again; the hopeless one is asked every round
    asked = [r.request_id for r in fake.requests if not _is_judge(r)]
    assert asked == ["s_ok|0", "s_retry|0", "s_never|0", "s_retry|1", "s_never|1", "s_never|2"]
    assert result.rejects.select("record_id", "round").rows() == [
        ("synth:s_retry", 0),
        ("synth:s_never", 0),
        ("synth:s_never", 1),
        ("synth:s_never", 2),
    ]
    stats = {(r["round"], r["level"]): (r["entered"], r["passed"]) for r in result.stats.iter_rows(named=True)}
    assert stats == {
        (0, "format"): (3, 1),
        (0, "execution"): (1, 1),
        (0, "judge"): (1, 1),
        (1, "format"): (2, 1),
        (1, "execution"): (1, 1),
        (1, "judge"): (1, 1),
        (2, "format"): (1, 0),
        (2, "execution"): (0, 0),
        (2, "judge"): (0, 0),
    }
    assert result.acceptance_rate == 2 / 3
    assert result.usage.requests == len(fake.requests)


def test_stats_count_every_level_per_round() -> None:
    seeds = [Seed("a", (AREA,)), Seed("b", (AREA,)), Seed("c", (UNBACKED,)), Seed("d", (WEATHER,))]
    scripts = {"a": [AREA_TRAJECTORY], "b": ["{"], "c": [BOOK_TRAJECTORY], "d": [WEATHER_TRAJECTORY]}
    result = synthesize(FakeSynthesisLLM(scripts, {("d", 0): False}), seeds, _backend(), rounds=1)
    assert result.stats.rows() == [(0, "format", 4, 3), (0, "execution", 3, 2), (0, "judge", 2, 1)]
    assert result.trajectories.height + result.rejects.height == len(seeds)


def test_requests_schema_and_feedback() -> None:
    seeds = [Seed("x", (AREA, WEATHER))]
    plain = synthesis_requests(seeds, 0)
    fed = synthesis_requests(seeds, 2, {"x": Failure("judge", "answer invents a number")})
    assert plain[0].json_schema["properties"]["calls"]["items"]["properties"]["name"]["enum"] == [
        "calculate_triangle_area",
        "get_weather",
    ]
    assert "calculate_triangle_area" in plain[0].messages[1]["content"]
    assert fed[0].request_id == "x|2"
    assert "failed the judge check: answer invents a number" in fed[0].messages[1]["content"]


def test_make_seeds_is_deterministic_and_sized() -> None:
    pool = [AREA, WEATHER, UNBACKED]
    first, again = make_seeds(pool, 5, seed=3), make_seeds(list(reversed(pool)), 5, seed=3)
    assert first == again
    assert all(1 <= len(s.tools) <= 3 for s in first)
    assert all(len({t["name"] for t in s.tools}) == len(s.tools) for s in first)
    assert len({s.seed_id for s in first}) == 5
    assert make_seeds([], 3) == []
    twin = {**WEATHER, "description": "Another weather tool under the same name."}
    assert all(len(s.tools) == 1 for s in make_seeds([WEATHER, twin], 4, seed=1))


def test_oracle_from_calls_lists_omitted_optionals_as_omittable() -> None:
    oracle = oracle_from_calls([("get_weather", {"location": "Rome"})], [WEATHER])
    assert oracle == [{"get_weather": {"location": ["Rome"], "unit": [""]}}]
    expected = parse_ground_truth(oracle)
    specs = [parse_function_spec(WEATHER)]
    assert score_output('get_weather(location="rome")', expected, specs).score == 1.0
    assert score_output('get_weather(location="Rome", unit="celsius")', expected, specs).score == 0.0


def test_unusable_judge_verdict_is_retried_then_rejected_as_ungraded() -> None:
    fake = FakeSynthesisLLM({"w": [WEATHER_TRAJECTORY]}, {("w", 0): "maybe"})
    result = synthesize(fake, [Seed("w", (WEATHER,))], _backend(), rounds=1, judge_max_tokens=64)
    assert result.trajectories.height == 0
    reject = result.rejects.row(0, named=True)
    assert reject["level"] == "judge"
    assert reject["reason"] == "judge_ungraded"
    assert reject["detail"].startswith("no usable verdict after 3 attempt(s)")
    judge_requests = [r for r in fake.requests if _is_judge(r)]
    assert [r.seed for r in judge_requests] == [0, 1, 2] and {r.max_tokens for r in judge_requests} == {64}
    assert result.usage.requests == len(fake.requests) == 4
