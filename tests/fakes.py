"""Shared test doubles for the LLM contract (`ops.common.llm.LLMClient`), used only by tests.

A fake decides an *answer* per request; `reply` turns it into the `ChatResult` the real resource
(`resources.llm.CachedLLMClient`) would return, so every fake behaves the same way at the contract:

- a dict or list: valid JSON output, `text` is its JSON and `parsed` the value;
- a str: raw text, parsed as JSON when the request asked for a schema (not JSON: `error` starts with
  "invalid JSON", the text is kept for quarantine, as the resource does);
- `SchemaViolation(text)`: JSON that the schema refuses (e.g. a verdict "maybe"), an error with the text;
- an Exception: a failed call, `error` is its message and there is no text;
- a `ChatResult`: returned as it is (a fake that shapes its own costs builds it with `reply`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ops.common.llm import ChatRequest, ChatResult


@dataclass(frozen=True)
class SchemaViolation:
    """An answer that parses as JSON but breaks the requested schema."""

    text: str


Answer = dict | list | str | SchemaViolation | Exception | ChatResult


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
    if isinstance(answer, SchemaViolation):
        return ChatResult(request.request_id, answer.text, None, "output does not match the schema", *costs, False)
    if not isinstance(answer, str):
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


def schema_properties(request: ChatRequest) -> dict[str, Any]:
    """The top-level properties of the request's JSON schema ({} without a schema)."""
    return (request.json_schema or {}).get("properties", {})
