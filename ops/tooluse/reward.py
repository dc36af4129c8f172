"""BFCL-style AST reward for tool calls: parse a model output, match it against oracle calls, score 0/1.

Two named modes (`RewardMode`):
- `BFCL_EXACT` follows BFCL's own AST checker (PyPI `bfcl-eval`, `ast_checker.py`, prompting models) and
  its decoder, so numbers are comparable with the leaderboard; the differential test runs both side by
  side over every bundled single-turn category and generated perturbations.
- `STRICT` (the default, the RL reward) is BFCL plus the named `Deviation`s in `DEVIATION_REASONS`, each a
  deliberate, documented difference (the differential test attributes every disagreement to one).
Semantics re-implemented here, not copied: name; required parameters; no parameter outside the schema or
the oracle; the schema type (Java/JavaScript values are source text converted per schema type, see
`ops.tooluse.bfcl_languages`); accepted values after BFCL's `standardize_string` (spaces and ,./-_*^
removed, lower-cased; one level deep in lists and dicts); "" in the accepted list lets a parameter be
omitted. Outputs are parsed with `ast` and `json`, never `eval`. Text that does not attempt a call
("Sorry (I can't) do that.") is "no call"; only an attempted call that does not parse is "unparseable".
"""

from __future__ import annotations

import ast
import json
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache
from typing import Any, NamedTuple

from ops.tooluse.bfcl import BfclExample, ExpectedCall, FunctionSpec, parse_function_spec, parse_ground_truth
from ops.tooluse.bfcl_languages import LanguageCallError, convert_language_value, parse_language_calls


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


class Deviation(StrEnum):
    """A deliberate difference from BFCL's checker; the strict mode (for RL) turns all of them on."""

    EXTRA_FORMATS = "extra_formats"
    SAFE_LITERALS = "safe_literals"
    UNPARSEABLE_NOT_ABSTENTION = "unparseable_not_abstention"
    DOTTED_ALIAS = "dotted_alias"
    BIPARTITE_PARALLEL = "bipartite_parallel"
    ANY_TYPE = "any_type"
    INT_IN_FLOAT_LIST = "int_in_float_list"
    EXACT_BOOL = "exact_bool"


# Why each deviation exists (docs/tooluse-bfcl.md tabulates them with their measured counts).
DEVIATION_REASONS: dict[Deviation, str] = {
    Deviation.EXTRA_FORMATS: "JSON tool calls, <tool_call> blocks, code fences and one call per line are read "
    "(BFCL's prompting decoder reads only a Python list of calls); prose is 'no call', not a parse failure.",
    Deviation.SAFE_LITERALS: "argument values must be literals: BFCL evaluates arithmetic, ignores positional "
    "arguments, turns +x into -x and nested calls into strings; here those are unparseable.",
    Deviation.UNPARSEABLE_NOT_ABSTENTION: "on irrelevance, a broken call scores 0 (BFCL credits any decode "
    "failure as an abstention, which would reward garbage in RL).",
    Deviation.DOTTED_ALIAS: "`a_b` is accepted for an oracle `a.b` (BFCL does this only for models whose API "
    "forbids dots; the exact mode follows BFCL's prompting models).",
    Deviation.BIPARTITE_PARALLEL: "parallel calls are matched by maximum bipartite matching; BFCL matches "
    "greedily and can fail a correct set when an earlier oracle call takes an output a later one needed.",
    Deviation.ANY_TYPE: "schema type 'any' accepts every type (BFCL maps it to str).",
    Deviation.INT_IN_FLOAT_LIST: "integers inside a float array are accepted (BFCL accepts an int for a float "
    "only at the top level).",
    Deviation.EXACT_BOOL: "inside dicts and lists a boolean matches only a boolean (BFCL compares with ==, so "
    "1 matches True and 0 matches False).",
}


@dataclass(frozen=True)
class RewardMode:
    """A named set of deviations from BFCL's checker: `BFCL_EXACT` (none) or `STRICT` (all)."""

    name: str
    deviations: frozenset[Deviation]
    # One flag per deviation, resolved once: the reward runs per completion in RL.
    extra_formats: bool = field(init=False, repr=False, compare=False)
    safe_literals: bool = field(init=False, repr=False, compare=False)
    unparseable_not_abstention: bool = field(init=False, repr=False, compare=False)
    dotted_alias: bool = field(init=False, repr=False, compare=False)
    bipartite_parallel: bool = field(init=False, repr=False, compare=False)
    any_type: bool = field(init=False, repr=False, compare=False)
    int_in_float_list: bool = field(init=False, repr=False, compare=False)
    exact_bool: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for deviation in Deviation:
            object.__setattr__(self, deviation.value, deviation in self.deviations)

    def has(self, deviation: Deviation) -> bool:
        """True when this mode applies `deviation`."""
        return deviation in self.deviations

    def without(self, deviation: Deviation) -> RewardMode:
        """The same mode less one deviation (used to attribute a disagreement to its deviation)."""
        return RewardMode(f"{self.name}-{deviation.value}", self.deviations - {deviation})


STRICT = RewardMode("strict", frozenset(Deviation))
BFCL_EXACT = RewardMode("bfcl", frozenset())


_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?\s*```$", re.S)
_TOOL_CALL_TAG = re.compile(r"<tool_call>(.*?)(?:</tool_call>|$)", re.S)
# An attempted call starts with "[", "{" or a dotted name directly followed by "(" ("Sorry (I can't)" is prose).
_CALL_START = re.compile(r"^\[?\s*[A-Za-z_][\w.]*\(")


class RewardResult(NamedTuple):
    """A score in [0, 1], the outcome (an `Outcome` value) and a human-readable detail.

    Named tuples rather than frozen dataclasses: the reward runs once per completion in RL and per probe
    in the differential test, and a frozen dataclass costs several times more to build."""

    score: float
    outcome: str
    detail: str


class ToolCall(NamedTuple):
    """A call parsed from model output: function name and keyword arguments."""

    name: str
    arguments: dict[str, Any]


class UnparseableOutput(ValueError):
    """Raised when an output looks like a tool call but cannot be parsed into calls."""


def parse_tool_calls(
    output: str | list[Any] | dict[str, Any], mode: RewardMode | None = None, language: str = "python"
) -> list[ToolCall]:
    """Parse a model output into calls; [] means "no call"; raises UnparseableOutput for broken calls.

    Strict forms (`Deviation.EXTRA_FORMATS`): Python call syntax (`f(a=1)`, `[f(a=1), g.h(b="x")]`, one
    call per line), JSON tool calls (`{"name", "arguments"}` with arguments as object or JSON string,
    OpenAI `{"function": ...}`, BFCL `{func: {args}}`, or a list of these), `<tool_call>...</tool_call>`
    blocks, optionally inside a Markdown code fence; or already-decoded lists/dicts of the JSON forms.
    Without it, BFCL's prompting decoder: a Python list of calls, backticks and newlines stripped.
    Java and JavaScript outputs are read by `ops.tooluse.bfcl_languages` (values stay source text).
    """
    mode = mode or STRICT
    if not isinstance(output, str):
        return _calls_from_data(output)
    if language != "python":
        try:
            return [ToolCall(name, args) for name, args in parse_language_calls(output, language)]
        except LanguageCallError as exc:
            raise UnparseableOutput(str(exc)) from exc
    safe = mode.safe_literals
    if not mode.extra_formats:
        return _bfcl_decode(output, safe)
    text = output.strip()
    fenced = _FENCE.match(text) if text.startswith("```") else None
    if fenced:
        text = fenced.group(1).strip()
    if "<tool_call>" in text:
        return [call for block in _TOOL_CALL_TAG.findall(text) for call in _calls_from_json_text(block)]
    if not text or text == "[]":
        return []
    if _CALL_START.match(text):
        return _calls_from_python(text, safe)
    if text[0] in "[{":
        try:
            return _calls_from_data(json.loads(text))
        except json.JSONDecodeError:
            return _calls_from_python(text, safe)
    return []


def _bfcl_decode(output: str, safe: bool) -> list[ToolCall]:
    """BFCL's `default_decode_ast_prompting`: strip backticks/newlines/spaces, wrap in [...], parse calls."""
    text = output.strip("`\n ")
    text = text if text.startswith("[") else "[" + text
    text = text if text.endswith("]") else text + "]"
    try:
        body = ast.parse(text.strip("[]'"), mode="eval").body
    except SyntaxError as exc:
        raise UnparseableOutput(f"not valid call syntax: {exc.msg}") from exc
    nodes = [body] if isinstance(body, ast.Call) else getattr(body, "elts", None)
    if nodes is None or not all(isinstance(node, ast.Call) for node in nodes):
        raise UnparseableOutput("not a list of calls")
    return [_call_from_node(node, safe) for node in nodes]


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


def _calls_from_python(text: str, safe: bool) -> list[ToolCall]:
    # The list's items as a bare tuple: CPython parses "f(), g()" faster than "[f(), g()]".
    source = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        body = ast.parse(source, mode="eval").body
        nodes = body.elts if isinstance(body, ast.Tuple) else [body]
    except SyntaxError as exc:
        if "\n" not in text and ";" not in text:  # not one call per line: the list form was the only reading
            raise UnparseableOutput(f"not valid call syntax: {exc.msg}") from exc
        try:
            statements = ast.parse(text, mode="exec").body
        except SyntaxError as exc:
            raise UnparseableOutput(f"not valid call syntax: {exc.msg}") from exc
        if not all(isinstance(s, ast.Expr) for s in statements):
            raise UnparseableOutput("only call expressions are allowed") from None
        nodes = [s.value for s in statements]
    return [
        _call_from_node(node, safe) if isinstance(node, ast.Call) else _call_from_object(_literal(node, safe))
        for node in nodes
    ]


def _call_from_node(node: ast.Call, safe: bool) -> ToolCall:
    if safe and node.args:
        raise UnparseableOutput("positional arguments are not allowed; use keyword arguments")
    arguments = {}
    for kw in node.keywords:
        if safe and kw.arg is None:
            raise UnparseableOutput("**kwargs unpacking is not allowed")
        arguments[kw.arg] = _literal(kw.value, safe)
    return ToolCall(name=_dotted_name(node.func), arguments=arguments)  # type: ignore[arg-type]


def _dotted_name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted_name(node.value)}.{node.attr}"
    raise UnparseableOutput("function name must be a dotted identifier")


_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _literal(node: ast.expr, safe: bool = True) -> Any:
    """Resolve an argument node: literals and containers; a bare name is its own string, as in BFCL.

    With `safe` off, BFCL's decoder quirks are reproduced without `eval`: +x and -x both negate, `a + b`
    style arithmetic on constants is computed, a nested call becomes its source text (or a {name: args}
    dict when it has keyword arguments), a subscript its source text, `...` the string "...".
    """
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis and not safe else node.value
    if isinstance(node, ast.UnaryOp):
        if safe and isinstance(node.op, ast.USub | ast.UAdd):
            operand = _literal(node.operand)
            if isinstance(operand, int | float) and not isinstance(operand, bool):
                return -operand if isinstance(node.op, ast.USub) else operand
        elif not safe and isinstance(node.operand, ast.Constant) and not isinstance(node.operand.value, str):
            return -node.operand.value
    elif isinstance(node, ast.List):
        return [_literal(e, safe) for e in node.elts]
    elif isinstance(node, ast.Tuple):
        return tuple(_literal(e, safe) for e in node.elts)
    elif isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
        return {_literal(k, safe): _literal(v, safe) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
    elif isinstance(node, ast.Name):
        return node.id
    elif not safe:
        return _bfcl_quirk_literal(node)
    raise UnparseableOutput(f"unsupported argument expression: {ast.unparse(node)[:60]}")


def _bfcl_quirk_literal(node: ast.expr) -> Any:
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _literal(node.left, False), _literal(node.right, False)
        if all(isinstance(v, int | float) for v in (left, right)) or all(isinstance(v, str) for v in (left, right)):
            try:
                return _ARITHMETIC[type(node.op)](left, right)
            except (TypeError, ZeroDivisionError) as exc:
                raise UnparseableOutput(f"arithmetic BFCL would fail on: {exc}") from exc
    elif isinstance(node, ast.Call):
        if not node.keywords:
            return ast.unparse(node)
        call = _call_from_node(node, False)
        return {call.name: call.arguments}
    elif isinstance(node, ast.Subscript):
        return f"{ast.unparse(node.value)}[{ast.unparse(node.slice)}]"
    raise UnparseableOutput(f"unsupported argument expression: {ast.unparse(node)[:60]}")


_PY_TYPES: dict[str, type] = {
    "string": str,
    "integer": int,
    "float": float,
    "boolean": bool,
    "array": list,
    "tuple": list,
    "dict": dict,
    "any": str,
}
_NESTED = ("array", "tuple")
_BFCL_STRIP = re.compile(r"[ ,./\-_*^]")


@lru_cache(maxsize=65536)
def normalize_string(text: str) -> str:
    """BFCL's `standardize_string`: drop spaces and ,./-_*^ (not tabs or newlines), lower-case, ' -> "."""
    return _BFCL_STRIP.sub("", text).lower().replace("'", '"')


def _same(a: Any, b: Any) -> bool:
    """Equality with booleans kept apart from numbers, at every depth of a list."""
    ta, tb = type(a), type(b)
    if ta is bool or tb is bool:
        return ta is tb and a == b
    if ta is list and tb is list:
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _contains(value: Any, accepted: Any, exact_bool: bool) -> bool:
    """`value in accepted` with Python's == (BFCL), or with booleans kept apart from numbers."""
    if value not in accepted:
        return False
    if not exact_bool or type(value) is str:
        return True
    if type(value) is int or type(value) is float:  # the common case
        return any(candidate == value and type(candidate) is not bool for candidate in accepted)
    return any(_same(value, candidate) for candidate in accepted)


def _answer_type(accepted: list[Any]) -> type | None:
    for a in accepted:
        if a != "":
            return type(a)
    return None


def _type_check(value: Any, accepted: list[Any], want: type, nested: type | None, int_float: bool) -> bool | None:
    """BFCL's type check: is_variable (the oracle holds another type, e.g. a variable name), None if wrong."""
    answer_type = _answer_type(accepted)
    is_variable = answer_type is not None and answer_type is not want
    if type(value) is want:
        if nested is None:
            return is_variable
        for candidate in accepted:
            if type(candidate) is not list or all(_item_ok(v, candidate, nested, int_float) for v in value):
                return is_variable
        return None
    if answer_type is not None and type(value) is answer_type:
        return True
    return None


def _item_ok(item: Any, accepted: list[Any], nested: type, int_float: bool) -> bool:
    if type(item) is nested or (int_float and nested is float and type(item) is int):
        return True
    answer_type = _answer_type(accepted)
    return answer_type is not None and type(item) is answer_type


def _standard(values: Any) -> list[Any]:
    return [normalize_string(v) if type(v) is str else v for v in values]


def _dict_ok(value: dict[str, Any], candidates: list[Any], exact_bool: bool) -> bool:
    for candidate in candidates:
        if candidate == "":
            continue
        keys_ok = all(
            key in candidate
            and _contains(normalize_string(v) if type(v) is str else v, _standard(candidate[key]), exact_bool)
            for key, v in value.items()
        )
        if keys_ok and all(key in value or "" in acc for key, acc in candidate.items()):
            return True
    return False


def _list_dict_ok(value: list[Any], candidates: list[Any], exact_bool: bool) -> bool:
    return any(
        len(value) == len(candidate)
        and all(_dict_ok(v, [c], exact_bool) for v, c in zip(value, candidate, strict=True))
        for candidate in candidates
    )


def _value_ok(value: Any, accepted: list[Any], want: type, nested: type | None, exact_bool: bool) -> bool:
    if want is dict:
        return _dict_ok(value, accepted, exact_bool)
    if want is list and nested is dict:
        return _list_dict_ok(value, accepted, exact_bool)
    if want is str:
        return normalize_string(value) in _standard(a for a in accepted if type(a) is str)
    if want is list:
        return _contains(_standard(value), [_standard(c) for c in accepted], exact_bool)
    return _contains(value, accepted, exact_bool)


def _types_for(schema: dict[str, Any], value: Any, language: str, mode: RewardMode) -> tuple[type, type | None, Any]:
    """Expected type, nested item type and the value as BFCL sees it (converted for Java/JavaScript)."""
    kind = schema["type"]
    if language != "python":
        return convert_language_value(value, schema, language)
    if kind == "any" and mode.any_type:
        return type(value), None, value
    want = _PY_TYPES[kind]
    nested = _PY_TYPES[schema["items"]["type"]] if kind in _NESTED else None
    if kind == "tuple" and type(value) is tuple:
        value = list(value)
    if kind == "float" and type(value) is int:
        value = float(value)
    return want, nested, value


def _check_call(
    call: ToolCall, expected: ExpectedCall, spec: FunctionSpec, mode: RewardMode, language: str
) -> tuple[Outcome, str] | None:
    """The first failed check as (outcome, detail), or None when the call matches."""
    args, oracle = call.arguments, expected.accepted
    if call.name != spec.name and not (mode.dotted_alias and call.name == spec.name.replace(".", "_")):
        return Outcome.WRONG_FUNCTION, f"called {call.name!r}, expected {spec.name!r}"
    properties = spec.parameters["properties"]
    for param in spec.parameters["required"]:
        if param not in args:
            return Outcome.MISSING_REQUIRED, f"required parameter {param!r} missing"
    for param in args:
        if param not in properties or param not in oracle:
            return Outcome.UNKNOWN_PARAMETER, f"unknown parameter {param!r}"
    typed = []
    for param, raw in args.items():  # every type before any value: a wrong type is the more telling outcome
        want, nested, value = _types_for(properties[param], raw, language, mode)
        is_variable = _type_check(value, oracle[param], want, nested, mode.int_in_float_list)
        if is_variable is None:
            return Outcome.WRONG_TYPE, f"{param}: {type(value).__name__} is not {want.__name__}"
        typed.append((param, value, want, nested, is_variable))
    for param, value, want, nested, is_variable in typed:
        accepted = oracle[param]
        if is_variable:
            ok = _contains(value, accepted, mode.exact_bool)
        else:
            ok = _value_ok(value, accepted, want, nested, mode.exact_bool)
        if not ok:
            return Outcome.VALUE_NOT_ACCEPTED, f"{param}: value not accepted"
    for param, accepted in oracle.items():
        if param not in args and "" not in accepted:
            return Outcome.MISSING_REQUIRED, f"{param!r} omitted but not optional"
    return None


def match_call(
    call: ToolCall,
    expected: ExpectedCall,
    spec: FunctionSpec | None,
    mode: RewardMode = STRICT,
    language: str = "python",
) -> RewardResult:
    """Match one parsed call against one oracle call and the offered function `spec`.

    BFCL's checks, run in stages over all arguments so the first failing stage names the outcome: name,
    required, unknown, type, value, omitted (the score is BFCL's, which checks parameter by parameter);
    an input BFCL's checker would crash on scores 0.
    """
    if spec is None:
        return _fail(Outcome.WRONG_FUNCTION, f"oracle function {expected.name!r} is not among the offered tools")
    try:
        failed = _check_call(call, expected, spec, mode, language)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:  # BFCL's checker raises on these inputs
        return _fail(Outcome.WRONG_TYPE, f"{expected.name}: input the checker cannot handle ({exc!r:.80})")
    if failed is not None:
        return _fail(failed[0], f"{expected.name}: {failed[1]}")
    return RewardResult(score=1.0, outcome=Outcome.MATCH._value_, detail=f"{expected.name} matched")


def _fail(outcome: Outcome, detail: str) -> RewardResult:
    return RewardResult(score=0.0, outcome=outcome._value_, detail=detail)


def _find_spec(functions: Sequence[FunctionSpec], name: str) -> FunctionSpec | None:
    """The offered function named `name`; with a single offered function, that one (BFCL's simple category)."""
    for function in functions:
        if function.name == name:
            return function
    return functions[0] if len(functions) == 1 else None


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


def _match_bipartite(results: Callable[[int, int], RewardResult], n: int) -> tuple[bool, list[int | None]]:
    """Maximum bipartite matching of n oracle calls to n outputs; returns (all matched, owner of each output)."""
    graph = [[j for j in range(n) if results(i, j).score == 1.0] for i in range(n)]
    owner: list[int | None] = [None] * n
    for i in range(n):
        _augment(i, graph, owner, set())
    return sum(o is not None for o in owner) == n, owner


def _match_greedy(results: Callable[[int, int], RewardResult], n: int) -> tuple[RewardResult | None, int, set[int]]:
    """BFCL's parallel matching: each oracle call, in order, takes the first free output it matches.

    Returns the failing result (None on a full match), the index of the oracle call that found no output,
    and the outputs taken so far."""
    taken: set[int] = set()
    for i in range(n):
        result = None
        for j in range(n):
            if j not in taken:
                result = results(i, j)
                if result.score == 1.0:
                    taken.add(j)
                    break
        if result is None or result.score != 1.0:
            return result or _fail(Outcome.WRONG_CALL_COUNT, "no output left to match"), i, taken
    return None, n, taken


def _score_parallel(
    calls: Sequence[ToolCall],
    expected: Sequence[ExpectedCall],
    specs: list[FunctionSpec | None],
    mode: RewardMode,
    language: str,
) -> RewardResult:
    """Parallel calls: greedy as BFCL, or (strict) a maximum matching when greedy fails. A failure is reported
    for an unmatched oracle call against a free output: the one in its position, else one of the same name."""
    memo: dict[tuple[int, int], RewardResult] = {}

    def results(i: int, j: int) -> RewardResult:
        if (i, j) not in memo:
            memo[i, j] = match_call(calls[j], expected[i], specs[i], mode, language)
        return memo[i, j]

    n = len(expected)
    failure, failed, taken = _match_greedy(results, n)
    if failure is None:
        return RewardResult(score=1.0, outcome=Outcome.MATCH._value_, detail=f"{n} call(s) matched")
    if not mode.bipartite_parallel:
        return failure
    spec = specs[failed]
    names = {spec.name, spec.name.replace(".", "_")} if spec is not None else set()
    if any(calls[j].name in names and results(failed, j).score == 1.0 for j in taken):  # else no matching exists
        matched, owner = _match_bipartite(results, n)
        if matched:
            return RewardResult(score=1.0, outcome=Outcome.MATCH._value_, detail=f"{n} call(s) matched")
        failed = min(set(range(n)) - set(owner))  # type: ignore[arg-type]
        taken = {j for j, i in enumerate(owner) if i is not None}
    free = [j for j in range(n) if j not in taken]
    same_name = [j for j in free if calls[j].name == expected[failed].name]
    return results(failed, failed if failed in free else (same_name or free or [0])[0])


def score_calls(
    calls: Sequence[ToolCall],
    expected: Sequence[ExpectedCall],
    functions: Sequence[FunctionSpec],
    mode: RewardMode | None = None,
    language: str = "python",
) -> RewardResult:
    """Score parsed calls against the oracle calls (empty oracle = the right answer is no call)."""
    mode = mode or STRICT
    if not expected:
        if calls:
            return _fail(Outcome.UNEXPECTED_CALL, f"expected no call, got {len(calls)}")
        return RewardResult(score=1.0, outcome=Outcome.CORRECT_ABSTENTION._value_, detail="no call, as expected")
    if not calls:
        return _fail(Outcome.NO_CALL, f"expected {len(expected)} call(s), got none")
    if len(calls) != len(expected):
        return _fail(Outcome.WRONG_CALL_COUNT, f"expected {len(expected)} call(s), got {len(calls)}")
    specs = [_find_spec(functions, e.name) for e in expected]
    if len(expected) == 1:
        return match_call(calls[0], expected[0], specs[0], mode, language)
    return _score_parallel(calls, expected, specs, mode, language)


def score_output(
    output: str | list[Any] | dict[str, Any],
    expected: Sequence[ExpectedCall],
    functions: Sequence[FunctionSpec],
    mode: RewardMode | None = None,
    language: str = "python",
) -> RewardResult:
    """Parse a model output and score it; broken calls give outcome "unparseable" (score 0), except on a
    no-call example in a mode without `Deviation.UNPARSEABLE_NOT_ABSTENTION`, where BFCL counts them as abstaining."""
    mode = mode or STRICT
    try:
        calls = parse_tool_calls(output, mode, language)
    except UnparseableOutput as exc:
        if not expected and not mode.unparseable_not_abstention:
            return RewardResult(score=1.0, outcome=Outcome.CORRECT_ABSTENTION._value_, detail=f"no call decoded: {exc}")
        return _fail(Outcome.UNPARSEABLE, str(exc))
    return score_calls(calls, expected, functions, mode, language)


def score_example(
    output: str | list[Any] | dict[str, Any], example: BfclExample, mode: RewardMode | None = None
) -> RewardResult:
    """Score a model output on a BFCL example (in the example's language)."""
    return score_output(output, example.expected, example.functions, mode, example.language)


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
    Outputs that cannot be parsed score 0.0, including on no-call examples. This is the `STRICT` mode;
    BFCL-comparable scores come from `score_output(..., mode=BFCL_EXACT)`.
    """
    del kwargs
    scores = []
    for completion, item in zip(completions, oracle, strict=True):
        expected, functions = _oracle_parts(item)
        scores.append(score_output(_completion_payload(completion), expected, functions).score)
    return scores
