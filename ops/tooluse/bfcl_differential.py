"""Differential test of the reward against BFCL's checker: generated outputs, both scores, every disagreement named.

For each example, `perturbed_outputs` writes model outputs as text: the oracle call (first accepted
values) and every other accepted value, reorderings, wrong names, dropped/extra/mistyped parameters,
whitespace and case variants of strings, other formats and abstention phrasings. `compare` scores each
with the reference (BFCL's code), the BFCL-exact mode and the strict mode. A strict-mode disagreement is
attributed to the first `Deviation` whose removal makes it agree; one that no deviation explains, or
any BFCL-exact disagreement, is undocumented.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from ops.tooluse.bfcl import BfclExample, FunctionSpec
from ops.tooluse.reward import BFCL_EXACT, STRICT, Deviation, RewardMode, score_example
from ops.tooluse.trajectories import first_accepted_arguments

ABSTENTION_TEXTS: tuple[str, ...] = (
    "",
    "[]",
    "Sorry (I can't) do that.",
    "I'm sorry, but none of the available functions can help with that.",
    "I cannot help with that request (no suitable tool).",
    "Unfortunately the tools (weather, search) do not cover this question.",
    "None of the provided functions fits; please give me more details.",
)
WHITESPACE_VARIANTS: dict[str, Callable[[str], str]] = {
    "space": lambda s: f" {s} ",
    "tab": lambda s: s + "\t",
    "newline": lambda s: s + "\n",
    "nbsp": lambda s: s + "\u00a0",
    "upper": str.upper,
    "lower": str.lower,
}


@dataclass(frozen=True)
class Probe:
    """One generated model output for an example, with the perturbation that made it."""

    example: BfclExample
    kind: str
    text: str


@dataclass
class DifferentialReport:
    """Counts of the comparison: probes, and disagreements by mode, category, perturbation and reason."""

    probes: Counter[str] = field(default_factory=Counter)
    strict_by_deviation: Counter[str] = field(default_factory=Counter)
    strict_by_category: Counter[str] = field(default_factory=Counter)
    strict_by_kind: Counter[str] = field(default_factory=Counter)
    undocumented: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Number of probes compared."""
        return sum(self.probes.values())


def _render_py(calls: Sequence[tuple[str, dict[str, Any]]]) -> str:
    return "[" + ", ".join(f"{n}({', '.join(f'{k}={v!r}' for k, v in a.items())})" for n, a in calls) + "]"


def _java_scalar(value: Any, kind: str | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind == "long" and isinstance(value, int):
        return f"{value}L"
    if kind == "float" and isinstance(value, int | float):
        return f"{value}f"
    if isinstance(value, str):
        return json.dumps(value)
    return str(value)


def _java_value(value: Any, schema: dict[str, Any]) -> str:
    kind, item = schema["type"], (schema.get("items") or {}).get("type")
    if kind == "Array" and isinstance(value, list):
        return f"new {item or 'Object'}[]{{{', '.join(_java_scalar(v, item) for v in value)}}}"
    if kind == "ArrayList" and isinstance(value, list):
        return f"new ArrayList<>(Arrays.asList({', '.join(_java_scalar(v, item) for v in value)}))"
    if kind == "HashMap" and isinstance(value, dict):
        puts = " ".join(f"put({json.dumps(str(k))}, {_java_scalar(v, None)});" for k, v in value.items())
        return f"new HashMap<String, String>() {{{{ {puts} }}}}"
    return _java_scalar(value, kind)


def _js_value(value: Any, schema: dict[str, Any] | None = None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_js_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_js_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value) if isinstance(value, str) else str(value)


_ANY: dict[str, Any] = {"type": "any"}


def render(example: BfclExample, calls: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """Calls as text in the example's language (BFCL's prompting format)."""
    if example.language == "python":
        return _render_py(calls)
    specs = {f.name: f for f in example.functions}
    parts = []
    for name, args in calls:
        props = specs[name].properties if name in specs else {}
        value = _java_value if example.language == "java" else _js_value
        rendered = [f"{k}={value(v, props.get(k, _ANY))}" for k, v in args.items()]
        parts.append(f"{name}({', '.join(rendered)})")
    return "[" + ", ".join(parts) + "]"


def _oracle(example: BfclExample) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, first_accepted_arguments(e, example.spec(e.name))) for e in example.expected]


def _mistyped(value: Any) -> list[Any]:
    if isinstance(value, bool):
        return [int(value), str(value).lower()]
    if isinstance(value, int):
        return [float(value), str(value), value == 1]
    if isinstance(value, float):
        return [int(value), str(value)] if value == int(value) else [str(value)]
    if isinstance(value, str):
        return [123, [value]]
    if isinstance(value, list):
        return [tuple(value), [float(v) if type(v) is int else v for v in value]]
    return ["x"]


def _call_variants(example: BfclExample, calls: list[tuple[str, dict[str, Any]]], k: int) -> Iterator[tuple[str, Any]]:
    name, args = calls[k]
    spec: FunctionSpec | None = example.spec(example.expected[k].name)

    def replaced(new_name: str, new_args: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        return [*calls[:k], (new_name, new_args), *calls[k + 1 :]]

    yield "wrong_name", replaced(name + "_v2", args)
    if "." in name:
        yield "dotted_alias", replaced(name.replace(".", "_"), args)
    yield "extra_param", replaced(name, {**args, "zz_extra": 1})
    yield "kwarg_order", replaced(name, dict(reversed(list(args.items()))))
    for param in args:
        yield "drop_param", replaced(name, {p: v for p, v in args.items() if p != param})
    for param, accepted in example.expected[k].accepted.items():
        if param not in args and spec is not None and param in spec.properties:
            first = next((a for a in accepted if a != ""), None)
            if first is not None:
                yield "optional_given", replaced(name, {**args, param: first})
        for other in accepted[1:]:
            if other != "":
                yield "other_accepted", replaced(name, {**args, param: other})
    for param, value in args.items():
        for wrong in _mistyped(value):
            yield "mistyped", replaced(name, {**args, param: wrong})
        if isinstance(value, str):
            for variant, change in WHITESPACE_VARIANTS.items():
                yield f"string_{variant}", replaced(name, {**args, param: change(value)})
        if isinstance(value, list) and any(type(v) is float and v == int(v) for v in value):
            ints = [int(v) if type(v) is float and v == int(v) else v for v in value]
            yield "int_in_float_list", replaced(name, {**args, param: ints})
        if isinstance(value, dict) and any(type(v) is bool for v in value.values()):
            numbers = {key: int(v) if type(v) is bool else v for key, v in value.items()}
            yield "bool_as_int_in_dict", replaced(name, {**args, param: numbers})


def perturbed_outputs(example: BfclExample) -> Iterator[Probe]:
    """Every generated output for `example` (see the module docstring)."""
    if example.expects_no_call:
        for text in ABSTENTION_TEXTS:
            yield Probe(example, "abstention", text)
        fn = example.functions[0].name
        yield Probe(example, "call_on_irrelevance", f"[{fn}()]")
        yield Probe(example, "broken_call", f'[{fn}(x="')
        yield Probe(example, "json_call", json.dumps([{"name": fn, "arguments": {}}]))
        return
    calls = _oracle(example)
    yield Probe(example, "oracle", render(example, calls))
    yield Probe(example, "oracle_fenced", f"```\n{render(example, calls)}\n```")
    yield Probe(example, "oracle_json", json.dumps([{"name": n, "arguments": a} for n, a in calls]))
    yield Probe(example, "oracle_no_brackets", render(example, calls)[1:-1])
    for text in ABSTENTION_TEXTS[:3]:
        yield Probe(example, "abstention", text)
    yield Probe(example, "broken_call", render(example, calls)[:-3])
    if len(calls) > 1:
        yield Probe(example, "call_order", render(example, calls[::-1]))
        yield Probe(example, "one_call_short", render(example, calls[:-1]))
    yield Probe(example, "duplicate_call", render(example, [*calls, calls[0]]))
    for k in range(len(calls)):
        for kind, variant in _call_variants(example, calls, k):
            yield Probe(example, kind, render(example, variant))


def attribute(probe: Probe, reference: float, mode: RewardMode = STRICT) -> str | None:
    """The deviation (or pair of deviations) that explains a strict-mode disagreement (None when none does)."""
    present = [d for d in Deviation if mode.has(d)]
    for deviation in present:
        if score_example(probe.text, probe.example, mode.without(deviation)).score == reference:
            return deviation.value
    for first, second in combinations(present, 2):
        if score_example(probe.text, probe.example, mode.without(first).without(second)).score == reference:
            return f"{first.value}+{second.value}"
    return None


def compare(probes: Sequence[Probe], reference_score: Callable[[str, BfclExample], float]) -> DifferentialReport:
    """Score every probe with the reference and both modes; count and attribute disagreements."""
    report = DifferentialReport()
    for probe in probes:
        report.probes[probe.kind] += 1
        reference = reference_score(probe.text, probe.example)
        where = f"{probe.example.id} {probe.kind} {probe.text[:120]!r}: reference {reference}"
        exact = score_example(probe.text, probe.example, BFCL_EXACT).score
        if exact != reference:
            report.undocumented.append(f"bfcl mode {exact}, {where}")
        strict = score_example(probe.text, probe.example, STRICT).score
        if strict == reference:
            continue
        reason = attribute(probe, reference)
        if reason is None:
            report.undocumented.append(f"strict mode {strict}, {where}")
            continue
        report.strict_by_deviation[reason] += 1
        report.strict_by_category[probe.example.category] += 1
        report.strict_by_kind[probe.kind] += 1
    return report
