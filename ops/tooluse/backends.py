"""Deterministic simulated executors for tools, typed by their (canonical, BFCL-form) schemas.

Written for this project (BFCL's own executable backends are not used or copied). A call is checked
against its spec and either fails with a typed error or returns a plausible, deterministic output:

Checks, in this order (the first failure is reported):
1. `UnknownTool`: no spec has that name;
2. `MissingArgument`: a required parameter is absent (or None);
3. `UnexpectedArgument`: a parameter outside the schema's properties;
4. `TypeMismatch`: the value's type is not the schema's (details carry `expected` and `actual`).
   BFCL semantics: a tuple is a list, an int is a float, a bool is never an int or a float, "any"
   accepts everything; array items and the declared keys of nested dicts are checked recursively
   (extra keys inside a nested dict are allowed: BFCL's dict parameters are loosely specified); None
   for an optional parameter counts as omitted;
5. `InvalidEnumValue`: a value (or an array item) outside the schema's `enum`.

Outputs are a pure function of (tool name, canonical JSON of the arguments, the spec): every number or
choice is drawn from the sha256 of the first two. The output's shape is picked from keywords in the
tool name (split on `_`, `.`, `-` and camelCase), falling back to its description:
- weather words (weather, forecast, temperature...) -> `{"location", "temperature_c", "conditions",
  "humidity_pct"}`;
- math words (calculate, area, sum, factorial...) -> `{"result": number}`, computed when the formula is
  recognisable (`_FORMULAS`: sums, products, means, factorial, gcd/lcm, hypot, powers, square roots,
  triangle/circle/rectangle areas) and otherwise a seeded number;
- the first action verb or lookup verb in the name decides between the two: action verbs (book,
  create, send...) -> `{"status", "confirmation_id", "details"}`; lookup verbs (search, find, get...)
  -> `{"results": [records]}` with 1-3 seeded records echoing the string arguments;
- anything else -> `{"result": "<name> completed", "value": seeded number}`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ops.common.text import sha256_hex
from ops.tooluse.bfcl import FunctionSpec
from ops.tooluse.specs import canonical_json, canonical_spec


class ToolErrorType(StrEnum):
    """Typed errors of a simulated tool call (a str, so `output.error_type == "TypeMismatch"` works)."""

    UNKNOWN_TOOL = "UnknownTool"
    MISSING_ARGUMENT = "MissingArgument"
    UNEXPECTED_ARGUMENT = "UnexpectedArgument"
    TYPE_MISMATCH = "TypeMismatch"
    INVALID_ENUM_VALUE = "InvalidEnumValue"


@dataclass(frozen=True)
class ToolOutput:
    """Result of one simulated call. On error, `output` is what the agent would see:
    `{"error": error_type, "message": message, **details}`; `details` names the parameter and, for a
    type mismatch, the `expected` and `actual` types."""

    ok: bool
    output: Any
    error_type: str | None = None
    message: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


_WEATHER_WORDS = frozenset({"weather", "forecast", "temperature", "climate", "humidity", "rainfall", "wind"})
_MATH_WORDS = frozenset(
    {
        "math",
        "calculate",
        "calc",
        "compute",
        "area",
        "sum",
        "total",
        "average",
        "mean",
        "multiply",
        "product",
        "factorial",
        "gcd",
        "lcm",
        "hypot",
        "power",
        "pow",
        "sqrt",
        "volume",
        "perimeter",
        "circumference",
        "distance",
        "probability",
        "derivative",
        "integral",
        "integrate",
        "solve",
        "interest",
        "equation",
        "roots",
        "percentage",
        "ratio",
    }
)
_ACTION_WORDS = frozenset(
    {
        "book",
        "create",
        "send",
        "reserve",
        "order",
        "schedule",
        "buy",
        "purchase",
        "register",
        "post",
        "delete",
        "remove",
        "cancel",
        "update",
        "set",
        "add",
        "submit",
        "place",
        "transfer",
        "pay",
        "sell",
        "play",
        "record",
        "invite",
        "upload",
    }
)
_LOOKUP_WORDS = frozenset(
    {
        "search",
        "find",
        "get",
        "list",
        "lookup",
        "retrieve",
        "fetch",
        "query",
        "locate",
        "check",
        "recommend",
        "show",
        "filter",
        "identify",
        "view",
        "read",
    }
)
_CONDITIONS = ("sunny", "partly cloudy", "cloudy", "light rain", "rain", "thunderstorms", "snow", "fog", "windy")
_LOCATION_KEYS = ("location", "city", "place", "region", "area", "destination")
_TYPE_NAMES: dict[type, str] = {bool: "boolean", int: "integer", float: "float", str: "string", dict: "dict"}
_MAX_RESULT = 1e15


def _tokens(text: str) -> list[str]:
    """Lower-case words of an identifier or sentence (splits `_`, `.`, `-`, spaces and camelCase)."""
    return re.findall(r"[a-z]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower())


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "array"
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _type_ok(value: Any, schema_type: str) -> bool:
    if schema_type == "any":
        return True
    if schema_type in ("array", "tuple"):
        return isinstance(value, list | tuple)
    if schema_type == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if schema_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return _type_name(value) == schema_type


def _check_value(value: Any, schema: dict[str, Any], path: str) -> ToolOutput | None:
    """Typed error for one value against its schema node (recursing into items and nested keys), or None."""
    schema_type = schema.get("type", "any")
    if not _type_ok(value, schema_type):
        return _error(
            ToolErrorType.TYPE_MISMATCH,
            f"{path}: expected {schema_type}, got {_type_name(value)}",
            parameter=path,
            expected=schema_type,
            actual=_type_name(value),
        )
    enum = schema.get("enum")
    if enum is not None and not isinstance(value, list | tuple | dict) and value not in enum:
        return _error(
            ToolErrorType.INVALID_ENUM_VALUE, f"{path}: {value!r} is not one of {enum}", parameter=path, allowed=enum
        )
    if isinstance(value, list | tuple):
        items = schema.get("items")
        for i, item in enumerate(value):
            item_schema = (items[i] if i < len(items) else {}) if isinstance(items, list) else items
            failure = _check_value(item, item_schema, f"{path}[{i}]") if item_schema else None
            if failure:
                return failure
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for key, item in value.items():
            failure = _check_value(item, properties[key], f"{path}.{key}") if key in properties else None
            if failure:
                return failure
    return None


def _error(kind: ToolErrorType, message: str, **details: Any) -> ToolOutput:
    return ToolOutput(
        ok=False,
        output={"error": kind.value, "message": message, **details},
        error_type=kind.value,
        message=message,
        details=details,
    )


def check_arguments(spec: dict[str, Any], arguments: Any) -> ToolOutput | None:
    """The first typed error of `arguments` against a canonical spec, or None when the call is valid."""
    if not isinstance(arguments, dict):
        return _error(
            ToolErrorType.TYPE_MISMATCH,
            f"arguments must be an object, got {_type_name(arguments)}",
            parameter="",
            expected="dict",
            actual=_type_name(arguments),
        )
    parameters = spec.get("parameters") or {}
    properties = parameters.get("properties") or {}
    for name in parameters.get("required") or []:
        if arguments.get(name) is None:
            return _error(ToolErrorType.MISSING_ARGUMENT, f"missing required argument {name!r}", parameter=name)
    for name in arguments:
        if name not in properties:
            return _error(
                ToolErrorType.UNEXPECTED_ARGUMENT,
                f"unexpected argument {name!r}; accepted: {sorted(properties)}",
                parameter=name,
            )
    for name, value in arguments.items():
        failure = _check_value(value, properties[name], name) if value is not None else None
        if failure:
            return failure
    return None


class _Draws:
    """Deterministic pseudo-random draws from a seed string (sha256 of seed and a counter)."""

    def __init__(self, seed: str) -> None:
        self.seed = seed
        self.count = 0

    def unit(self) -> float:
        self.count += 1
        return int(sha256_hex(f"{self.seed}:{self.count}")[:13], 16) / 16**13

    def between(self, low: float, high: float, digits: int = 2) -> float:
        return round(low + (high - low) * self.unit(), digits)

    def integer(self, low: int, high: int) -> int:
        return low + int(self.unit() * (high - low + 1))

    def choice(self, options: tuple[str, ...]) -> str:
        return options[int(self.unit() * len(options))]


def _numbers(arguments: dict[str, Any]) -> list[float]:
    """Numeric argument values in parameter order, lists flattened (booleans excluded)."""
    out: list[float] = []
    for value in arguments.values():
        values = value if isinstance(value, list | tuple) else [value]
        out.extend(v for v in values if isinstance(v, int | float) and not isinstance(v, bool))
    return out


def _arg(arguments: dict[str, Any], *names: str) -> float | None:
    value = next((arguments[n] for n in names if n in arguments), None)
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _area(words: set[str], arguments: dict[str, Any]) -> float | None:
    if "triangle" in words:
        base, height = _arg(arguments, "base"), _arg(arguments, "height")
        return 0.5 * base * height if base is not None and height is not None else None
    if "circle" in words and (r := _arg(arguments, "radius", "r")) is not None:
        return math.pi * r * r
    if "rectangle" in words and (w := _arg(arguments, "width")) is not None:
        length = _arg(arguments, "length", "height")
        return w * length if length is not None else None
    return None


def _ints(numbers: list[float]) -> list[int] | None:
    return [int(n) for n in numbers] if numbers and all(float(n).is_integer() for n in numbers) else None


def _factorial(numbers: list[float]) -> float | None:
    ints = _ints(numbers[:1])
    return math.factorial(ints[0]) if ints and 0 <= ints[0] <= 20 else None


def _power(numbers: list[float]) -> float | None:
    if len(numbers) < 2 or abs(numbers[1]) > 64:
        return None
    try:
        return float(numbers[0]) ** numbers[1]
    except (OverflowError, ZeroDivisionError):
        return None


# Recognisable formulas: (name word, computation over the numeric arguments). First match wins.
_FORMULAS: tuple[tuple[str, Callable[[list[float]], float | None]], ...] = (
    ("factorial", _factorial),
    ("gcd", lambda n: math.gcd(*ints) if (ints := _ints(n)) and len(ints) >= 2 else None),
    ("lcm", lambda n: math.lcm(*ints) if (ints := _ints(n)) and len(ints) >= 2 else None),
    ("hypot", lambda n: math.hypot(*n) if n else None),
    ("sqrt", lambda n: math.sqrt(n[0]) if n and n[0] >= 0 else None),
    ("power", _power),
    ("pow", _power),
    ("sum", lambda n: sum(n) if n else None),
    ("add", lambda n: sum(n) if len(n) >= 2 else None),
    ("total", lambda n: sum(n) if n else None),
    ("multiply", lambda n: math.prod(n) if len(n) >= 2 else None),
    ("product", lambda n: math.prod(n) if len(n) >= 2 else None),
    ("average", lambda n: sum(n) / len(n) if n else None),
    ("mean", lambda n: sum(n) / len(n) if n else None),
)


def _math_output(words: list[str], arguments: dict[str, Any], draws: _Draws) -> dict[str, Any]:
    numbers = _numbers(arguments)
    result = _area(set(words), arguments) if "area" in words else None
    for word, formula in _FORMULAS:
        if result is None and word in words:
            result = formula(numbers)
    if result is None or not math.isfinite(result) or abs(result) > _MAX_RESULT:
        return {"result": draws.between(0, 1000), "computed": False}
    return {"result": round(result, 6) if isinstance(result, float) else result, "computed": True}


def _weather_output(arguments: dict[str, Any], draws: _Draws) -> dict[str, Any]:
    location = next((arguments[k] for k in _LOCATION_KEYS if isinstance(arguments.get(k), str)), "unspecified")
    return {
        "location": location,
        "temperature_c": draws.between(-10, 38, 1),
        "conditions": draws.choice(_CONDITIONS),
        "humidity_pct": draws.integer(15, 95),
    }


def _lookup_output(name: str, words: list[str], arguments: dict[str, Any], draws: _Draws) -> dict[str, Any]:
    subject = next((w for w in reversed(words) if w not in _LOOKUP_WORDS and len(w) > 2), "item")
    matched = {k: v for k, v in sorted(arguments.items()) if isinstance(v, str)}
    records = [
        {
            "id": f"{subject[:3]}-{sha256_hex(f'{draws.seed}:record:{i}')[:6]}",
            "title": f"{subject.capitalize()} result {i + 1}",
            "relevance": draws.between(0.5, 1.0),
            "matched": matched,
        }
        for i in range(draws.integer(1, 3))
    ]
    return {"source": name, "results": records}


def _action_output(verb: str, arguments: dict[str, Any], draws: _Draws) -> dict[str, Any]:
    status = "cancelled" if verb in ("cancel", "delete", "remove") else "confirmed"
    return {
        "status": status,
        "confirmation_id": f"{verb[:3].upper()}-{draws.seed[:8].upper()}",
        "details": arguments,
    }


def _arguments_key(arguments: dict[str, Any]) -> str:
    """Canonical JSON of the arguments; repr for values JSON cannot hold (possible under type "any")."""
    try:
        return canonical_json(arguments)
    except (TypeError, ValueError):
        return repr(sorted(arguments.items(), key=lambda item: str(item[0])))


def plausible_output(spec: dict[str, Any], arguments: dict[str, Any]) -> Any:
    """Deterministic output of a valid call (see the module docstring for the shapes)."""
    name = str(spec["name"])
    draws = _Draws(sha256_hex(f"{name}\x00{_arguments_key(arguments)}"))
    for words in (_tokens(name), _tokens(str(spec.get("description", "")))[:16]):
        if _WEATHER_WORDS.intersection(words):
            return _weather_output(arguments, draws)
        if _MATH_WORDS.intersection(words):
            return _math_output(words, arguments, draws)
        verb = next((w for w in words if w in _ACTION_WORDS or w in _LOOKUP_WORDS), None)
        if verb in _ACTION_WORDS:
            return _action_output(verb, arguments, draws)
        if verb in _LOOKUP_WORDS:
            return _lookup_output(name, words, arguments, draws)
    return {"result": f"{name} completed", "value": draws.between(0, 100)}


def _as_spec(raw: dict[str, Any] | FunctionSpec) -> dict[str, Any]:
    if isinstance(raw, FunctionSpec):
        raw = {"name": raw.name, "description": raw.description, "parameters": raw.parameters}
    return canonical_spec(raw)


class SimulatedBackend:
    """Executes calls to the given tools on simulated, schema-typed executors; same input, same output.

    Specs may be BFCL/JSON-schema dicts or `FunctionSpec`s; they are canonicalized. When several
    distinct specs share a name (BFCL reuses names), a call succeeds if it is valid for any of them
    (the first valid one, in the order given, produces the output); otherwise the first spec's error
    is returned.
    """

    def __init__(self, specs: Iterable[dict[str, Any] | FunctionSpec]) -> None:
        self._specs: dict[str, list[dict[str, Any]]] = {}
        for raw in specs:
            spec = _as_spec(raw)
            variants = self._specs.setdefault(str(spec.get("name")), [])
            if spec not in variants:
                variants.append(spec)

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools this backend can execute, sorted."""
        return sorted(self._specs)

    def execute(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        """Run one call: a typed error for an invalid call, else a deterministic plausible output."""
        variants = self._specs.get(name)
        if not variants:
            return _error(ToolErrorType.UNKNOWN_TOOL, f"unknown tool {name!r}", tool=name)
        failures = []
        for spec in variants:
            failure = check_arguments(spec, arguments)
            if failure is None:
                return ToolOutput(ok=True, output=plausible_output(spec, arguments))
            failures.append(failure)
        return failures[0]

    def execute_spec(self, spec: dict[str, Any] | FunctionSpec, arguments: dict[str, Any]) -> ToolOutput:
        """Run a call against one exact spec variant (e.g. the one an example offers), not any same-named
        one; a spec this backend does not hold gives `UnknownTool`."""
        spec = _as_spec(spec)
        if spec not in self._specs.get(str(spec.get("name")), []):
            return _error(ToolErrorType.UNKNOWN_TOOL, f"unknown tool spec {spec.get('name')!r}", tool=spec.get("name"))
        failure = check_arguments(spec, arguments)
        return failure or ToolOutput(ok=True, output=plausible_output(spec, arguments))
