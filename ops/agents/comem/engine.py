"""A llama.cpp model in its own single-threaded process, so the agent and the memory model really run at once.

On a 2-core machine two such processes (agent, memory) overlap for real; the caller's process only
orchestrates. Each worker loads its GGUF once (`spawn` start, so no llama.cpp state is forked) and keeps its
KV cache between requests (llama.cpp reuses the longest common prompt prefix). A failing request comes back
as a `ChatResult` with `error`, never as an exception.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from ops.common.llm import ChatRequest, ChatResult

_LLAMA: Any = None


def _load(model_path: str, n_ctx: int, n_threads: int) -> None:
    global _LLAMA
    import llama_cpp

    _LLAMA = llama_cpp.Llama(
        model_path=model_path,
        n_ctx=n_ctx,
        n_threads=n_threads,
        n_threads_batch=n_threads,
        flash_attn=True,  # as resources.llm_backends.LlamaCppBackend
        verbose=False,
    )


def _complete(request: ChatRequest) -> ChatResult:
    started = time.perf_counter()
    try:
        response = _LLAMA.create_chat_completion(
            messages=[dict(m) for m in request.messages],
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            seed=request.seed,
        )
    except Exception as error:
        return ChatResult(request.request_id, None, None, f"{type(error).__name__}: {error}", 0, 0, 0.0, False)
    usage, choice = response["usage"], response["choices"][0]
    return ChatResult(
        request.request_id,
        choice["message"]["content"] or "",
        None,
        None,
        usage["prompt_tokens"],
        usage["completion_tokens"],
        time.perf_counter() - started,
        False,
        choice.get("finish_reason"),
    )


class ModelProcess:
    """One GGUF model served by one worker process with `n_threads` threads; use as a context manager."""

    def __init__(self, model_path: Path, n_ctx: int = 4096, n_threads: int = 1) -> None:
        self.model_id = Path(model_path).name
        self._pool = ProcessPoolExecutor(
            max_workers=1,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load,
            initargs=(str(model_path), n_ctx, n_threads),
        )

    def submit(self, request: ChatRequest) -> Future[ChatResult]:
        """Queue one request; the future resolves when the worker has answered it."""
        return self._pool.submit(_complete, request)

    def warm(self, messages: tuple[dict[str, str], ...] = ({"role": "user", "content": "hi"},)) -> Future[ChatResult]:
        """A one-token request: starts the worker and loads the model, or (given a prompt) leaves its prefix in
        the KV cache, so no measured call pays for either."""
        return self.submit(ChatRequest(messages, max_tokens=1))

    def chat(self, request: ChatRequest) -> ChatResult:
        """Answer one request, waiting for it."""
        return self.submit(request).result()

    def close(self) -> None:
        """Stop the worker (queued requests are cancelled)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ModelProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def warm_up(processes: list[ModelProcess], messages: tuple[dict[str, str], ...] | None = None) -> None:
    """Load every model at once (or cache a prompt prefix in each) and wait until all are ready, so start-up
    stays out of the measurements."""
    for future in [process.warm(*([messages] if messages else [])) for process in processes]:
        future.result()
