"""Systematic perturbations of BFCL examples with the score the reward must give each: the correctness bar.

For an example with oracle calls, the call built from the first accepted values must score 1 (as calls,
rendered in Python call syntax, as JSON, and in reversed order); one call short, no call, a wrong
function name, an unknown extra parameter, a missing required parameter, a value of the wrong type and
a value outside the accepted list must each score 0 with their own outcome. For an irrelevance example,
no call (empty, "[]", free text) scores 1, a call or a broken call 0. The reward tests assert every
check agrees; the tool-use benchmark times the reward over the same checks.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ops.tooluse.bfcl import KNOWN_ORACLE_ISSUES, BfclExample, FunctionSpec
from ops.tooluse.reward import Outcome, ToolCall
from ops.tooluse.trajectories import first_accepted_arguments

SENTINEL_STR = "zz not accepted zz"
SENTINEL_INT = 987654321
SENTINEL_FLOAT = 98765.4321
ABSTENTIONS: tuple[str, ...] = ("", "[]", "I cannot answer that with the tools I have.")


@dataclass(frozen=True)
class RewardCheck:
    """One model output for an example and the score and outcome the reward must give it.

    `calls` holds the parsed calls when the check is about matching (score them with `score_calls`);
    None when the check is about parsing too, and `text` is the output to score as given.
    """

    where: str
    kind: str
    want_score: float
    want_outcome: str
    calls: tuple[ToolCall, ...] | None = None
    text: str = ""

    @property
    def output(self) -> str:
        """The model output as text: `text`, or the calls rendered as JSON tool calls."""
        return self.text if self.calls is None else render_json(self.calls)


def oracle_calls(example: BfclExample) -> list[ToolCall]:
    """The example's oracle calls built from the first accepted value of each parameter."""
    return [ToolCall(e.name, first_accepted_arguments(e, example.spec(e.name))) for e in example.expected]


def render_python(calls: Sequence[ToolCall]) -> str:
    """Calls in BFCL's Python syntax: `[f(a=1), g(b='x')]`."""
    return "[" + ", ".join(f"{c.name}({', '.join(f'{k}={v!r}' for k, v in c.arguments.items())})" for c in calls) + "]"


def render_json(calls: Sequence[ToolCall]) -> str:
    """Calls as a JSON list of `{"name", "arguments"}` objects."""
    return json.dumps([{"name": c.name, "arguments": c.arguments} for c in calls])


def outside_value(value: Any, schema: dict[str, Any]) -> Any:
    """A value of the schema's type (or the oracle's, for BFCL "variables") that the oracle does not accept."""
    kind = schema.get("type")
    item_kind = (schema.get("items") or {}).get("type")
    if isinstance(value, str):  # a string oracle for another schema type: BFCL's "variable" rule
        return SENTINEL_STR
    if kind == "boolean":
        return not value
    if kind == "integer":
        return SENTINEL_INT
    if kind == "float":
        return SENTINEL_FLOAT
    if kind in ("array", "tuple"):
        extra = {"string": SENTINEL_STR, "integer": SENTINEL_INT, "float": SENTINEL_FLOAT, "dict": {"zz": 1}}.get(
            item_kind
        )
        return [*value, extra if extra is not None else (value[0] if value else SENTINEL_STR)]
    if kind == "dict":
        return {**value, "zz_unexpected_key": 1}
    return SENTINEL_STR


def _call_perturbations(example: BfclExample, calls: list[ToolCall], k: int) -> tuple[list[RewardCheck], list[str]]:
    """Checks that break call `k` one way at a time (each must score 0), and what could not be broken."""
    call, expected = calls[k], example.expected[k]
    spec: FunctionSpec | None = example.spec(expected.name)
    if spec is None:
        raise ValueError(f"{example.id}: oracle function {expected.name} is not offered")
    checks: list[RewardCheck] = []
    skipped: list[str] = []

    def zero(kind: str, perturbed: ToolCall, outcome: Outcome) -> None:
        replaced = (*calls[:k], perturbed, *calls[k + 1 :])
        checks.append(RewardCheck(f"{example.id}#{k}", kind, 0.0, outcome.value, calls=replaced))

    zero("wrong_function", ToolCall(call.name + "_wrong", call.arguments), Outcome.WRONG_FUNCTION)
    zero("unknown", ToolCall(call.name, {**call.arguments, "zz_unknown_param": 1}), Outcome.UNKNOWN_PARAMETER)
    for param in spec.required:
        if param in call.arguments:
            args = {p: v for p, v in call.arguments.items() if p != param}
            zero("missing_required", ToolCall(call.name, args), Outcome.MISSING_REQUIRED)
    for param, value in call.arguments.items():
        schema = spec.properties[param]
        if schema.get("type") == "any":
            skipped.append(f"{example.id}#{k} {param}: wrong type (schema type 'any')")
        else:
            wrong = 12345 if schema.get("type") == "dict" else {"zz": 1}
            zero("wrong_type", ToolCall(call.name, {**call.arguments, param: wrong}), Outcome.WRONG_TYPE)
        accepted = expected.accepted[param]
        if schema.get("type") == "boolean" and True in accepted and False in accepted:
            skipped.append(f"{example.id}#{k} {param}: both booleans accepted")
            continue
        outside = ToolCall(call.name, {**call.arguments, param: outside_value(value, schema)})
        zero("value_not_accepted", outside, Outcome.VALUE_NOT_ACCEPTED)
    return checks, skipped


def reward_checks(example: BfclExample) -> tuple[list[RewardCheck], list[str]]:
    """Every check of the correctness bar for `example`, and the perturbations that do not apply
    (a parameter of schema type "any" has no wrong type; a boolean accepting both values no outside one).

    An example in `KNOWN_ORACLE_ISSUES` gets no checks: its own oracle call does not score 1.
    """
    if example.id in KNOWN_ORACLE_ISSUES:
        return [], []
    if example.expects_no_call:
        name = example.functions[0].name
        abstain = Outcome.CORRECT_ABSTENTION.value
        checks = [RewardCheck(example.id, "abstention", 1.0, abstain, text=text) for text in ABSTENTIONS]
        checks.append(RewardCheck(example.id, "irrelevant_call", 0.0, Outcome.UNEXPECTED_CALL.value, text=f"{name}()"))
        broken = f'[{name}(x="'
        checks.append(RewardCheck(example.id, "irrelevant_unparseable", 0.0, Outcome.UNPARSEABLE.value, text=broken))
        return checks, []
    calls = oracle_calls(example)
    match = Outcome.MATCH.value
    checks = [
        RewardCheck(example.id, "oracle_calls", 1.0, match, calls=tuple(calls)),
        RewardCheck(example.id, "oracle_python", 1.0, match, text=render_python(calls)),
        RewardCheck(example.id, "oracle_json", 1.0, match, text=render_json(calls)),
        RewardCheck(example.id, "oracle_reversed", 1.0, match, calls=tuple(reversed(calls))),
    ]
    if len(calls) > 1:
        checks.append(
            RewardCheck(example.id, "one_call_short", 0.0, Outcome.WRONG_CALL_COUNT.value, calls=tuple(calls[:-1]))
        )
    checks.append(RewardCheck(example.id, "no_call", 0.0, Outcome.NO_CALL.value, calls=()))
    skipped: list[str] = []
    for k in range(len(calls)):
        made, not_made = _call_perturbations(example, calls, k)
        checks += made
        skipped += not_made
    return checks, skipped
