"""Multilingual tasks with gold answers: an arithmetic family, MGSM, synthetic languages and user JSONL.

Every row is one question in one language, aligned with the other languages of the same item by
`item_id`; `english_question` is the aligned English original where one exists (what the oracle
translator returns). Answers are numbers written as strings, compared numerically.

The generated family (`arithmetic_items`, item ids `arith_*`, family `arithmetic`) exists because the
local SmolLM2-135M cannot solve MGSM in any language: it must reach clearly non-trivial English accuracy
for a translate-or-not decision to mean anything. Its operation sets are arithmetic (plus, minus, times,
after, before), compare (larger, smaller) and lookup (the first, second or third number of a list); the
wording decides the answer in each, so a policy that cannot read the language is at chance. Lookup is
the local default (measured, docs/translation.md). Non-English templates were written by hand (like
MGSM's human translations), one per operation.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import polars as pl

from ops.common.quarantine import Rejected, Split, split
from ops.translation.cipher import SYNTHETIC_CIPHERS
from ops.translation.languages import ENGLISH, tier_of

TASK_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "item_id": pl.String(),
    "family": pl.String(),
    "language": pl.String(),
    "tier": pl.String(),
    "question": pl.String(),
    "answer": pl.String(),
    "english_question": pl.String(),
}
REASONS = ("bad_record", "empty_question", "question_too_long", "bad_answer", "duplicate_task")
ARITHMETIC = "arithmetic"
MGSM = "mgsm"
USER = "user"

# One template per operation and language: {a}, {b} (and {c}) are the operands.
ARITHMETIC_TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "plus": "What is {a} plus {b}?",
        "minus": "What is {a} minus {b}?",
        "times": "What is {a} times {b}?",
        "after": "What number comes after {a}?",
        "before": "What number comes before {a}?",
        "larger": "Which is larger, {a} or {b}?",
        "smaller": "Which is smaller, {a} or {b}?",
        "first": "In the list {a}, {b}, {c}, what is the first number?",
        "second": "In the list {a}, {b}, {c}, what is the second number?",
        "third": "In the list {a}, {b}, {c}, what is the third number?",
    },
    "es": {
        "plus": "¿Cuánto es {a} más {b}?",
        "minus": "¿Cuánto es {a} menos {b}?",
        "times": "¿Cuánto es {a} por {b}?",
        "after": "¿Qué número viene después del {a}?",
        "before": "¿Qué número viene antes del {a}?",
        "larger": "¿Cuál es mayor, {a} o {b}?",
        "smaller": "¿Cuál es menor, {a} o {b}?",
        "first": "En la lista {a}, {b}, {c}, ¿cuál es el primer número?",
        "second": "En la lista {a}, {b}, {c}, ¿cuál es el segundo número?",
        "third": "En la lista {a}, {b}, {c}, ¿cuál es el tercer número?",
    },
    "fr": {
        "plus": "Combien font {a} plus {b} ?",
        "minus": "Combien font {a} moins {b} ?",
        "times": "Combien font {a} fois {b} ?",
        "after": "Quel nombre vient après {a} ?",
        "before": "Quel nombre vient avant {a} ?",
        "larger": "Lequel est le plus grand, {a} ou {b} ?",
        "smaller": "Lequel est le plus petit, {a} ou {b} ?",
        "first": "Dans la liste {a}, {b}, {c}, quel est le premier nombre ?",
        "second": "Dans la liste {a}, {b}, {c}, quel est le deuxième nombre ?",
        "third": "Dans la liste {a}, {b}, {c}, quel est le troisième nombre ?",
    },
    "de": {
        "plus": "Was ist {a} plus {b}?",
        "minus": "Was ist {a} minus {b}?",
        "times": "Was ist {a} mal {b}?",
        "after": "Welche Zahl kommt nach {a}?",
        "before": "Welche Zahl kommt vor {a}?",
        "larger": "Welche Zahl ist größer, {a} oder {b}?",
        "smaller": "Welche Zahl ist kleiner, {a} oder {b}?",
        "first": "In der Liste {a}, {b}, {c}, welches ist die erste Zahl?",
        "second": "In der Liste {a}, {b}, {c}, welches ist die zweite Zahl?",
        "third": "In der Liste {a}, {b}, {c}, welches ist die dritte Zahl?",
    },
    "zh": {
        "plus": "{a}加{b}等于多少？",  # noqa: RUF001 - the CJK question mark is correct here
        "minus": "{a}减{b}等于多少？",  # noqa: RUF001
        "times": "{a}乘以{b}等于多少？",  # noqa: RUF001
        "after": "{a}后面的数是多少？",  # noqa: RUF001
        "before": "{a}前面的数是多少？",  # noqa: RUF001
        "larger": "{a}和{b}哪个更大？",  # noqa: RUF001
        "smaller": "{a}和{b}哪个更小？",  # noqa: RUF001
        "first": "在列表 {a}, {b}, {c} 中，第一个数是多少？",  # noqa: RUF001
        "second": "在列表 {a}, {b}, {c} 中，第二个数是多少？",  # noqa: RUF001
        "third": "在列表 {a}, {b}, {c} 中，第三个数是多少？",  # noqa: RUF001
    },
    "ja": {
        "plus": "{a}足す{b}はいくつですか？",  # noqa: RUF001
        "minus": "{a}引く{b}はいくつですか？",  # noqa: RUF001
        "times": "{a}掛ける{b}はいくつですか？",  # noqa: RUF001
        "after": "{a}の次の数はいくつですか？",  # noqa: RUF001
        "before": "{a}の前の数はいくつですか？",  # noqa: RUF001
        "larger": "{a}と{b}では、どちらが大きいですか？",  # noqa: RUF001
        "smaller": "{a}と{b}では、どちらが小さいですか？",  # noqa: RUF001
        "first": "リスト {a}, {b}, {c} の一番目の数はいくつですか？",  # noqa: RUF001
        "second": "リスト {a}, {b}, {c} の二番目の数はいくつですか？",  # noqa: RUF001
        "third": "リスト {a}, {b}, {c} の三番目の数はいくつですか？",  # noqa: RUF001
    },
    "sw": {
        "plus": "{a} jumlisha {b} ni ngapi?",
        "minus": "{a} toa {b} ni ngapi?",
        "times": "{a} mara {b} ni ngapi?",
        "after": "Namba gani inakuja baada ya {a}?",
        "before": "Namba gani inakuja kabla ya {a}?",
        "larger": "Ipi ni kubwa zaidi, {a} au {b}?",
        "smaller": "Ipi ni ndogo zaidi, {a} au {b}?",
        "first": "Katika orodha {a}, {b}, {c}, namba ya kwanza ni ipi?",
        "second": "Katika orodha {a}, {b}, {c}, namba ya pili ni ipi?",
        "third": "Katika orodha {a}, {b}, {c}, namba ya tatu ni ipi?",
    },
    "bn": {
        "plus": "{a} যোগ {b} সমান কত?",
        "minus": "{a} বিয়োগ {b} সমান কত?",
        "times": "{a} গুণ {b} সমান কত?",
        "after": "{a}-এর পরের সংখ্যা কত?",
        "before": "{a}-এর আগের সংখ্যা কত?",
        "larger": "{a} আর {b}-এর মধ্যে কোনটি বড়?",
        "smaller": "{a} আর {b}-এর মধ্যে কোনটি ছোট?",
        "first": "তালিকা {a}, {b}, {c}-এ প্রথম সংখ্যাটি কত?",
        "second": "তালিকা {a}, {b}, {c}-এ দ্বিতীয় সংখ্যাটি কত?",
        "third": "তালিকা {a}, {b}, {c}-এ তৃতীয় সংখ্যাটি কত?",
    },
}


@dataclass(frozen=True)
class Operation:
    """How an operation draws its operands (from a seeded generator) and computes its answer."""

    draw: Callable[[random.Random, int], tuple[int, ...]]
    answer: Callable[..., int]


def _pair(rng: random.Random, top: int) -> tuple[int, ...]:
    return rng.randint(2, top), rng.randint(2, top)


def _ordered_pair(rng: random.Random, top: int) -> tuple[int, ...]:
    a, b = _pair(rng, top)
    return max(a, b), min(a, b)


def _neighbour(rng: random.Random, top: int) -> tuple[int, ...]:
    return rng.randint(2, 50), rng.randint(2, top)


def _distinct_two_digit(rng: random.Random, _: int) -> tuple[int, ...]:
    return tuple(rng.sample(range(10, 100), 2))


def _distinct_digits(rng: random.Random, _: int) -> tuple[int, ...]:
    return tuple(rng.sample(range(1, 10), 3))


OPERATIONS: dict[str, Operation] = {
    "plus": Operation(_pair, lambda a, b: a + b),
    "minus": Operation(_ordered_pair, lambda a, b: a - b),
    "times": Operation(_pair, lambda a, b: a * b),
    "after": Operation(_neighbour, lambda a, *_: a + 1),
    "before": Operation(_neighbour, lambda a, *_: a - 1),
    "larger": Operation(_distinct_two_digit, max),
    "smaller": Operation(_distinct_two_digit, min),
    "first": Operation(_distinct_digits, lambda a, b, c: a),
    "second": Operation(_distinct_digits, lambda a, b, c: b),
    "third": Operation(_distinct_digits, lambda a, b, c: c),
}
# Operation sets that make a task family (the `operations` of `arithmetic_items`), with the answer a
# policy that ignores the wording gets right by chance (a uniform pick among the question's numbers).
OPERATION_SETS: dict[str, tuple[str, ...]] = {
    "arithmetic": ("plus", "minus", "times", "after", "before"),
    "compare": ("larger", "smaller"),
    "lookup": ("first", "second", "third"),
}
# The local default: the set SmolLM2-135M solves above chance in English (measured, docs/translation.md).
DEFAULT_FAMILY = "lookup"
DEFAULT_OPERATIONS = OPERATION_SETS[DEFAULT_FAMILY]


@dataclass(frozen=True)
class TaskLimits:
    """Bounds on a question: longer ones are quarantined (a 100k-character question is an input fault)."""

    max_question_chars: int = 4000


def arithmetic_items(
    count: int, seed: int = 0, operations: Sequence[str] = DEFAULT_OPERATIONS, max_operand: int = 9
) -> list[dict[str, Any]]:
    """`count` aligned items: {id, answer, question: {language: text}}, cycling through `operations`.

    Arithmetic operands are 2..`max_operand` (a..50 for after/before), subtraction never goes below zero;
    compare draws two distinct two-digit numbers, lookup three distinct digits. The same arguments give
    the same items.
    """
    unknown = sorted(set(operations) - set(OPERATIONS))
    if unknown or not operations:
        raise ValueError(f"unknown arithmetic operations {unknown}; known: {sorted(OPERATIONS)}")
    rng = random.Random(seed)
    items = []
    for index in range(count):
        op = operations[index % len(operations)]
        operands = OPERATIONS[op].draw(rng, max_operand)
        names = dict(zip("abc", operands, strict=False))
        questions = {lang: templates[op].format(**names) for lang, templates in ARITHMETIC_TEMPLATES.items()}
        answer = OPERATIONS[op].answer(*operands)
        items.append({"id": f"arith_{index:04d}", "answer": str(answer), "question": questions})
    return items


def _template_pattern(template: str) -> re.Pattern[str]:
    """A regex that reads a template's operands back from a question written with it."""
    parts = re.split(r"\{[abc]\}", template)
    return re.compile("^" + r"(\d+)".join(re.escape(part) for part in parts) + "$")


_ENGLISH_PATTERNS = {op: _template_pattern(text) for op, text in ARITHMETIC_TEMPLATES[ENGLISH].items()}


def english_answer(question: str) -> str | None:
    """The answer of an English question written with `ARITHMETIC_TEMPLATES`, recomputed from its text
    (None when no template matches): an independent checker of the generated gold answers."""
    for op, pattern in _ENGLISH_PATTERNS.items():
        match = pattern.match(question.strip())
        if match:
            return str(OPERATIONS[op].answer(*(int(group) for group in match.groups())))
    return None


def read_aligned_jsonl(path: Path, limit: int = 0) -> list[dict[str, Any]]:
    """Aligned items from a JSONL file in MGSM's aligned form ({id, answer, question: {lang: text}})."""
    items = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                items.append(json.loads(line))
            if limit and len(items) >= limit:
                break
    return items


def aligned_records(items: Iterable[Mapping[str, Any]], family: str, languages: Sequence[str]) -> list[dict[str, Any]]:
    """One record per (item, language) for the aligned items, plus their synthetic-language ciphers.

    Only `languages` are kept; a synthetic language listed there is made from the English text.
    """
    records = []
    for item in items:
        english = item["question"].get(ENGLISH)
        texts = {lang: text for lang, text in item["question"].items() if lang in languages}
        if english is not None:
            texts |= {lang: cipher.encode(english) for lang, cipher in SYNTHETIC_CIPHERS.items() if lang in languages}
        for language, question in texts.items():
            records.append(
                {
                    "id": f"{item['id']}:{language}",
                    "item_id": item["id"],
                    "family": family,
                    "language": language,
                    "question": question,
                    "answer": item["answer"],
                    "english_question": english,
                }
            )
    return records


def user_records(path: Path) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """Records of a user JSONL file ({question, answer, language}, optional id); unreadable lines rejected."""
    records, rejected = [], []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record_id = f"{path.name}:{number}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as error:
                rejected.append(Rejected(record_id, "bad_record", f"not JSON: {error}", line))
                continue
            missing = [key for key in ("question", "answer", "language") if not isinstance(raw, dict) or key not in raw]
            if missing:
                rejected.append(Rejected(record_id, "bad_record", f"missing fields {missing}", raw))
                continue
            item_id = str(raw.get("id") or f"user_{path.stem}_{number}")
            language = str(raw["language"])
            records.append(
                {
                    "id": f"{item_id}:{language}",
                    "item_id": item_id,
                    "family": USER,
                    "language": language,
                    "question": raw["question"],
                    "answer": raw["answer"],
                    "english_question": raw["question"] if language == ENGLISH else None,
                }
            )
    return records, rejected


def _answer(value: Any) -> str | None:
    """The answer as a canonical number string, or None when it is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    return str(number.normalize()) if number != number.to_integral_value() else str(int(number))


def _rejection(record: Mapping[str, Any], limits: TaskLimits) -> Rejected | None:
    question = record["question"]
    if not isinstance(question, str) or not question.strip():
        return Rejected(record["id"], "empty_question", "question is empty or not text", record)
    if len(question) > limits.max_question_chars:
        detail = f"question has {len(question)} characters (limit {limits.max_question_chars})"
        return Rejected(record["id"], "question_too_long", detail, record)
    if _answer(record["answer"]) is None:
        return Rejected(record["id"], "bad_answer", f"answer {record['answer']!r} is not a number", record)
    return None


def build_tasks(
    records: Sequence[Mapping[str, Any]],
    tiers: Mapping[str, str],
    limits: TaskLimits = TaskLimits(),
    rejected: Sequence[Rejected] = (),
) -> Split:
    """Validate records into `TASK_SCHEMA` rows; bad ones are quarantined, an unknown language raises.

    `rejected` are records refused earlier (unreadable lines), counted in rows in.
    """
    kept, refused, seen = [], list(rejected), set()
    for record in records:
        tier = tier_of(str(record["language"]), tiers, record["id"])
        reason = _rejection(record, limits)
        if reason is None and record["id"] in seen:
            reason = Rejected(record["id"], "duplicate_task", "a task with this id was read before", record)
        if reason is not None:
            refused.append(reason)
            continue
        seen.add(record["id"])
        kept.append(
            {
                "task_id": record["id"],
                "item_id": record["item_id"],
                "family": record["family"],
                "language": record["language"],
                "tier": tier,
                "question": record["question"],
                "answer": _answer(record["answer"]),
                "english_question": record["english_question"],
            }
        )
    return split(kept, TASK_SCHEMA, refused, len(records) + len(rejected), REASONS)
