"""BFCL-style AST reward for tool calls: parse a model output, match it against oracle calls, score 0/1.

Semantics follow BFCL's AST checker (see ../shared/papers/README.md section 10) and are re-implemented
here, not copied:
- the function name must match (the oracle name with "." replaced by "_" is accepted too, as BFCL does
  for function-calling models whose APIs forbid dots in names);
- every schema-required parameter is present; no parameter outside the schema or the oracle appears;
  a parameter the oracle lists without "" among its accepted values must be present too;
- types match the schema: tuples become lists, an int is accepted for "float" (BFCL converts it),
  bool is never an int; a value whose type is not the schema's but is the oracle's own type is
  accepted (BFCL's "variable" rule, for oracles that store e.g. a variable name for an integer);
- each value is in the accepted list: strings compared after removing whitespace and ,./-_*^,
  lower-casing and turning ' into " (BFCL's `standardize_string`); lists, tuples and dicts compared
  recursively with the same rules; "" in the accepted list means the parameter may be omitted;
- parallel calls are matched one-to-one in any order (maximum bipartite matching).
Outputs are parsed with `ast` and `json`, never `eval`. "No call" (empty output, "[]", or free text
that does not start like a call) is scored apart from "unparseable" (an attempted call that does not
parse): on irrelevance examples only "no call" earns 1, unlike BFCL, which also credits unparseable
output as an abstention.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ops.tooluse.bfcl import BfclExample, ExpectedCall, FunctionSpec, parse_function_spec, parse_ground_truth


class Outcome(StrEnum):
    """Why a model output got its score (a str, so `result.outcome == "match"` works)."""

    MATCH = "match"
    CORRECT_ABSTENTION = "correct_abstention"
    WRONG_FUNCTION = "wrong_function"
    MISSING_REQUIRED = "missing_required"
    UNKNOWN_PARAMETER = "unknown_parameter"
    WRONG_TYPE = "wrong_type"
    VALUE_NOT_ACCEPTED = "value_not_accepted"
    WRONG_CALL_COUNT = "wrong_call_count"
    UNEXPECTED_CALL = "unexpected_call"
    UNPARSEABLE = "unparseable"
    NO_CALL = "no_call"


# Where this implementation knowingly differs from BFCL's checker, and why.
BFCL_QUIRKS: dict[str, str] = {
    "unparseable_abstention": "BFCL credits unparseable output on irrelevance as abstention; here it scores 0.",
    "any_type": "BFCL maps schema type 'any' to str; here 'any' accepts every type (4 bundled params use it).",
    "tuple_everywhere": "BFCL turns tuples into lists only for 'tuple' params; here tuples are lists everywhere.",
    "nested_strings": "BFCL normalizes strings only one level inside lists/dicts; here at every depth.",
    "empty_list_optional": "BFCL's list check lets [] match when '' is accepted; here '' only allows omission.",
    "free_text": "Free text that does not start like a call is 'no call' (BFCL would fail to parse it).",
}

_STRIP_CHARS = re.compile(r"[\s,./\-_*^]")
_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?\s*```$", re.S)
_TOOL_CALL_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
_CALL_START = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\s*\(")
_SCHEMA_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "integer": int,
    "float": (int, float),
    "number": (int, float),
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "object": dict,
}


@dataclass(frozen=True)
class RewardResult:
    """A score in [0, 1], the outcome (an `Outcome` value) and a human-readable detail."""

    score: float
    outcome: str
    detail: str


@dataclass(frozen=True)
class ToolCall:
    """A call parsed from model output: function name and keyword arguments."""

    name: str
    arguments: dict[str, Any]


class UnparseableOutput(ValueError):
    """Raised when an output looks like a tool call but cannot be parsed into calls."""


def normalize_string(text: str) -> str:
    """BFCL string normalization: drop whitespace and ,./-_*^, lower-case, turn ' into "."""
    return _STRIP_CHARS.sub("", text).lower().replace("'", '"')


def parse_tool_calls(output: str | list[Any] | dict[str, Any]) -> list[ToolCall]:
    """Parse a model output into calls; [] means "no call"; raises UnparseableOutput for broken calls.

    Accepted forms: Python call syntax (`f(a=1)`, `[f(a=1), g.h(b="x")]`, one call per line), JSON tool
    calls (`{"name", "arguments"}` with arguments as object or JSON string, OpenAI `{"function": ...}`,
    BFCL `{func: {args}}`, or a list of these), `<tool_call>...</tool_call>` blocks, optionally inside a
    Markdown code fence; or already-decoded lists/dicts of the JSON forms.
    """
    if not isinstance(output, str):
        return _calls_from_data(output)
    text = output.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    if "<tool_call>" in text:
        return [call for block in _TOOL_CALL_TAG.findall(text) for call in _calls_from_json_text(block)]
    if not text or text == "[]":
        return []
    if text[0] in "[{":
        try:
            return _calls_from_data(json.loads(text))
        except json.JSONDecodeError:
            return _calls_from_python(text)
    if _CALL_START.match(text):
        return _calls_from_python(text)
    return []


def _calls_from_json_text(text: str) -> list[ToolCall]:
    try:
        return _calls_from_data(json.loads(text))
    except json.JSONDecodeError as exc:
        raise UnparseableOutput(f"broken JSON tool call: {exc}") from exc


def _calls_from_data(data: Any) -> list[ToolCall]:
    items = data if isinstance(data, list) else [data]
    return [_call_from_object(item) for item in items]


def _call_from_object(obj: Any) -> ToolCall:
    if not isinstance(obj, dict):
        raise UnparseableOutput(f"expected a call object, got {type(obj).__name__}")
    if isinstance(obj.get("function"), dict):
        obj = obj["function"]
    if "name" in obj and isinstance(obj["name"], str):
        args = obj.get("arguments", obj.get("parameters", {}))
    elif len(obj) == 1:
        name, args = next(iter(obj.items()))
        obj = {"name": name}
    else:
        raise UnparseableOutput(f"call object without a name: keys {sorted(obj)}")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise UnparseableOutput(f"arguments are not valid JSON: {exc}") from exc
    if not isinstance(args, dict):
        raise UnparseableOutput(f"arguments must be an object, got {type(args).__name__}")
    return ToolCall(name=str(obj["name"]), arguments=dict(args))


def _calls_from_python(text: str) -> list[ToolCall]:
    source = text if text.startswith("[") else f"[{text}]"
    try:
        body = ast.parse(source, mode="eval").body
        nodes = body.elts if isinstance(body, ast.List) else [body]
    except SyntaxError:
        try:
            statements = ast.parse(text, mode="exec").body
        except SyntaxError as exc:
            raise UnparseableOutput(f"not valid call syntax: {exc.msg}") from exc
        if not all(isinstance(s, ast.Expr) for s in statements):
            raise UnparseableOutput("only call expressions are allowed") from None
        nodes = [s.value for s in statements]
    return [
        _call_from_node(node) if isinstance(node, ast.Call) else _call_from_object(_literal(node)) for node in nodes
    ]


def _call_from_node(node: ast.Call) -> ToolCall:
    if node.args:
        raise UnparseableOutput("positional arguments are not allowed; use keyword arguments")
    if any(kw.arg is None for kw in node.keywords):
        raise UnparseableOutput("**kwargs unpacking is not allowed")
    return ToolCall(name=_dotted_name(node.func), arguments={kw.arg: _literal(kw.value) for kw in node.keywords})


def _dotted_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted_name(node.value)}.{node.attr}"
    raise UnparseableOutput("function name must be a dotted identifier")


def _literal(node: ast.expr) -> Any:
    """Resolve a literal AST node (constants, signs, containers; a bare name is its own string, as in BFCL)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _literal(node.operand)
        if isinstance(operand, int | float) and not isinstance(operand, bool):
            return -operand if isinstance(node.op, ast.USub) else operand
    elif isinstance(node, ast.List):
        return [_literal(e) for e in node.elts]
    elif isinstance(node, ast.Tuple):
        return tuple(_literal(e) for e in node.elts)
    elif isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values, strict=True)}
    elif isinstance(node, ast.Name):
        return node.id
    raise UnparseableOutput(f"unsupported argument expression: {ast.unparse(node)[:60]}")


def _listify(value: Any) -> Any:
    """Turn tuples into lists at every depth (BFCL's tuple -> list)."""
    if isinstance(value, tuple | list):
        return [_listify(v) for v in value]
    if isinstance(value, dict):
        return {k: _listify(v) for k, v in value.items()}
    return value


def _is_type(value: Any, schema_type: str | None) -> bool:
    expected = _SCHEMA_TYPES.get(schema_type or "")
    if expected is None:  # "any" or an unknown schema type: no type constraint
        return True
    if isinstance(value, bool) and expected is not bool:
        return False
    return isinstance(value, expected)


def _type_ok(value: Any, schema: dict[str, Any], accepted: list[Any]) -> bool:
    """Schema type check with BFCL's nested item check and its "variable" rule (oracle's own type wins)."""
    schema_type = schema.get("type")
    if _is_type(value, schema_type):
        item_type = (schema.get("items") or {}).get("type") if schema_type in ("array", "tuple") else None
        if item_type is None or all(_is_type(v, item_type) for v in value):
            return True
        # BFCL's variable rule one level down: items may take the type of an accepted list's first item.
        return any(
            isinstance(a, list) and a and all(_is_type(v, item_type) or type(v) is type(a[0]) for v in value)
            for a in accepted
        )
    oracle_values = [a for a in accepted if a != ""]
    return bool(oracle_values) and type(value) is type(oracle_values[0])


def _matches(value: Any, candidate: Any) -> bool:
    """True when `value` equals one accepted `candidate` under BFCL rules, recursively."""
    if isinstance(candidate, str):
        return isinstance(value, str) and normalize_string(value) == normalize_string(candidate)
    if isinstance(candidate, bool) or isinstance(value, bool):
        return isinstance(candidate, bool) and isinstance(value, bool) and value == candidate
    if isinstance(candidate, int | float):
        return isinstance(value, int | float) and value == candidate
    if isinstance(candidate, list):
        return (
            isinstance(value, list)
            and len(value) == len(candidate)
            and all(_matches(v, c) for v, c in zip(value, candidate, strict=True))
        )
    if isinstance(candidate, dict):
        return isinstance(value, dict) and _dict_matches(value, candidate)
    return bool(value == candidate)


def _dict_matches(value: dict[str, Any], candidate: dict[str, Any]) -> bool:
    """A dict oracle maps each key to its accepted values; "" among them lets the key be omitted."""
    for key, item in value.items():
        if key not in candidate:
            return False
        accepted = candidate[key] if isinstance(candidate[key], list) else [candidate[key]]
        if not any(_matches(item, a) for a in accepted):
            return False
    return all(key in value or (isinstance(acc, list) and "" in acc) for key, acc in candidate.items())


def _name_matches(name: str, expected: str) -> bool:
    return name == expected or name == expected.replace(".", "_")


def _fail(outcome: Outcome, detail: str) -> RewardResult:
    return RewardResult(score=0.0, outcome=outcome.value, detail=detail)


def match_call(call: ToolCall, expected: ExpectedCall, spec: FunctionSpec | None) -> RewardResult:
    """Match one parsed call against one oracle call; `spec` is the offered function (None: untyped).

    Checks run in stages, each over all arguments, so the first failing stage names the outcome: name,
    required parameters, unknown parameters, types, accepted values, then oracle-expected omissions.
    """
    if not _name_matches(call.name, expected.name):
        return _fail(Outcome.WRONG_FUNCTION, f"called {call.name!r}, expected {expected.name!r}")
    properties = spec.properties if spec is not None else {k: {} for k in expected.accepted}
    required = spec.required if spec is not None else ()
    args = {k: _listify(v) for k, v in call.arguments.items()}
    for param in required:
        if param not in args:
            return _fail(Outcome.MISSING_REQUIRED, f"{expected.name}: required parameter {param!r} missing")
    for param in args:
        if param not in properties or param not in expected.accepted:
            return _fail(Outcome.UNKNOWN_PARAMETER, f"{expected.name}: unknown parameter {param!r}")
    accepted_by_param = {p: [_listify(a) for a in expected.accepted[p]] for p in args}
    for param, value in args.items():
        if not _type_ok(value, properties[param], accepted_by_param[param]):
            want = properties[param].get("type")
            return _fail(Outcome.WRONG_TYPE, f"{expected.name}.{param}: {type(value).__name__}, schema says {want}")
    for param, value in args.items():
        if not any(_matches(value, a) for a in accepted_by_param[param]):
            return _fail(Outcome.VALUE_NOT_ACCEPTED, f"{expected.name}.{param}={value!r:.80} not accepted")
    for param, accepted in expected.accepted.items():
        if param not in args and "" not in accepted:
            return _fail(Outcome.MISSING_REQUIRED, f"{expected.name}: {param!r} omitted but not optional")
    return RewardResult(score=1.0, outcome=Outcome.MATCH.value, detail=f"{expected.name} matched")


def _augment(i: int, graph: list[list[int]], owner: list[int | None], seen: set[int]) -> bool:
    for j in graph[i]:
        if j in seen:
            continue
        seen.add(j)
        current = owner[j]
        if current is None or _augment(current, graph, owner, seen):
            owner[j] = i
            return True
    return False


def score_calls(
    calls: Sequence[ToolCall], expected: Sequence[ExpectedCall], functions: Sequence[FunctionSpec]
) -> RewardResult:
    """Score parsed calls against the oracle calls (empty oracle = the right answer is no call)."""
    if not expected:
        if calls:
            return _fail(Outcome.UNEXPECTED_CALL, f"expected no call, got {len(calls)}")
        return RewardResult(score=1.0, outcome=Outcome.CORRECT_ABSTENTION.value, detail="no call, as expected")
    if not calls:
        return _fail(Outcome.NO_CALL, f"expected {len(expected)} call(s), got none")
    if len(calls) != len(expected):
        return _fail(Outcome.WRONG_CALL_COUNT, f"expected {len(expected)} call(s), got {len(calls)}")
    specs = {f.name: f for f in functions}
    for e in expected:
        if functions and e.name not in specs:
            return _fail(Outcome.WRONG_FUNCTION, f"oracle function {e.name!r} is not among the offered tools")
    results = [[match_call(c, e, specs.get(e.name)) for c in calls] for e in expected]
    graph = [[j for j, r in enumerate(row) if r.score == 1.0] for row in results]
    owner: list[int | None] = [None] * len(calls)
    for i in range(len(expected)):
        _augment(i, graph, owner, set())
    matched_expected = {i for i in owner if i is not None}
    if len(matched_expected) == len(expected):
        return RewardResult(score=1.0, outcome=Outcome.MATCH.value, detail=f"{len(expected)} call(s) matched")
    free_calls = [j for j, i in enumerate(owner) if i is None]
    pairs = [(i, j) for i in range(len(expected)) if i not in matched_expected for j in free_calls]
    same_name = [(i, j) for i, j in pairs if _name_matches(calls[j].name, expected[i].name)]
    i, j = (same_name or pairs)[0]
    return results[i][j]


def score_output(
    output: str | list[Any] | dict[str, Any], expected: Sequence[ExpectedCall], functions: Sequence[FunctionSpec]
) -> RewardResult:
    """Parse a model output and score it; broken calls give outcome "unparseable" (score 0)."""
    try:
        calls = parse_tool_calls(output)
    except UnparseableOutput as exc:
        return _fail(Outcome.UNPARSEABLE, str(exc))
    return score_calls(calls, expected, functions)


def score_example(output: str | list[Any] | dict[str, Any], example: BfclExample) -> RewardResult:
    """Score a model output on a BFCL example."""
    return score_output(output, example.expected, example.functions)


def _completion_payload(completion: Any) -> str | list[Any] | dict[str, Any]:
    """The part of a TRL completion to parse: a string, or the last message's tool calls or content."""
    if isinstance(completion, list) and completion and all(isinstance(m, dict) and "role" in m for m in completion):
        message = completion[-1]
        return message.get("tool_calls") or message.get("content") or ""
    return completion


def _oracle_parts(oracle: Any) -> tuple[tuple[ExpectedCall, ...], tuple[FunctionSpec, ...]]:
    if isinstance(oracle, BfclExample):
        return oracle.expected, oracle.functions
    if isinstance(oracle, str):
        oracle = json.loads(oracle)
    expected = parse_ground_truth(oracle.get("ground_truth") or [])
    return expected, tuple(parse_function_spec(f) for f in oracle.get("functions") or [])


def tool_reward(completions: list[Any], oracle: list[Any], **kwargs: Any) -> list[float]:
    """TRL GRPOTrainer reward function: one BFCL-style AST score (0.0 or 1.0) per completion.

    Pass it as `GRPOTrainer(reward_funcs=[tool_reward], ...)` with a dataset that has an `oracle`
    column; TRL calls it with `completions=` and each dataset column as a keyword (`prompts`,
    `completion_ids` and the others land in **kwargs and are ignored).
    - `completions`: strings (standard format) or message lists (conversational format; the last
      message's `tool_calls`, else its `content`, is scored).
    - `oracle`: per completion, a dict (or its JSON string) `{"ground_truth": [{func: {param:
      [accepted...]}}], "functions": [BFCL function specs]}`; an empty `ground_truth` means the right
      answer is no call. A `BfclExample` is accepted as well.
    Outputs that cannot be parsed score 0.0, including on no-call examples.
    """
    del kwargs
    scores = []
    for completion, item in zip(completions, oracle, strict=True):
        expected, functions = _oracle_parts(item)
        scores.append(score_output(_completion_payload(completion), expected, functions).score)
    return scores
