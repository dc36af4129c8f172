"""Load BFCL v3 single-turn questions, function specs and accepted answers into plain dataclasses.

BFCL files are JSON Lines despite their `.json` extension. A question carries the function specs the
model may call; its possible answer lists, per expected call, the accepted values of each parameter
(`""` among them means the parameter may be omitted). Irrelevance questions have no answer file: the
correct behaviour is to make no call, which `BfclExample.expects_no_call` records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SINGLE_TURN_CATEGORIES: tuple[str, ...] = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance")
# Categories whose calls are written in another language (values are source text; see bfcl_languages).
LANGUAGE_CATEGORIES: dict[str, str] = {"java": "java", "javascript": "javascript"}
NO_CALL_CATEGORIES: frozenset[str] = frozenset({"irrelevance"})
# Bundled examples whose oracle contradicts its own function spec, so that BFCL's checker (and ours)
# rejects the call built from the first accepted values. Keyed by example id, with the reason.
KNOWN_ORACLE_ISSUES: dict[str, str] = {
    "simple_363": "the oracle calls 'find_closest' but the only function offered is "
    "'restaurant_search.find_closest', so the oracle call names a function that does not exist.",
    "parallel_multiple_26": "bank.calculate_balance: the oracle lists a top-level 'type' (first accepted "
    "'credit') that the schema only has inside `transactions` items, so it is an unknown parameter.",
}


@dataclass(frozen=True)
class FunctionSpec:
    """One callable tool: its name, description and JSON-schema-like `parameters` (BFCL "dict" type)."""

    name: str
    description: str
    parameters: dict[str, Any]

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        """Per-parameter schemas (type, description, items...)."""
        return dict(self.parameters.get("properties") or {})

    @property
    def required(self) -> tuple[str, ...]:
        """Names of the parameters the schema marks as required."""
        return tuple(self.parameters.get("required") or ())


@dataclass(frozen=True)
class ExpectedCall:
    """One oracle call: the function name and, per parameter, the list of accepted values."""

    name: str
    accepted: dict[str, list[Any]]


@dataclass(frozen=True)
class BfclExample:
    """A single-turn BFCL example: the conversation, the tools offered and the oracle calls."""

    id: str
    category: str
    messages: list[dict[str, str]]
    functions: tuple[FunctionSpec, ...]
    expected: tuple[ExpectedCall, ...]
    language: str = "python"

    @property
    def expects_no_call(self) -> bool:
        """True when the right answer is to call nothing (irrelevance), i.e. there is no oracle call."""
        return not self.expected

    def spec(self, name: str) -> FunctionSpec | None:
        """The offered function spec called `name`, or None."""
        return next((f for f in self.functions if f.name == name), None)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read a JSON Lines file (BFCL's `.json` files), skipping blank lines."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def parse_function_spec(raw: dict[str, Any]) -> FunctionSpec:
    """Build a FunctionSpec from a BFCL function entry."""
    return FunctionSpec(
        name=str(raw["name"]),
        description=str(raw.get("description", "")),
        parameters=dict(raw.get("parameters") or {}),
    )


def parse_ground_truth(ground_truth: list[dict[str, dict[str, list[Any]]]]) -> tuple[ExpectedCall, ...]:
    """Turn BFCL `ground_truth` ([{func_name: {param: [accepted...]}}]) into ExpectedCall objects."""
    calls: list[ExpectedCall] = []
    for entry in ground_truth:
        for name, params in entry.items():
            calls.append(ExpectedCall(name=name, accepted={k: list(v) for k, v in params.items()}))
    return tuple(calls)


def load_category(root: Path, category: str, per_category: int = 0) -> list[BfclExample]:
    """Load one single-turn category from a BFCL folder (questions + `possible_answer/`): its first
    `per_category` questions in file order (0: all)."""
    questions = read_jsonl(root / f"BFCL_v3_{category}.json")
    questions = questions[:per_category] if per_category > 0 else questions
    answers: dict[str, tuple[ExpectedCall, ...]] = {}
    if category not in NO_CALL_CATEGORIES:
        for row in read_jsonl(root / "possible_answer" / f"BFCL_v3_{category}.json"):
            answers[row["id"]] = parse_ground_truth(row["ground_truth"])
    examples = []
    for q in questions:
        if category not in NO_CALL_CATEGORIES and q["id"] not in answers:
            raise ValueError(f"{category}: question {q['id']} has no possible answer")
        examples.append(
            BfclExample(
                id=q["id"],
                category=category,
                messages=[m for turn in q["question"] for m in turn],
                functions=tuple(parse_function_spec(f) for f in q["function"]),
                expected=answers.get(q["id"], ()),
                language=LANGUAGE_CATEGORIES.get(category, "python"),
            )
        )
    return examples


def load_single_turn(
    root: Path, categories: tuple[str, ...] = SINGLE_TURN_CATEGORIES, per_category: int = 0
) -> list[BfclExample]:
    """Load several single-turn categories (default: all five bundled ones) in order, the first
    `per_category` questions of each (0: all)."""
    return [ex for category in categories for ex in load_category(root, category, per_category)]
