"""Tool-use trajectories as frame rows, and the import of BFCL examples as validated trajectories.

A trajectory is one row (`TRAJECTORY_SCHEMA`): the user's query, the tools offered, the oracle in
BFCL possible_answer form (`[{"func_name": {"param": [accepted values]}}]`, `[]` = no call is right),
the outputs of the oracle calls on the simulated backend and, for synthesized rows, the final
answer. JSON columns are `canonical_json`, so equal content is byte-equal (augmentations are checked
against their base by byte comparison of `oracle_json`).

Whatever fails validation goes to a rejects frame (`REJECTS_SCHEMA`: the shared quarantine columns, a
`REJECT_REASONS` code and the detail, plus origin, level, round and the full payload) with the level that
refused it: "format" (schema and shape), "execution" (the simulated backend returned a typed error, whose
type is the reason code) or "judge" (the answer does not follow from the outputs; synthesized
trajectories only), and the synthesis round. A synthesized seed may be refused in one round and
accepted in a later one, so the frame is unique per (record_id, round), not per record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import polars as pl

from ops.common.quarantine import QUARANTINE_SCHEMA, Rejected
from ops.tooluse.backends import SimulatedBackend, ToolErrorType
from ops.tooluse.bfcl import BfclExample, ExpectedCall, FunctionSpec
from ops.tooluse.specs import canonical_json, canonical_spec, validate_spec

__all__ = [
    "AUGMENTED_TRAJECTORY_SCHEMA",
    "KNOWN_EXECUTION_ISSUES",
    "REJECTS_SCHEMA",
    "REJECT_LEVELS",
    "REJECT_REASONS",
    "TRAJECTORY_SCHEMA",
    "bfcl_trajectories",
    "canonical_json",
    "first_accepted_arguments",
    "oracle_json",
    "reject_row",
    "render_calls",
    "spec_dict",
]

TRAJECTORY_SCHEMA: dict[str, pl.DataType] = {
    "trajectory_id": pl.String(),
    "origin": pl.String(),
    "category": pl.String(),
    "query": pl.String(),
    "tools_json": pl.String(),
    "oracle_json": pl.String(),
    "tool_outputs_json": pl.String(),
    "final_answer": pl.String(),
}
AUGMENTED_TRAJECTORY_SCHEMA: dict[str, pl.DataType] = {
    **TRAJECTORY_SCHEMA,
    "base_trajectory_id": pl.String(),
    "augmentation": pl.String(),
    "expected_behaviour": pl.String(),
}
REJECTS_SCHEMA: dict[str, pl.DataType] = {
    **QUARANTINE_SCHEMA,
    "origin": pl.String(),
    "level": pl.String(),
    "round": pl.Int64(),
    "payload_json": pl.String(),
}
REJECT_LEVELS: tuple[str, ...] = ("format", "execution", "judge")
# Reason codes: format (BFCL import, then synthesized candidates), execution (the backend's typed
# errors), judge.
FORMAT_REASONS: tuple[str, ...] = (
    "empty_query",
    "invalid_tool",
    "unoffered_call",
    "llm_error",
    "not_json",
    "not_object",
    "missing_query",
    "missing_final_answer",
    "no_calls",
    "malformed_call",
    "unknown_tool",
    "bad_arguments",
)
JUDGE_REASONS: tuple[str, ...] = ("inconsistent", "judge_ungraded")
REJECT_REASONS: tuple[str, ...] = (*FORMAT_REASONS, *(kind.value for kind in ToolErrorType), *JUDGE_REASONS)
# Bundled BFCL examples whose oracle call, built from the first accepted values, is not a valid call of
# its own spec, so the typed backend refuses it (BFCL's checker lets some through with its "variable"
# rule: a string oracle value standing for a variable of another type). Besides bfcl.KNOWN_ORACLE_ISSUES.
KNOWN_EXECUTION_ISSUES: dict[str, str] = {
    "parallel_multiple_21": "linear_regression_fit.x: the oracle passes the string \"data['sales']\" (a variable "
    "name) where the schema asks for an array of floats -> TypeMismatch.",
    "parallel_multiple_94": "sort_list.elements: the oracle sorts a list of fruit names but the schema's items are "
    "integers -> TypeMismatch.",
}


def spec_dict(function: FunctionSpec) -> dict[str, Any]:
    """A FunctionSpec as its canonical BFCL function-doc dict."""
    return canonical_spec(
        {"name": function.name, "description": function.description, "parameters": function.parameters}
    )


def _concrete(candidate: Any) -> Any:
    """A concrete value from an accepted candidate: a dict candidate maps each key to its accepted
    values, so take the first of each (dropping keys whose first accepted value is "")."""
    if isinstance(candidate, dict):
        return {k: _concrete(v[0]) for k, v in candidate.items() if isinstance(v, list) and v and v[0] != ""}
    if isinstance(candidate, list | tuple):
        return [_concrete(v) for v in candidate]
    return candidate


def first_accepted_arguments(expected: ExpectedCall, spec: FunctionSpec | None) -> dict[str, Any]:
    """The call arguments built from the first accepted value of each oracle parameter.

    A parameter whose first accepted value is "" (optional) is omitted, unless the schema requires
    it, in which case its first non-empty accepted value is used.
    """
    required = set(spec.required) if spec is not None else set()
    arguments = {}
    for param, accepted in expected.accepted.items():
        values = [a for a in accepted if a != ""] if param in required else accepted
        if values and values[0] != "":
            arguments[param] = _concrete(values[0])
    return arguments


def oracle_json(expected: Sequence[ExpectedCall]) -> str:
    """Oracle calls in BFCL possible_answer form, as canonical JSON (`"[]"` for no call)."""
    return canonical_json([{call.name: call.accepted} for call in expected])


def render_calls(calls: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Calls as a JSON list of `{"name", "arguments"}` objects, a form `reward.parse_tool_calls` reads."""
    return canonical_json([{"name": name, "arguments": arguments} for name, arguments in calls])


def reject_row(
    trajectory_id: str, origin: str, level: str, round_number: int, reason: str, detail: str, payload: Any
) -> dict[str, Any]:
    """One row of the rejects frame; `level` must be one of `REJECT_LEVELS` and `reason` of `REJECT_REASONS`."""
    if level not in REJECT_LEVELS:
        raise ValueError(f"unknown rejection level {level!r}; expected one of {REJECT_LEVELS}")
    if reason not in REJECT_REASONS:
        raise ValueError(f"unknown rejection reason {reason!r}; expected one of {REJECT_REASONS}")
    payload_json = canonical_json(payload)
    where = {"origin": origin, "level": level, "round": round_number, "payload_json": payload_json}
    return Rejected(trajectory_id, reason, detail, payload_json, where).row()


def _query(example: BfclExample) -> str:
    """The user's message: the last user turn of the example."""
    return next((m["content"] for m in reversed(example.messages) if m.get("role") == "user"), "")


def _format_problem(example: BfclExample, tools: list[dict[str, Any]]) -> tuple[str, str] | None:
    """(reason code, detail) of an example that cannot be a trajectory as offered, or None."""
    if not _query(example).strip():
        return "empty_query", "empty user query"
    for tool in tools:
        reason = validate_spec(tool)
        if reason:
            return "invalid_tool", f"tool {tool.get('name')!r}: {reason}"
    offered = {tool["name"] for tool in tools}
    missing = [call.name for call in example.expected if call.name not in offered]
    if missing:
        return "unoffered_call", f"oracle calls functions that are not offered: {missing}"
    return None


def bfcl_trajectories(examples: Sequence[BfclExample], backend: SimulatedBackend) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Import BFCL examples as validated trajectories (`TRAJECTORY_SCHEMA`) plus rejects (`REJECTS_SCHEMA`).

    The oracle is the possible answer; tool outputs come from running each oracle call, built from its
    first accepted values (`first_accepted_arguments`), on `backend` against the exact spec the example
    offers (the backend must hold it: build it from the examples' functions). An example whose tools do not
    validate or whose oracle names a function it does not offer is a "format" reject; one whose oracle
    call the backend refuses (typed error) is an "execution" reject (round 0 for both). Irrelevance
    examples have oracle `[]` and no tool outputs. `final_answer` is null: BFCL has none.
    """
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for example in examples:
        trajectory_id = f"bfcl:{example.id}"
        tools = [spec_dict(f) for f in example.functions]
        payload = {
            "id": example.id,
            "query": _query(example),
            "tools": tools,
            "oracle": json.loads(oracle_json(example.expected)),
        }
        problem = _format_problem(example, tools)
        if problem:
            rejects.append(reject_row(trajectory_id, "bfcl", "format", 0, *problem, payload))
            continue
        offered = {tool["name"]: tool for tool in tools}
        outputs: list[dict[str, Any]] = []
        for call in example.expected:
            arguments = first_accepted_arguments(call, example.spec(call.name))
            result = backend.execute_spec(offered[call.name], arguments)
            if not result.ok:
                problem = (str(result.error_type), f"{call.name}: {result.error_type}: {result.message}")
                break
            outputs.append({"name": call.name, "output": result.output})
        if problem:
            rejects.append(reject_row(trajectory_id, "bfcl", "execution", 0, *problem, payload))
            continue
        rows.append(
            {
                "trajectory_id": trajectory_id,
                "origin": "bfcl",
                "category": example.category,
                "query": _query(example),
                "tools_json": canonical_json(tools),
                "oracle_json": oracle_json(example.expected),
                "tool_outputs_json": canonical_json(outputs),
                "final_answer": None,
            }
        )
    return pl.DataFrame(rows, schema=TRAJECTORY_SCHEMA), pl.DataFrame(rejects, schema=REJECTS_SCHEMA)
