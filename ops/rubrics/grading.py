"""Criterion-level grading: one judge call per (response, criterion), batched through an `LLMClient`.

The judge answers `{"explanation": str, "criteria_met": bool}` (`JUDGE_SCHEMA`). An answer that is not
JSON, lacks a field, or gives anything but a boolean verdict ("maybe", "yes", null) is asked again
with another seed, and after `max_attempts` calls in all the criterion is recorded as "ungraded" with
the reason in `error`. Ungraded rows are never counted as pass or fail by `ops.rubrics.scores`.

Retries run at `retry_temperature` (> 0): at temperature 0 a new seed would reproduce the same
greedy output, so the retry could never differ. The first call stays greedy, so a rerun of the same
grades hits the LLM cache.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ops.common.llm import ChatRequest, ChatResult, LLMClient
from ops.rubrics.criteria import Criterion
from ops.rubrics.judge_prompt import judge_messages, judge_schema

MET, NOT_MET, UNGRADED = "met", "not_met", "ungraded"
GRADE_STATUSES = (MET, NOT_MET, UNGRADED)

GRADES_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.String(),
    "response_id": pl.String(),
    "model": pl.String(),
    "criterion_id": pl.String(),
    "turn_index": pl.Int64(),
    "status": pl.String(),
    "explanation": pl.String(),
    "error": pl.String(),
    "attempts": pl.Int64(),
    "judge_prompt_tokens": pl.Int64(),
    "judge_completion_tokens": pl.Int64(),
    "judge_latency_s": pl.Float64(),
}

_FENCED_JSON = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_PREVIEW_CHARS = 120


@dataclass(frozen=True)
class GradingItem:
    """One criterion to judge on one response.

    `conversation` holds the `{"role", "content"}` messages up to and including the graded assistant
    turn (the last message), earlier assistant turns included for multi-turn items.
    """

    response_id: str
    model: str
    item_id: str
    turn_index: int
    conversation: tuple[dict[str, str], ...]
    criterion: Criterion

    def __post_init__(self) -> None:
        object.__setattr__(self, "conversation", tuple(self.conversation))
        reason = _item_problem(self)
        if reason is not None:
            raise ValueError(f"cannot grade {self.response_id!r} on {self.criterion.criterion_id!r}: {reason}")


@dataclass
class _Tally:
    """What grading one item has cost and found so far."""

    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    verdict: tuple[bool, str] | None = None
    last_error: str = ""


def grade(
    client: LLMClient,
    items: Iterable[GradingItem],
    max_attempts: int = 3,
    batch_size: int = 64,
    max_tokens: int = 512,
    retry_temperature: float = 0.7,
    explanation_max_chars: int | None = None,
) -> pl.DataFrame:
    """Judge every item and return the grades frame (`GRADES_SCHEMA`), one row per item, input order.

    Requests go to `client.chat` in batches of `batch_size`; items still without a boolean verdict are
    sent again (seed = attempt number) until each has had `max_attempts` calls. Tokens and latency
    add up all the calls of an item. Two items with the same (response_id, criterion_id) raise.
    `explanation_max_chars` caps the explanation in the schema (see `judge_schema`): leave it None
    for API judges, set it (e.g. 300) for small local models.
    """
    items = list(items)
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    _check_unique(items)
    schema = judge_schema(explanation_max_chars)
    messages = [judge_messages(item.conversation, item.criterion) for item in items]
    tallies = [_Tally() for _ in items]
    pending = list(range(len(items)))
    for attempt in range(max_attempts):
        if not pending:
            break
        requests = [
            ChatRequest(
                messages=messages[index],
                json_schema=schema,
                max_tokens=max_tokens,
                temperature=0.0 if attempt == 0 else retry_temperature,
                seed=attempt,
                request_id=_request_id(items[index], index),
            )
            for index in pending
        ]
        results = _chat_in_batches(client, requests, max(1, batch_size))
        for index, request in zip(pending, requests, strict=True):
            _record(tallies[index], results.get(request.request_id))
        pending = [index for index in pending if tallies[index].verdict is None]
    return pl.DataFrame([_row(item, tally) for item, tally in zip(items, tallies, strict=True)], schema=GRADES_SCHEMA)


def grading_cost(grades: pl.DataFrame) -> dict[str, float | int]:
    """What the judge cost: calls, tokens and seconds in all and per graded response.

    A "graded response" is a distinct `response_id`; calls count retries, and latency is the time the
    client reported (0 for cache hits), so a fully cached rerun shows its real cost of ~0 s.
    """
    responses = grades["response_id"].n_unique()
    calls = int(grades["attempts"].sum())
    prompt_tokens = int(grades["judge_prompt_tokens"].sum())
    completion_tokens = int(grades["judge_completion_tokens"].sum())
    seconds = float(grades["judge_latency_s"].sum())
    ungraded = int((grades["status"] == UNGRADED).sum())

    def per_response(value: float) -> float:
        return value / responses if responses else 0.0

    return {
        "responses": responses,
        "criteria_judged": grades.height,
        "ungraded": ungraded,
        "judge_calls": calls,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "judge_seconds": round(seconds, 4),
        "calls_per_response": per_response(calls),
        "tokens_per_response": per_response(prompt_tokens + completion_tokens),
        "seconds_per_response": per_response(seconds),
    }


def read_verdict(result: ChatResult | None) -> tuple[tuple[bool, str] | None, str | None]:
    """`((criteria_met, explanation), None)` for a usable judge answer, else `(None, reason)`.

    When the client returned text but no parsed JSON (no schema support), the text is parsed here,
    a Markdown ```json fence allowed, as the HealthBench grader does.
    """
    if result is None:
        return None, "the client returned no result for this request"
    if result.error is not None:
        return None, f"judge call failed: {result.error}"
    parsed = result.parsed if result.parsed is not None else _parse_text(result.text)
    if not isinstance(parsed, dict):
        preview = (result.text or "")[:_PREVIEW_CHARS]
        return None, f"judge output is not a JSON object: {preview!r}"
    if "criteria_met" not in parsed:
        return None, "judge output lacks criteria_met"
    met = parsed["criteria_met"]
    if not isinstance(met, bool):
        return None, f"criteria_met is {met!r}, not a boolean"
    explanation = parsed.get("explanation")
    if not isinstance(explanation, str):
        return None, "judge output lacks a string explanation"
    return (met, explanation), None


def _item_problem(item: GradingItem) -> str | None:
    """Why an item cannot be graded (a bug upstream, so it raises rather than becoming ungraded)."""
    if not item.conversation:
        return "empty conversation"
    for message in item.conversation:
        if not isinstance(message.get("role"), str) or not isinstance(message.get("content"), str):
            return f"message without string role and content: {message!r}"
    if item.conversation[-1]["role"] != "assistant":
        return "the conversation must end with the assistant turn being graded"
    if item.turn_index != item.criterion.turn_index:
        return f"criterion is for turn {item.criterion.turn_index}, response is turn {item.turn_index}"
    return None


def _check_unique(items: Sequence[GradingItem]) -> None:
    seen: set[tuple[str, str]] = set()
    for item in items:
        key = (item.response_id, item.criterion.criterion_id)
        if key in seen:
            raise ValueError(f"criterion {key[1]!r} is to be graded twice on response {key[0]!r}")
        seen.add(key)


def _request_id(item: GradingItem, index: int) -> str:
    """Unique within a call (the index) and readable in logs (response and criterion)."""
    return f"{index}|{item.response_id}|{item.criterion.criterion_id}"


def _chat_in_batches(client: LLMClient, requests: list[ChatRequest], batch_size: int) -> dict[str, ChatResult]:
    results: dict[str, ChatResult] = {}
    for start in range(0, len(requests), batch_size):
        for result in client.chat(requests[start : start + batch_size]):
            results[result.request_id] = result
    return results


def _record(tally: _Tally, result: ChatResult | None) -> None:
    tally.attempts += 1
    if result is not None:
        tally.prompt_tokens += result.prompt_tokens
        tally.completion_tokens += result.completion_tokens
        tally.latency_s += result.latency_s
    verdict, reason = read_verdict(result)
    if verdict is not None:
        tally.verdict = verdict
    else:
        tally.last_error = reason or "unknown"


def _parse_text(text: str | None) -> Any:
    if not text:
        return None
    stripped = text.strip()
    fenced = _FENCED_JSON.match(stripped)
    try:
        return json.loads(fenced.group(1) if fenced else stripped)
    except json.JSONDecodeError:
        return None


def _row(item: GradingItem, tally: _Tally) -> dict[str, Any]:
    if tally.verdict is None:
        status, explanation = UNGRADED, None
        error = f"no usable verdict after {tally.attempts} attempt(s); last: {tally.last_error}"
    else:
        status, explanation, error = (MET if tally.verdict[0] else NOT_MET), tally.verdict[1], None
    return {
        "item_id": item.item_id,
        "response_id": item.response_id,
        "model": item.model,
        "criterion_id": item.criterion.criterion_id,
        "turn_index": item.turn_index,
        "status": status,
        "explanation": explanation,
        "error": error,
        "attempts": tally.attempts,
        "judge_prompt_tokens": tally.prompt_tokens,
        "judge_completion_tokens": tally.completion_tokens,
        "judge_latency_s": tally.latency_s,
    }
