"""The chat-completion contract between domain logic and whatever LLM serves it.

`ops/` code takes an `LLMClient` and never knows whether llama.cpp, vLLM, an OpenAI-compatible
server or a test fake answers; the Dagster resource in `resources/llm.py` implements it with a
persistent cache, so domain functions can be unit-tested and reused without Dagster.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to run.

    `messages` are `{"role": ..., "content": ...}` dicts. When `json_schema` is set the output is
    constrained to (and parsed as) JSON following it. `request_id` is the caller's id for the item
    (e.g. a document id) so results can be joined back; it does not take part in caching, so the same
    prompt asked for two items is paid once.
    """

    messages: tuple[dict[str, str], ...]
    json_schema: dict[str, Any] | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int = 0
    request_id: str = ""


@dataclass
class ChatResult:
    """Outcome of one `ChatRequest`: either `text` (and `parsed` JSON when a schema was asked) or `error`.

    Tokens of a computed item add up all its attempts; a cached item (`cached=True`) reports the
    tokens of the stored completion. `latency_s` is the time this call spent on the item, so 0 when
    it came from the cache. `finish_reason` is the engine's ("stop", "length": cut by `max_tokens`, ...),
    None when unknown (no output, or a completion cached before it was recorded).
    """

    request_id: str
    text: str | None
    parsed: Any | None
    error: str | None
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    cached: bool
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when the item produced output (possibly from the cache)."""
        return self.error is None


@runtime_checkable
class LLMClient(Protocol):
    """Anything that answers batches of chat requests."""

    @property
    def model_id(self) -> str:
        """Stable name of the model behind the client, recorded with every artifact it produces."""
        ...

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Return one result per request, in the same order; a bad item yields `error`, never raises."""
        ...


@dataclass(frozen=True)
class UsageTotals:
    """What a batch of chat results cost: counts, tokens and time, ready for asset metadata.

    `latency_s` adds up the per-item latencies of the items actually computed (cache hits cost ~0),
    so `items_per_s` is the backend throughput seen by this run, not wall-clock time.
    """

    requests: int
    cached: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    latency_s: float

    @classmethod
    def from_results(cls, results: Sequence[ChatResult]) -> UsageTotals:
        """Sum a list of results."""
        return cls(
            requests=len(results),
            cached=sum(result.cached for result in results),
            errors=sum(result.error is not None for result in results),
            prompt_tokens=sum(result.prompt_tokens for result in results),
            completion_tokens=sum(result.completion_tokens for result in results),
            latency_s=sum(result.latency_s for result in results),
        )

    @property
    def items_per_s(self) -> float:
        """Items served per second of accumulated latency (0 when nothing was timed)."""
        return self.requests / self.latency_s if self.latency_s > 0 else 0.0

    def as_metadata(self) -> dict[str, float | int]:
        """Flat `llm_*` numbers for `MaterializeResult` / `Output` metadata."""
        return {
            "llm_requests": self.requests,
            "llm_cached": self.cached,
            "llm_errors": self.errors,
            "llm_prompt_tokens": self.prompt_tokens,
            "llm_completion_tokens": self.completion_tokens,
            "llm_latency_s": round(self.latency_s, 3),
            "llm_items_per_s": round(self.items_per_s, 3),
        }
