"""Shared test doubles for the LLM contract (`ops.common.llm.LLMClient`), used only by tests.

A fake decides an *answer* per request; `reply` turns it into the `ChatResult` the real resource
(`resources.llm.CachedLLMClient`) would return, so every fake behaves the same way at the contract:

- a dict or list: valid JSON output, `text` is its JSON and `parsed` the value; when the request asked for
  a schema the value must meet it (the resource's grammar-constrained output always does), else the fake
  itself is wrong and `reply` raises `FakeContractError`;
- a str: raw text, parsed as JSON when the request asked for a schema (not JSON: `error` starts with
  "invalid JSON", the text is kept for quarantine, as the resource does);
- `SchemaViolation(text)`: JSON that the schema refuses (e.g. a verdict "maybe"), an error with the text;
- `OffSchema(value)`: JSON that parses but breaks the schema, returned as the resource returns it (parsed,
  no error): llama.cpp's grammar never produces it, an OpenAI-compatible server without strict mode may;
- an Exception: a failed call, `error` is its message and there is no text;
- a `ChatResult`: returned as it is (a fake that shapes its own costs builds it with `reply`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg
import jsonschema

from ops.common.llm import ChatRequest, ChatResult

VERDICT_MET = {"explanation": "ok", "criteria_met": True}


class FakeContractError(AssertionError):
    """A fake answered what the real LLM resource cannot return (JSON outside the requested schema)."""


@dataclass(frozen=True)
class SchemaViolation:
    """An answer that parses as JSON but breaks the requested schema."""

    text: str


@dataclass(frozen=True)
class OffSchema:
    """A parsed answer outside the requested schema, which the resource passes on without an error."""

    value: Any


Answer = dict | list | str | SchemaViolation | OffSchema | Exception | ChatResult


def reply(
    request: ChatRequest,
    answer: Answer,
    *,
    prompt_tokens: int = 5,
    completion_tokens: int = 5,
    latency_s: float = 0.0,
) -> ChatResult:
    """The `ChatResult` the LLM resource would give for `answer` to `request`."""
    costs = (prompt_tokens, completion_tokens, latency_s)
    if isinstance(answer, ChatResult):
        return answer
    if isinstance(answer, Exception):  # a failed call costs nothing that the resource could count
        return ChatResult(request.request_id, None, None, str(answer), 0, 0, 0.0, cached=False)
    if isinstance(answer, OffSchema):
        return ChatResult(request.request_id, json.dumps(answer.value), answer.value, None, *costs, cached=False)
    if isinstance(answer, SchemaViolation):
        return ChatResult(request.request_id, answer.text, None, "output does not match the schema", *costs, False)
    if not isinstance(answer, str):
        _check_schema(request, answer)
        return ChatResult(request.request_id, json.dumps(answer), answer, None, *costs, cached=False)
    if request.json_schema is None:
        return ChatResult(request.request_id, answer, None, None, *costs, cached=False)
    try:
        return ChatResult(request.request_id, answer, json.loads(answer), None, *costs, cached=False)
    except json.JSONDecodeError as error:
        return ChatResult(request.request_id, answer, None, f"invalid JSON: {error.msg}", *costs, cached=False)


class FakeLLM:
    """A plain `LLMClient` whose `answer(request)` decides each answer; every batch is kept in `calls`.

    Pass the answering function, or subclass and override `answer`.
    """

    def __init__(
        self,
        answer: Callable[[ChatRequest], Answer] | None = None,
        model_id: str = "fake-llm",
        **costs: Any,
    ) -> None:
        self._answer = answer
        self.model_id = model_id
        self.costs = costs
        self.calls: list[list[ChatRequest]] = []

    @property
    def requests(self) -> list[ChatRequest]:
        """Every request received, in order."""
        return [request for batch in self.calls for request in batch]

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        self.calls.append(list(requests))
        return [reply(request, self.answer(request), **self.costs) for request in requests]

    def answer(self, request: ChatRequest) -> Answer:
        if self._answer is None:
            raise NotImplementedError("pass `answer` or override it")
        return self._answer(request)


class FakeLLMResource(dg.ConfigurableResource):
    """Base of the fake LLM *resources* a Dagster run binds as `llm`: subclasses implement `answer`."""

    model_id: str = "fake-llm"

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return [reply(request, self.answer(request)) for request in requests]

    def answer(self, request: ChatRequest) -> Answer:
        raise NotImplementedError


def _check_schema(request: ChatRequest, answer: dict | list) -> None:
    """Raise `FakeContractError` when a structured answer breaks the schema the request asked for."""
    if request.json_schema is None:
        return
    try:
        jsonschema.validate(answer, request.json_schema)
    except jsonschema.ValidationError as error:
        message = f"fake answer to {request.request_id!r} breaks the requested schema: {error.message}"
        raise FakeContractError(f"{message} (answer OffSchema or SchemaViolation to mean it)") from error


class FakeJudge(FakeLLM):
    """A rubric judge giving one verdict (default: met) to every request, with fixed costs per call."""

    def __init__(self, verdict: Answer | None = None, **costs: Any) -> None:
        answer = VERDICT_MET if verdict is None else verdict
        super().__init__(lambda _: answer, model_id="fake-judge", **costs)


class FakeJudgeResource(FakeLLMResource):
    """`FakeJudge` as the `llm` resource of a Dagster run: every criterion is met."""

    model_id: str = "fake-judge"

    def answer(self, request: ChatRequest) -> Answer:
        return VERDICT_MET


def schema_properties(request: ChatRequest) -> dict[str, Any]:
    """The top-level properties of the request's JSON schema ({} without a schema)."""
    return (request.json_schema or {}).get("properties", {})
