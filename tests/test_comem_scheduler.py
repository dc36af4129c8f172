"""The k-step-off scheduler with fake models and controlled delays: ordering, staleness, overlap, faults."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from ops.agents.comem.scheduler import (
    MEMORY_EMPTY,
    MEMORY_TIMEOUT,
    Block,
    Condition,
    MemoryJob,
    run_episode,
    summary_target,
)
from ops.common.llm import ChatRequest, ChatResult


def _result(text: str, seconds: float = 0.0, tokens: int = 3) -> ChatResult:
    return ChatResult("", text, None, None, tokens, tokens, seconds, False)


class FakeEnv:
    """`actions` agent actions, then done; the single request arrives in block 0."""

    def __init__(self, actions: int) -> None:
        self.actions, self.taken = actions, 0

    @property
    def done(self) -> bool:
        return self.taken >= self.actions

    def prefix(self) -> Block:
        return [{"role": "system", "content": "sys"}]

    def opening(self) -> Block:
        return [{"role": "user", "content": "task"}]

    def pinned(self, first_raw_block: int) -> Block:
        return self.opening() if first_raw_block > 0 else []

    def act(self, reply: ChatResult) -> Block:
        self.taken += 1
        return [{"role": "assistant", "content": reply.text or ""}, {"role": "user", "content": f"obs{self.taken}"}]


class FakeAgent:
    """Records each view and the interval of each call; sleeps `delay`."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay, self.views, self.intervals = delay, [], []

    def __call__(self, view: list[dict[str, str]]) -> ChatResult:
        started = time.perf_counter()
        time.sleep(self.delay)
        self.views.append(view)
        self.intervals.append((started, time.perf_counter()))
        return _result(f"a{len(self.views)}", self.delay)


class FakeMemory:
    """A one-worker memory model answering `S<index>` after `delays.get(index, delay)`; `texts` overrides."""

    def __init__(self, delay: float = 0.0, delays: dict[int, float] | None = None, texts: dict[int, str] | None = None):
        self.delay, self.delays, self.texts = delay, delays or {}, texts or {}
        self.jobs: list[MemoryJob] = []
        self.intervals: dict[int, tuple[float, float]] = {}
        self.pool = ThreadPoolExecutor(1)
        self.lock = threading.Lock()

    def __call__(self, job: MemoryJob) -> Future[ChatResult]:
        self.jobs.append(job)
        return self.pool.submit(self._run, job)

    def _run(self, job: MemoryJob) -> ChatResult:
        started = time.perf_counter()
        seconds = self.delays.get(job.index, self.delay)
        time.sleep(seconds)
        self.intervals[job.index] = (started, time.perf_counter())
        return _result(self.texts.get(job.index, f"S{job.index}"), seconds)


def _play(k: int | None, actions: int = 5, agent_delay: float = 0.0, memory: FakeMemory | None = None, timeout=0.0):
    agent, memory = FakeAgent(agent_delay), memory or FakeMemory()
    condition = Condition("full", None) if k is None else Condition(f"k{k}", k)
    trace = run_episode(FakeEnv(actions), agent, memory, condition, memory_timeout_s=timeout)
    return trace, agent, memory


def test_condition_parse() -> None:
    assert Condition.parse("full").k is None
    assert Condition.parse("k0").k == 0 and Condition.parse("k4").k == 4
    with pytest.raises(ValueError, match="'k-1'"):
        Condition.parse("k-1")


@pytest.mark.parametrize(("k", "expected"), [(0, [0, 1, 2, 3, 4]), (1, [0, 0, 1, 2, 3]), (2, [0, 0, 0, 1, 2])])
def test_agent_sees_summary_k_steps_behind(k: int, expected: list[int]) -> None:
    trace, agent, _ = _play(k)
    assert [s.summary_index for s in trace.steps] == expected == [summary_target(t, k) for t in range(5)]
    for step, view in zip(trace.steps, agent.views, strict=True):
        texts = [m["content"] for m in view]
        newer = [f"S{i}" for i in range(step.summary_index + 1, 6)]
        assert not any(t.endswith(s) for t in texts for s in newer)  # never a summary newer than t-k
        if step.summary_index:
            assert texts[1].endswith(f"S{step.summary_index}") and texts[2] == "task"  # summary, pinned request
            assert step.raw_blocks == step.step - step.summary_index
            assert texts[3:] == [m["content"] for b in trace.blocks[step.summary_index : step.step] for m in b]


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_summaries_are_computed_in_order_from_the_previous_one(k: int) -> None:
    trace, _, memory = _play(k, actions=6)
    indices = [job.index for job in memory.jobs]
    assert indices == sorted(indices) == list(range(1, len(indices) + 1))
    for job in memory.jobs:
        assert job.base_index == job.index - 1 and job.base_summary == ("" if job.index == 1 else f"S{job.index - 1}")
        assert len(job.blocks) == 1 and job.blocks[0] == tuple(trace.blocks[job.index - 1])


def test_full_history_never_calls_the_memory_model() -> None:
    trace, agent, memory = _play(None)
    assert memory.jobs == [] and {s.summary_index for s in trace.steps} == {0}
    assert [m["content"] for m in agent.views[-1]][1:] == [m["content"] for b in trace.blocks[:-1] for m in b]


def test_async_summary_overlaps_the_agent_call() -> None:
    memory = FakeMemory(delay=0.05)
    trace, agent, _ = _play(1, actions=5, agent_delay=0.1, memory=memory)
    for index, (start, end) in memory.intervals.items():
        agent_start, agent_end = agent.intervals[index]  # S(i) is submitted right before action i+1
        assert start < agent_end and agent_start < end
    assert all(s.memory_tokens_on_path == 0 for s in trace.steps[2:])


def test_sync_summary_is_on_the_critical_path() -> None:
    memory = FakeMemory(delay=0.05)
    trace, agent, _ = _play(0, actions=4, memory=memory)
    for index, (_, end) in memory.intervals.items():
        assert end <= agent.intervals[index][0]  # S(t) finished before the agent acted on it
    assert all(s.memory_wait_s >= 0.04 and s.memory_tokens_on_path == 6 for s in trace.steps[1:])


def test_empty_summary_keeps_the_last_good_one() -> None:
    trace, _, memory = _play(1, actions=6, memory=FakeMemory(texts={2: "  "}))
    assert trace.faults[MEMORY_EMPTY] == 1 and 2 not in trace.summaries
    assert [s.summary_index for s in trace.steps] == [0, 0, 1, 1, 3, 4]
    assert memory.jobs[2].index == 3 and memory.jobs[2].base_index == 1 and len(memory.jobs[2].blocks) == 2


def test_timed_out_summary_is_counted_and_the_agent_goes_on() -> None:
    memory = FakeMemory(delays={2: 0.5})
    trace, _, _ = _play(1, actions=5, memory=memory, timeout=0.05)
    assert trace.faults[MEMORY_TIMEOUT] == 1
    assert [s.summary_index for s in trace.steps] == [0, 0, 1, 1, 1]  # last good summary, more raw blocks
    assert trace.steps[3].memory_wait_s < 0.4 and trace.steps[4].memory_wait_s == 0.0
    assert [job.index for job in memory.jobs] == [1, 2]  # nothing queued behind the slow one
    assert trace.summaries[2] == "S2"  # it finished late and is kept, never half-used


def test_late_summary_is_used_once_it_arrives() -> None:
    memory = FakeMemory(delays={2: 0.3})
    trace, _, _ = _play(1, actions=6, agent_delay=0.2, memory=memory, timeout=0.02)
    assert trace.faults[MEMORY_TIMEOUT] == 1
    assert [s.summary_index for s in trace.steps][:5] == [0, 0, 1, 1, 2]


def test_engine_failure_is_a_result_not_an_exception() -> None:
    from ops.agents.comem import engine

    result = engine._complete(ChatRequest(({"role": "user", "content": "hi"},), request_id="r"))
    assert result.error is not None and result.text is None and result.request_id == "r"
