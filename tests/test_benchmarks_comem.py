"""Smoke test of `benchmarks.comem` at a tiny size with fake models: records have their fields and add up."""

from __future__ import annotations

from concurrent.futures import Future

import pytest

pytest.importorskip("bfcl_eval", reason="bfcl-eval (BFCL's API classes) is not installed; make install adds it")

from benchmarks.comem import _parse_args, measure, pick_tasks
from ops.agents.comem.bfcl_env import PlaySettings
from ops.common.llm import ChatRequest, ChatResult


def fake_agent(request: ChatRequest) -> ChatResult:
    return ChatResult("", '[{"name": "ls", "arguments": {}}]', None, None, len(request.messages), 4, 0.0, False)


def fake_memory(request: ChatRequest) -> Future[ChatResult]:
    future: Future[ChatResult] = Future()
    future.set_result(ChatResult("", "memory", None, None, 7, 3, 0.0, False))
    return future


def test_benchmark_records_at_a_tiny_size() -> None:
    records = measure(pick_tasks(1), ["full", "k0", "k1"], fake_agent, fake_memory, PlaySettings(max_steps=1))
    by = {r.get("condition", r["record"]): r for r in records}
    assert set(by) == {"full", "k0", "k1", "summary"}
    assert by["full"]["memory_tokens_on_path"] == by["full"]["memory_tokens_off_path"] == 0
    assert by["k0"]["memory_tokens_off_path"] == 0 and by["k0"]["memory_tokens_on_path"] > 0
    assert (
        by["summary"]["memory_tokens_on_path"] == by["k0"]["memory_tokens_on_path"] + by["k1"]["memory_tokens_on_path"]
    )
    assert set(by["summary"]["latency_ratio_full_over"]) == {"full", "k0", "k1"}
    assert _parse_args(["--tasks", "1"]).tasks == 1
