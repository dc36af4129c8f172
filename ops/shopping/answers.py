"""Exact-match scoring for ShopTrajQA answers: one canonical form for numbers, dates, months, "none", names.

Gold answers (written by `format_answer` in ops/shopping/questions.py) are canonical decimals, ISO
dates, ISO months, "none" or names, and `normalize_answer` leaves those unchanged; a model's answer is
brought to the same form, so "£1,234.50", "1234.50 GBP" and "1234.5" all match gold "1234.5" and
"5 March 2024" matches "2024-03-05". Anything that is not a number, date, month or "none" is compared
as a name: case, accents' composition, punctuation and spacing do not count.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

NONE_ANSWER = "none"
_NONE_FORMS = {
    "none",
    "nothing",
    "n/a",
    "na",
    "null",
    "no purchases",
    "no purchase",
    "no returns",
    "no reviews",
    "no answer",
    "not applicable",
    "there is none",
    "there are none",
}
_PREFIXES = re.compile(r"^(?:the\s+)?(?:final\s+)?answer\b\s*(?:is\b\s*)?[:=]?\s*", re.I)
# Marks around an answer; a leading "." is kept because ".5" is a number.
_LEADING_PUNCT = "\"'`“”«»,;:!?()[]{}<>*_ \t\n"
# Typographic quotes and the minus sign are read as their ASCII forms.
_ASCII_FORMS = str.maketrans({"\u2018": "'", "\u2019": "'", "\u2212": "-"})
_TRAILING_PUNCT = _LEADING_PUNCT + "."
_MONTHS = {
    name: number
    for number, names in enumerate(
        [
            ("january", "jan"),
            ("february", "feb"),
            ("march", "mar"),
            ("april", "apr"),
            ("may",),
            ("june", "jun"),
            ("july", "jul"),
            ("august", "aug"),
            ("september", "sep", "sept"),
            ("october", "oct"),
            ("november", "nov"),
            ("december", "dec"),
        ],
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>" + "|".join(sorted(_MONTHS, key=len, reverse=True)) + r")\.?"
_WEEKDAY = re.compile(r"^(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*,?\s+")
_ORDINAL = r"(?:st|nd|rd|th)?"
_ISO_DATE = re.compile(
    r"^(?P<year>\d{4})[-/](?P<mon>\d{1,2})[-/](?P<day>\d{1,2})(?:[t ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?z?)?$"
)
_DAY_MONTH_YEAR = re.compile(rf"^(?P<day>\d{{1,2}}){_ORDINAL}\s+(?:of\s+)?{_MONTH},?\s+(?P<year>\d{{4}})$")
_MONTH_DAY_YEAR = re.compile(rf"^{_MONTH}\s+(?P<day>\d{{1,2}}){_ORDINAL},?\s+(?P<year>\d{{4}})$")
_ISO_MONTH = re.compile(r"^(?P<year>\d{4})[-/](?P<mon>\d{1,2})$")
_MONTH_YEAR = re.compile(rf"^{_MONTH},?\s+(?P<year>\d{{4}})$")
_CURRENCY_BEFORE = re.compile(r"^(?:gbp|usd|eur|£|\$|€|us\$)\s*")
_CURRENCY_AFTER = re.compile(r"\s*(?:gbp|usd|eur|£|\$|€|pounds?|dollars?|euros?|%)$")
_UNIT_AFTER = re.compile(
    r"\s+(?:items?|units?|times?|orders?|products?|purchases?|returns?|reviews?|searches|views?|sessions?|"
    r"events?|days?|weeks?|months?|stars?|pieces?)$"
)
_NUMBER = re.compile(r"^(?P<sign>[-+])?(?P<digits>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)$")
_APOSTROPHES = re.compile(r"['`]")
_FENCE = re.compile(r"^```[\w-]*\s*\n?(.*?)\n?\s*```$", re.S)
_ANSWER_LINE = re.compile(r"^\s*(?:final\s+)?answer\s*[:=]\s*(.+?)\s*$", re.I | re.M)


def normalize_answer(text: str) -> str:
    """Canonical form of an answer for exact match ("" when nothing is left).

    Numbers (currency signs/codes, thousands separators, a count word like "items" dropped) become
    plain decimals without trailing zeros ("1,234.50 GBP" -> "1234.5", "3.0" -> "3"); dates become
    YYYY-MM-DD, months YYYY-MM; "nothing", "n/a", "no purchases"... become "none"; other text is
    lower-cased with punctuation removed and whitespace folded.
    """
    folded = " ".join(unicodedata.normalize("NFC", text).translate(_ASCII_FORMS).lower().split())
    core = _strip_wrapping(folded)
    if not core:
        return ""
    if core in _NONE_FORMS:
        return NONE_ANSWER
    for parse in (_as_date, _as_month, _as_number):
        canonical = parse(core)
        if canonical is not None:
            return canonical
    return _as_name(core)


def _strip_wrapping(text: str) -> str:
    """Drop an "the answer is" prefix and quotes/brackets/punctuation around the answer, repeatedly."""
    previous = None
    while text != previous:
        previous = text
        text = _PREFIXES.sub("", text).lstrip(_LEADING_PUNCT).rstrip(_TRAILING_PUNCT)
    return text


def _as_date(text: str) -> str | None:
    text = _WEEKDAY.sub("", text)
    for pattern in (_ISO_DATE, _DAY_MONTH_YEAR, _MONTH_DAY_YEAR):
        match = pattern.match(text)
        if match:
            parts = match.groupdict()
            month = int(parts["mon"]) if parts.get("mon") else _MONTHS[parts["month"]]
            try:
                return dt.date(int(parts["year"]), month, int(parts["day"])).isoformat()
            except ValueError:
                return None
    return None


def _as_month(text: str) -> str | None:
    for pattern in (_ISO_MONTH, _MONTH_YEAR):
        match = pattern.match(text)
        if match:
            parts = match.groupdict()
            month = int(parts["mon"]) if parts.get("mon") else _MONTHS[parts["month"]]
            return f"{int(parts['year']):04d}-{month:02d}" if 1 <= month <= 12 else None
    return None


def _as_number(text: str) -> str | None:
    sign = ""
    if text.startswith(("-", "+")):
        sign, text = text[0], text[1:].lstrip()
    text = _UNIT_AFTER.sub("", _CURRENCY_AFTER.sub("", _CURRENCY_BEFORE.sub("", text)))
    match = _NUMBER.match(sign + text.strip())
    if not match:
        return None
    try:
        value = Decimal(match["digits"].replace(",", ""))
    except InvalidOperation:
        return None
    if match["sign"] == "-":
        value = -value
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _as_name(text: str) -> str:
    """Names compare without punctuation or symbols: apostrophes vanish, other marks become spaces."""
    text = _APOSTROPHES.sub("", text)
    kept = "".join(" " if unicodedata.category(char)[0] in "PS" else char for char in text)
    return " ".join(kept.split())


def exact_match_reward(prediction: str | None, gold: str) -> float:
    """1.0 when the prediction's canonical form equals the gold's, else 0.0 (also for None or empty)."""
    if prediction is None:
        return 0.0
    predicted = normalize_answer(prediction)
    return 1.0 if predicted and predicted == normalize_answer(gold) else 0.0


def load_json_object(text: str) -> dict[str, Any] | None:
    """The JSON object in `text` (optionally inside a Markdown code fence), or None when there is none.

    Raw newlines and tabs inside strings are accepted (`strict=False`): models write multi-line SQL.
    """
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1).strip()
    try:
        data = json.loads(stripped, strict=False)
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def extract_answer(completion: Any) -> str | None:
    """The final answer in a model output, or None when it gave none (e.g. a SQL action).

    Accepted, in order: a JSON object `{"action": "answer", "content": ...}` (the agent protocol) or
    `{"answer": ...}` (the long-context baseline); the last "Answer: ..." line; the whole text. A chat
    completion (list of messages) is read from its last message's content.
    """
    if isinstance(completion, list):
        completion = completion[-1].get("content", "") if completion and isinstance(completion[-1], dict) else ""
    if isinstance(completion, dict):
        data: dict[str, Any] | None = completion
    elif isinstance(completion, str):
        data = load_json_object(completion)
    else:
        return None
    if data is not None:
        if data.get("action") == "answer" and data.get("content") is not None:
            return str(data["content"])
        if data.get("answer") is not None:
            return str(data["answer"])
        return None
    lines = _ANSWER_LINE.findall(completion)
    if lines:
        return lines[-1]
    return completion.strip() or None


def shoptrajqa_reward(completions: Sequence[Any], ground_truth: Sequence[str], **kwargs: Any) -> list[float]:
    """TRL GRPOTrainer reward function: exact match (1.0/0.0) of each completion's answer against the gold.

    Pass it as `GRPOTrainer(reward_funcs=[shoptrajqa_reward], ...)` with a dataset whose
    `ground_truth` column holds canonical gold answers; `completions` may be strings or message lists
    (conversational format). Other dataset columns arrive in **kwargs and are ignored.
    """
    del kwargs
    return [
        exact_match_reward(extract_answer(completion), gold)
        for completion, gold in zip(completions, ground_truth, strict=True)
    ]
