"""Multilingual tasks with gold answers: an arithmetic family, MGSM, synthetic languages and user JSONL.

Every row is one question in one language, aligned with the other languages of the same item by
`item_id`; `english_question` is the aligned English original where one exists (what the oracle
translator returns). Answers are numbers written as strings, compared numerically.

The arithmetic family exists because the local SmolLM2-135M cannot solve MGSM in any language: it
must reach clearly non-trivial English accuracy for a translate-or-not decision to mean anything.
Its non-English templates were written by hand (like MGSM's human translations), one per operation.
"""

from __future__ import annotations

import json
import random
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

# One template per operation and language: {a} and {b} are the operands.
ARITHMETIC_TEMPLATES: dict[str, dict[str, str]] = {
    "en": {
        "plus": "What is {a} plus {b}?",
        "minus": "What is {a} minus {b}?",
        "times": "What is {a} times {b}?",
        "after": "What number comes after {a}?",
        "before": "What number comes before {a}?",
    },
    "es": {
        "plus": "¿Cuánto es {a} más {b}?",
        "minus": "¿Cuánto es {a} menos {b}?",
        "times": "¿Cuánto es {a} por {b}?",
        "after": "¿Qué número viene después del {a}?",
        "before": "¿Qué número viene antes del {a}?",
    },
    "fr": {
        "plus": "Combien font {a} plus {b} ?",
        "minus": "Combien font {a} moins {b} ?",
        "times": "Combien font {a} fois {b} ?",
        "after": "Quel nombre vient après {a} ?",
        "before": "Quel nombre vient avant {a} ?",
    },
    "de": {
        "plus": "Was ist {a} plus {b}?",
        "minus": "Was ist {a} minus {b}?",
        "times": "Was ist {a} mal {b}?",
        "after": "Welche Zahl kommt nach {a}?",
        "before": "Welche Zahl kommt vor {a}?",
    },
    "zh": {
        "plus": "{a}加{b}等于多少？",  # noqa: RUF001 - the CJK question mark is correct here
        "minus": "{a}减{b}等于多少？",  # noqa: RUF001
        "times": "{a}乘以{b}等于多少？",  # noqa: RUF001
        "after": "{a}后面的数是多少？",  # noqa: RUF001
        "before": "{a}前面的数是多少？",  # noqa: RUF001
    },
    "ja": {
        "plus": "{a}足す{b}はいくつですか？",  # noqa: RUF001
        "minus": "{a}引く{b}はいくつですか？",  # noqa: RUF001
        "times": "{a}掛ける{b}はいくつですか？",  # noqa: RUF001
        "after": "{a}の次の数はいくつですか？",  # noqa: RUF001
        "before": "{a}の前の数はいくつですか？",  # noqa: RUF001
    },
    "sw": {
        "plus": "{a} jumlisha {b} ni ngapi?",
        "minus": "{a} toa {b} ni ngapi?",
        "times": "{a} mara {b} ni ngapi?",
        "after": "Namba gani inakuja baada ya {a}?",
        "before": "Namba gani inakuja kabla ya {a}?",
    },
    "bn": {
        "plus": "{a} যোগ {b} সমান কত?",
        "minus": "{a} বিয়োগ {b} সমান কত?",
        "times": "{a} গুণ {b} সমান কত?",
        "after": "{a}-এর পরের সংখ্যা কত?",
        "before": "{a}-এর আগের সংখ্যা কত?",
    },
}
OPERATIONS: dict[str, Callable[[int, int], int]] = {
    "plus": lambda a, b: a + b,
    "minus": lambda a, b: a - b,
    "times": lambda a, b: a * b,
    "after": lambda a, _: a + 1,
    "before": lambda a, _: a - 1,
}
# Every operation by default. Measured (README): SmolLM2-135M answers only 5-10% of them right in
# English (one-shot, greedy), so the local figures are a pipeline check; a gpu model solves them.
DEFAULT_OPERATIONS = ("plus", "minus", "times", "after", "before")


@dataclass(frozen=True)
class TaskLimits:
    """Bounds on a question: longer ones are quarantined (a 100k-character question is an input fault)."""

    max_question_chars: int = 4000


def arithmetic_items(
    count: int, seed: int = 0, operations: Sequence[str] = DEFAULT_OPERATIONS, max_operand: int = 9
) -> list[dict[str, Any]]:
    """`count` aligned items: {id, answer, question: {language: text}}, cycling through `operations`.

    Operands are 2..`max_operand` (a..50 for after/before), subtraction never goes below zero; the same
    arguments give the same items.
    """
    unknown = sorted(set(operations) - set(OPERATIONS))
    if unknown or not operations:
        raise ValueError(f"unknown arithmetic operations {unknown}; known: {sorted(OPERATIONS)}")
    rng = random.Random(seed)
    items = []
    for index in range(count):
        op = operations[index % len(operations)]
        top = 50 if op in ("after", "before") else max_operand
        a, b = rng.randint(2, top), rng.randint(2, max_operand)
        a, b = (max(a, b), min(a, b)) if op == "minus" else (a, b)
        questions = {lang: templates[op].format(a=a, b=b) for lang, templates in ARITHMETIC_TEMPLATES.items()}
        items.append({"id": f"arith_{index:04d}", "answer": str(OPERATIONS[op](a, b)), "question": questions})
    return items


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
