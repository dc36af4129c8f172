"""Engines that actually produce chat completions: llama.cpp (local CPU), an OpenAI-compatible server,
and vLLM in-process. Each is imported lazily, so the CPU profile never needs `openai` or `vllm`.

A backend runs a batch and yields `(position, Completion | Exception)` for each request as soon as it
finishes, in any order. Transport retries (a server that times out, drops the connection, answers 429
or 5xx) belong to the backend that has a transport: the OpenAI client's own retries, with exponential
backoff and jitter. Caching, JSON checks, the semantic retry of invalid answers and accounting live in
`resources/llm.py`, once.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ops.common.llm import ChatRequest
from ops.common.threads import free_threads

BACKENDS = ("llamacpp", "openai", "vllm")


@dataclass(frozen=True)
class Completion:
    """Raw output of one request, before any JSON check."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str | None = None


Outcome = tuple[int, Completion | Exception]


class ChatBackend(Protocol):
    """An engine the cached client can drive."""

    name: str

    @property
    def model_id(self) -> str:
        """Stable model name, part of every cache key."""
        ...

    def run(self, requests: Sequence[ChatRequest]) -> Iterator[Outcome]:
        """Yield one `(position in requests, outcome)` per request as each finishes.

        An item's failure is yielded as its exception; only a broken engine (e.g. the model does not
        load) raises.
        """
        ...

    @property
    def context_window(self) -> int:
        """Tokens a prompt plus its completion may take on this engine."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text under the model's own tokenizer (no special tokens added)."""
        ...


class HuggingFaceTokenizer:
    """Token counts with a Hugging Face tokenizer (the served model's, by id or folder), loaded lazily.

    Used by the vLLM and OpenAI-compatible backends; `transformers` comes with sentence-transformers.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._tokenizer: Any = None

    def count(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, without special tokens."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.name)
        return [len(ids) for ids in self._tokenizer(list(texts), add_special_tokens=False)["input_ids"]]


class LlamaCppBackend:
    """A GGUF model run by llama-cpp-python on the CPU, one request after the other.

    Consecutive prompts that share a prefix (the usual case: same system prompt and instructions,
    different document) reuse its KV cache: `Llama.generate` keeps the longest common token prefix of
    the previous call and evaluates only the rest, so no extra state cache is configured. A JSON
    schema is compiled once into a GBNF grammar; an unsupported schema fails loudly instead of
    falling back to unconstrained JSON as `response_format` would.
    """

    name = "llamacpp"

    def __init__(self, model_path: Path, n_ctx: int = 2048, n_threads: int = 0) -> None:
        self.model_path = Path(model_path)
        self.n_ctx = n_ctx
        self.fixed_threads = n_threads  # 0: the free cores, decided again before every request
        self.n_threads = n_threads or free_threads()
        self._llama: Any = None
        self._vocab: Any = None
        self._grammars: dict[str, Any] = {}

    @property
    def model_id(self) -> str:
        """The GGUF file name, so the cache survives moving the venv."""
        return self.model_path.name

    def run(self, requests: Sequence[ChatRequest]) -> Iterator[Outcome]:
        """Complete the requests sequentially (one llama.cpp context, all cores per request)."""
        llama = self._load()
        for position, request in enumerate(requests):
            try:
                outcome: Completion | Exception = self._complete(llama, request)
            except Exception as error:
                outcome = error
            yield position, outcome

    def _complete(self, llama: Any, request: ChatRequest) -> Completion:
        started = time.perf_counter()
        self._use_free_cores(llama)
        response = llama.create_chat_completion(
            messages=[dict(message) for message in request.messages],
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            seed=request.seed,
            grammar=self._grammar(request.json_schema),
        )
        usage, choice = response["usage"], response["choices"][0]
        return Completion(
            text=choice["message"]["content"] or "",
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            latency_s=time.perf_counter() - started,
            finish_reason=choice.get("finish_reason"),
        )

    def _use_free_cores(self, llama: Any) -> None:
        """Re-decide the thread count before a request (unless fixed): the machine's load changes between steps."""
        import llama_cpp

        threads = self.fixed_threads or free_threads()
        if threads != self.n_threads:
            llama_cpp.llama_set_n_threads(llama.ctx, threads, threads)
            self.n_threads = threads

    def _load(self) -> Any:
        if self._llama is None:
            import llama_cpp

            if not self.model_path.is_file():
                raise FileNotFoundError(f"GGUF model not found: {self.model_path}")
            self._llama = llama_cpp.Llama(
                model_path=str(self.model_path),
                n_ctx=self.n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                flash_attn=True,  # prompts 20 % and generation 15 % faster on the CPU here (docs/decisions.md)
                verbose=False,
            )
        return self._llama

    @property
    def context_window(self) -> int:
        """The configured context, or the model's training context when that is smaller."""
        metadata = self._vocabulary().metadata
        trained = int(metadata.get(f"{metadata.get('general.architecture', 'llama')}.context_length", self.n_ctx))
        return min(self.n_ctx, trained)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text under the GGUF's own tokenizer (a vocabulary-only load, no weights)."""
        vocabulary = self._vocabulary()
        return [len(vocabulary.tokenize(text.encode("utf-8"), add_bos=False, special=False)) for text in texts]

    def _vocabulary(self) -> Any:
        if self._llama is not None:
            return self._llama
        if self._vocab is None:
            import llama_cpp

            if not self.model_path.is_file():
                raise FileNotFoundError(f"GGUF model not found: {self.model_path}")
            self._vocab = llama_cpp.Llama(model_path=str(self.model_path), vocab_only=True, verbose=False)
        return self._vocab

    def _grammar(self, schema: dict[str, Any] | None) -> Any:
        if schema is None:
            return None
        text = json.dumps(schema, sort_keys=True)
        if text not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[text] = LlamaGrammar.from_json_schema(text, verbose=False)
        return self._grammars[text]


class OpenAICompatibleBackend:
    """Any server speaking the OpenAI chat API (OpenAI itself, `vllm serve`, ...), requests in parallel.

    The API key is read from the environment variable named `api_key_env` when the client is first
    needed; it is never stored in config, logged or shown in `repr`. `transport_retries` is the OpenAI
    client's own `max_retries`: connection errors, timeouts, 408, 409, 429 and 5xx are resent with
    exponential backoff and jitter (honouring `Retry-After`); a 4xx answer is final.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str = "",
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        concurrency: int = 8,
        n_ctx: int = 32768,
        tokenizer: str = "",
        transport_retries: int = 3,
    ) -> None:
        if not model:
            raise ValueError("the openai backend needs `model` (the served model name)")
        self.model = model
        self.n_ctx = n_ctx
        self._tokenizer = HuggingFaceTokenizer(tokenizer or model)
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout_s = timeout_s
        self.concurrency = max(1, concurrency)
        self.transport_retries = max(0, transport_retries)
        self._client: Any = None

    def __repr__(self) -> str:
        return f"OpenAICompatibleBackend(model={self.model!r}, base_url={self.base_url!r})"

    @property
    def model_id(self) -> str:
        """The served model name."""
        return self.model

    @property
    def context_window(self) -> int:
        """The served context length, as configured (the server is not asked)."""
        return self.n_ctx

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens under the served model's Hugging Face tokenizer (`tokenizer`, default the model name)."""
        return self._tokenizer.count(texts)

    def run(self, requests: Sequence[ChatRequest]) -> Iterator[Outcome]:
        """Send all requests at once through a pool of `concurrency` threads; yield as they return."""
        client = self._connect()
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="llm") as pool:
            futures = {pool.submit(self._complete, client, request): pos for pos, request in enumerate(requests)}
            for future in as_completed(futures):
                try:
                    outcome: Completion | Exception = future.result()
                except Exception as error:
                    outcome = error
                yield futures[future], outcome

    def _complete(self, client: Any, request: ChatRequest) -> Completion:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(message) for message in request.messages],
            "max_completion_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        }
        if request.json_schema is not None:
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": request.json_schema, "strict": True},
            }
        started = time.perf_counter()
        response = client.chat.completions.create(**arguments)
        usage, choice = response.usage, response.choices[0]
        return Completion(
            text=choice.message.content or "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=time.perf_counter() - started,
            finish_reason=choice.finish_reason,
        )

    def _connect(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError as error:
                raise ImportError("the openai backend needs the `openai` package: pip install openai") from error
            api_key = os.environ.get(self.api_key_env)
            if not api_key:
                raise RuntimeError(
                    f"environment variable {self.api_key_env} is not set; set it to the API key "
                    "(any non-empty value for a server without auth, e.g. `vllm serve`)"
                )
            self._client = openai.OpenAI(
                api_key=api_key,
                base_url=self.base_url or None,
                timeout=self.timeout_s,
                max_retries=self.transport_retries,
            )
        return self._client


class VLLMBackend:
    """vLLM in-process on a GPU: each batch goes to the engine in one `LLM.chat` call."""

    name = "vllm"

    def __init__(self, model: str, n_ctx: int = 2048) -> None:
        if not model:
            raise ValueError("the vllm backend needs `model` (a Hugging Face model id or local folder)")
        self.model = model
        self.n_ctx = n_ctx
        self._engine: Any = None
        self._tokenizer = HuggingFaceTokenizer(model)

    @property
    def model_id(self) -> str:
        """The Hugging Face model id (or folder) vLLM loads."""
        return self.model

    @property
    def context_window(self) -> int:
        """`max_model_len` the engine is started with."""
        return self.n_ctx

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens under the model's Hugging Face tokenizer."""
        return self._tokenizer.count(texts)

    def run(self, requests: Sequence[ChatRequest]) -> Iterator[Outcome]:
        """Generate the whole batch in one engine call; its wall time is shared out evenly."""
        vllm = _import_vllm()
        engine = self._load(vllm)
        started = time.perf_counter()
        try:
            outputs = engine.chat(
                [[dict(message) for message in request.messages] for request in requests],
                sampling_params=[_sampling_params(vllm, request) for request in requests],
                use_tqdm=False,
            )
        except Exception as error:
            for position in range(len(requests)):
                yield position, error
            return
        latency = (time.perf_counter() - started) / max(1, len(requests))
        for position, output in enumerate(outputs):
            generated = output.outputs[0]
            yield (
                position,
                Completion(
                    text=generated.text,
                    prompt_tokens=len(output.prompt_token_ids or ()),
                    completion_tokens=len(generated.token_ids or ()),
                    latency_s=latency,
                    finish_reason=generated.finish_reason,
                ),
            )

    def _load(self, vllm: Any) -> Any:
        if self._engine is None:
            self._engine = vllm.LLM(model=self.model, max_model_len=self.n_ctx)
        return self._engine


def _import_vllm() -> Any:
    try:
        return importlib.import_module("vllm")
    except ImportError as error:
        raise ImportError(
            "the vllm backend needs vLLM on a GPU machine: pip install -e '.[gpu]' "
            "(or use backend='llamacpp' on CPU, backend='openai' against `vllm serve`)"
        ) from error


def _sampling_params(vllm: Any, request: ChatRequest) -> Any:
    """SamplingParams for one request; the JSON schema goes through whichever API this vLLM has.

    vLLM >= 0.12 takes `structured_outputs=StructuredOutputsParams(json=...)`; older releases took
    `guided_decoding=GuidedDecodingParams(json=...)`.
    """
    arguments: dict[str, Any] = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "seed": request.seed,
    }
    if request.json_schema is not None:
        sampling = importlib.import_module("vllm.sampling_params")
        if hasattr(sampling, "StructuredOutputsParams"):
            arguments["structured_outputs"] = sampling.StructuredOutputsParams(json=request.json_schema)
        else:
            arguments["guided_decoding"] = sampling.GuidedDecodingParams(json=request.json_schema)
    return vllm.SamplingParams(**arguments)
