"""The LLM resource: batched chat completions through a persistent cache, on any backend.

`CachedLLMClient` is the engine-independent part (cache first, backend for misses, per-item errors,
JSON checks, retries, accounting, progress logs); `LLMResource` is its Dagster face, configured per
profile: llama.cpp on CPU (`local`), vLLM in-process (`gpu`), an OpenAI-compatible server (`cluster`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from ops.common.llm import ChatRequest, ChatResult
from ops.common.packaged_models import coder_model_path, model_cache_dir, q8_0_copy, smollm2_model_path
from resources.llm_backends import (
    BACKENDS,
    ChatBackend,
    Completion,
    LlamaCppBackend,
    OpenAICompatibleBackend,
    VLLMBackend,
)
from resources.llm_cache import DEFAULT_CACHE_PATH, LLMCache, completion_key

CODER_MODEL = "coder"
DEFAULT_MODEL = "default"
_ERROR_PREVIEW_CHARS = 120


class CachedLLMClient:
    """`LLMClient` over a backend: every request is looked up in the cache, only misses are computed.

    Misses run in batches of `batch_size`; each completion is cached the moment it arrives, so a run
    killed halfway resumes where it stopped. Two kinds of retry, kept apart: transport failures are
    retried inside the backend (the OpenAI client's backoff with jitter), so an exception reaching this
    client is final for the item. An answer that arrived but is invalid (not JSON when a schema was
    asked) is asked again `max_retries` times with a new seed and at least `retry_temperature`, since
    the identical greedy request would give the identical answer; a valid retry is cached under the
    original request. Failures are returned with `error` and not cached, so the next run tries again.
    """

    def __init__(
        self,
        backend: ChatBackend,
        cache: LLMCache,
        batch_size: int = 8,
        max_retries: int = 1,
        retry_temperature: float = 0.7,
    ) -> None:
        self.backend = backend
        self.cache = cache
        self.batch_size = max(1, batch_size)
        self.max_retries = max(0, max_retries)
        self.retry_temperature = retry_temperature

    @property
    def model_id(self) -> str:
        """The backend's model name."""
        return self.backend.model_id

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """One result per request, same order; identical requests in one call are computed once."""
        keys = [completion_key(self.backend.name, self.model_id, request) for request in requests]
        results: list[ChatResult | None] = [None] * len(requests)
        hits = self.cache.get_many(keys)
        waiting: dict[str, list[int]] = {}
        for index, (key, request) in enumerate(zip(keys, requests, strict=True)):
            hit = hits.get(key)
            result = None if hit is None else _result(request, Completion(**vars(hit), latency_s=0.0))
            if result is not None and result.error is None:
                result.cached = True
                results[index] = result
            else:
                waiting.setdefault(key, []).append(index)

        misses = [(key, requests[indices[0]]) for key, indices in waiting.items()]
        logger = dg.get_dagster_logger()
        started = time.perf_counter()
        computed = errors = 0
        for start in range(0, len(misses), self.batch_size):
            for key, result in self._run_batch(misses[start : start + self.batch_size]):
                first, *repeats = waiting[key]
                results[first] = result
                for index in repeats:
                    results[index] = _repeat_of(result, requests[index].request_id)
                computed += 1
                errors += result.error is not None
            elapsed = time.perf_counter() - started
            logger.info(
                "llm %s: %d/%d done (%d from cache, %d errors), %.2f items/s",
                self.model_id,
                sum(result is not None for result in results),
                len(requests),
                len(requests) - sum(len(indices) for indices in waiting.values()),
                errors,
                computed / elapsed if elapsed > 0 else 0.0,
            )
        return [result for result in results if result is not None]

    def _run_batch(self, batch: list[tuple[str, ChatRequest]]) -> list[tuple[str, ChatResult]]:
        """Compute one batch, asking invalid answers again; cache each success as soon as it arrives."""
        finished: list[tuple[str, ChatResult]] = []
        spent: dict[int, tuple[int, int, float]] = {}
        pending = list(range(len(batch)))
        for attempt in range(self.max_retries + 1):
            invalid: dict[int, ChatResult] = {}
            requests = [self._attempt(batch[item][1], attempt) for item in pending]
            for position, outcome in self.backend.run(requests):
                item = pending[position]
                key, request = batch[item]
                result = _outcome_result(request, outcome)
                tokens_in, tokens_out, latency = spent.get(item, (0, 0, 0.0))
                spent[item] = (
                    tokens_in + result.prompt_tokens,
                    tokens_out + result.completion_tokens,
                    latency + result.latency_s,
                )
                if isinstance(outcome, Completion) and result.error is None:
                    self.cache.put(
                        key, outcome.text, outcome.prompt_tokens, outcome.completion_tokens, outcome.finish_reason
                    )
                if isinstance(outcome, Completion) and result.error is not None and attempt < self.max_retries:
                    invalid[item] = result
                else:
                    finished.append((key, _with_cost(result, spent[item])))
            if not invalid:
                break
            pending = sorted(invalid)
        return finished

    def _attempt(self, request: ChatRequest, attempt: int) -> ChatRequest:
        """The request as sent on an attempt: unchanged first, then another seed and some temperature."""
        if attempt == 0:
            return request
        temperature = max(request.temperature, self.retry_temperature)
        return replace(request, seed=request.seed + attempt, temperature=temperature)


class LLMResource(dg.ConfigurableResource):
    """Chat completions for assets, configured per profile; implements `ops.common.llm.LLMClient`.

    `model` means: for llamacpp a GGUF path, "" for the packaged SmolLM2-135M or "coder" for the
    opt-in Qwen2.5-Coder-1.5B; for openai the served model name; for vllm a Hugging Face model id.
    The API key of the openai backend is read from the environment variable named by `api_key_env`
    and is never part of the config. `n_ctx` is the context the model runs with (for openai: what the
    server serves); `tokenizer` names the Hugging Face tokenizer of a served model when it differs
    from `model` (token budgets are counted with the model's own tokenizer). `max_retries` and
    `retry_temperature` shape the semantic retry of invalid answers, `transport_retries` the openai
    backend's resending of failed requests (backoff with jitter).
    """

    backend: str = "llamacpp"
    model: str = ""
    base_url: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    n_ctx: int = 2048
    n_threads: int = 0
    batch_size: int = 8
    cache_path: str = DEFAULT_CACHE_PATH
    timeout_s: float = 120.0
    max_retries: int = 1
    retry_temperature: float = 0.7
    transport_retries: int = 3
    tokenizer: str = ""

    _client: CachedLLMClient | None = PrivateAttr(default=None)

    @property
    def model_id(self) -> str:
        """Stable name of the configured model (a GGUF file name, served name or HF id)."""
        return self.get_client().model_id

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer a batch of requests; see `CachedLLMClient.chat`."""
        return self.get_client().chat(requests)

    def for_model(self, model: str) -> LLMResource:
        """This resource with another model on the same backend ("default" keeps the configured one).

        How a model under test (a partition key) becomes a client: e.g. "coder" on llama.cpp, a served
        model name on an OpenAI-compatible server, a Hugging Face id on vLLM.
        """
        return self if model == DEFAULT_MODEL else self.model_copy(update={"model": model})

    def context_window(self) -> int:
        """Tokens a prompt plus its completion may take with the configured model."""
        return self.get_client().backend.context_window

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text under the configured model's own tokenizer."""
        return self.get_client().backend.count_tokens(texts)

    def get_client(self) -> CachedLLMClient:
        """The cached client for this config, built on first use (the model itself loads on first miss)."""
        if self._client is None:
            self._client = CachedLLMClient(
                self._backend(), LLMCache(self.cache_path), self.batch_size, self.max_retries, self.retry_temperature
            )
        return self._client

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Close the cache file at the end of a run."""
        self.close()

    def close(self) -> None:
        """Close the cache file (and drop the model); for copies made with `for_model` inside a step."""
        if self._client is not None:
            self._client.cache.close()
            self._client = None

    def _backend(self) -> ChatBackend:
        if self.backend == "llamacpp":
            return LlamaCppBackend(self._gguf_path(), n_ctx=self.n_ctx, n_threads=self.n_threads)
        if self.backend == "openai":
            return OpenAICompatibleBackend(
                self.model,
                self.base_url,
                self.api_key_env,
                self.timeout_s,
                concurrency=self.batch_size,
                n_ctx=self.n_ctx,
                tokenizer=self.tokenizer,
                transport_retries=self.transport_retries,
            )
        if self.backend == "vllm":
            return VLLMBackend(self.model, n_ctx=self.n_ctx)
        raise ValueError(f"unknown LLM backend {self.backend!r}; expected one of {', '.join(BACKENDS)}")

    def _gguf_path(self) -> Path:
        models = model_cache_dir() or Path(self.cache_path).parent / "models"
        if not self.model:  # the packaged SmolLM2, re-encoded once for llama.cpp's fast prompt kernels
            return q8_0_copy(smollm2_model_path(), models)
        if self.model == CODER_MODEL:
            return coder_model_path(models)
        return Path(self.model)


def _outcome_result(request: ChatRequest, outcome: Completion | Exception) -> ChatResult:
    if isinstance(outcome, Exception):
        error = f"{type(outcome).__name__}: {outcome}"
        return ChatResult(request.request_id, None, None, error, 0, 0, 0.0, cached=False)
    return _result(request, outcome)


def _result(request: ChatRequest, completion: Completion) -> ChatResult:
    """Result for a produced text: parsed when a schema was asked, an "invalid JSON" error otherwise
    (the raw text is kept, so that a caller can quarantine it; a cut answer says so)."""
    text = completion.text
    result = ChatResult(
        request.request_id,
        text,
        None,
        None,
        completion.prompt_tokens,
        completion.completion_tokens,
        completion.latency_s,
        cached=False,
        finish_reason=completion.finish_reason,
    )
    if request.json_schema is not None:
        try:
            result.parsed = json.loads(text)
        except json.JSONDecodeError as error:
            preview = text[:_ERROR_PREVIEW_CHARS]
            cut = " (cut at max_tokens)" if completion.finish_reason == "length" else ""
            result.error = f"invalid JSON{cut}: {error.msg} at char {error.pos} in {preview!r}"
    return result


def _with_cost(result: ChatResult, spent: tuple[int, int, float]) -> ChatResult:
    """The result carrying the tokens and time of all its attempts, so totals show the real cost."""
    result.prompt_tokens, result.completion_tokens, result.latency_s = spent
    return result


def _repeat_of(result: ChatResult, request_id: str) -> ChatResult:
    """Result for another item of the same call that asked the identical question: served, not paid."""
    parsed = json.loads(result.text) if result.parsed is not None and result.text is not None else result.parsed
    return replace(result, request_id=request_id, parsed=parsed, latency_s=0.0, cached=result.error is None)
