"""CoMem on BFCL multi-turn with fake models: the success checker, pinned requests, replay, atomic resume."""

from __future__ import annotations

import json
from concurrent.futures import Future
from pathlib import Path

import pytest

pytest.importorskip("bfcl_eval", reason="bfcl-eval (BFCL's API classes) is not installed; make install adds it")

from ops.agents.comem.bfcl_env import BfclStepEnv, PlaySettings, play_task, replay
from ops.agents.comem.episodes import CRASHED, EpisodeStore, episode_frame, play_all, step_frame
from ops.agents.comem.scheduler import Condition
from ops.agents.comem.usefulness import reward_function, summary_reward, training_rows
from ops.common.llm import ChatRequest, ChatResult
from ops.tooluse.multi_turn import MultiTurnTask, load_multi_turn, parse_call

BFCL_DIR = Path(__file__).resolve().parent.parent / "samples" / "bfcl_v3"
SETTINGS = PlaySettings(max_steps=2, agent_max_tokens=16, memory_max_tokens=16, memory_timeout_s=5.0)


@pytest.fixture(scope="module")
def tasks() -> list[MultiTurnTask]:
    wanted = {"multi_turn_base_3", "multi_turn_base_9"}
    return [t for t in load_multi_turn(BFCL_DIR) if t.id in wanted]


def _ok(text: str, tokens: int = 5) -> ChatResult:
    return ChatResult("", text, None, None, tokens, 2, 0.0, False)


class FakeOracle:
    """Answers each user turn with its ground-truth calls (JSON), then closes the turn in plain text."""

    def __init__(self, task: MultiTurnTask, wrong: bool = False) -> None:
        self.turn_of = {json.dumps(turn): i for i, turn in enumerate(task.turns)}
        self.task, self.wrong, self.views = task, wrong, []

    def __call__(self, request: ChatRequest) -> ChatResult:
        self.views.append(request.messages)
        last = request.messages[-1]
        turn = self.turn_of.get(json.dumps([last]))
        if turn is None or not self.task.ground_truth[turn]:
            return _ok("Done.")
        calls = [parse_call(c) for c in self.task.ground_truth[turn]]
        if self.wrong:
            return _ok('[{"name": "ls", "arguments": {}}]')
        return _ok(json.dumps([{"name": name, "arguments": kwargs} for name, _, kwargs in calls]))


def fake_memory(request: ChatRequest) -> Future[ChatResult]:
    future: Future[ChatResult] = Future()
    future.set_result(_ok(f"memory of {len(request.messages[1]['content'])} chars"))
    return future


@pytest.mark.parametrize("condition", ["full", "k0", "k1", "k2"])
def test_success_checker_passes_the_oracle_under_every_condition(tasks, condition: str) -> None:
    for task in tasks:
        trace, score = play_task(task, Condition.parse(condition), FakeOracle(task), fake_memory, SETTINGS)
        assert score.valid and score.turns_passed == score.turns == len(task.turns), score.detail
        assert len(trace.steps) == len(trace.replies) == len(trace.blocks) - 1


def test_success_checker_fails_wrong_calls(tasks) -> None:
    task = tasks[0]
    _, score = play_task(task, Condition.parse("k1"), FakeOracle(task, wrong=True), fake_memory, SETTINGS)
    assert not score.valid and score.error is not None and score.turns_passed < score.turns


def test_request_is_pinned_when_only_the_summary_holds_it(tasks) -> None:
    task = tasks[0]
    agent = FakeOracle(task)
    play_task(task, Condition.parse("k0"), agent, fake_memory, SETTINGS)
    with_summary = [v for v in agent.views if any(m["content"].startswith("Memory of") for m in v)]
    assert with_summary and all(any(m in v for m in task.turns[0] + task.turns[1]) for v in with_summary)


def test_replay_rebuilds_the_recorded_blocks(tasks) -> None:
    task = tasks[0]
    trace, _ = play_task(task, Condition.parse("k1"), FakeOracle(task), fake_memory, SETTINGS)
    env, blocks = replay(task, trace.replies, SETTINGS.max_steps)
    assert blocks == trace.blocks and env.done and env.score().valid
    assert isinstance(BfclStepEnv(task, 2).prefix()[0]["content"], str)


def test_store_resumes_and_never_reads_half_written_episodes(tasks, tmp_path: Path) -> None:
    conditions = [Condition.parse(c) for c in ("full", "k1")]
    played: list[tuple[str, str]] = []

    def play(task: MultiTurnTask, condition: Condition):
        played.append((task.id, condition.name))
        return play_task(task, condition, FakeOracle(task), fake_memory, SETTINGS)

    store, prepared = EpisodeStore(tmp_path), []
    first, resumed = play_all(tasks, conditions, play, store, prepared.append)
    assert resumed == 0 and len(played) == 4 and not list(tmp_path.glob(".episode.*"))
    assert prepared == tasks  # once per task, before its first episode
    store.path("k1", tasks[1].id).unlink()  # as if killed while playing it
    (tmp_path / ".episode.abc.part").write_text('{"condition": "k1", "ta')  # a write the kill interrupted
    played.clear()
    prepared.clear()
    second, resumed = play_all(tasks, conditions, play, store, prepared.append)
    assert resumed == 3 and played == [(tasks[1].id, "k1")] and prepared == [tasks[1]]
    assert (
        episode_frame(second)
        .drop("wall_s", "critical_s", "agent_s", "memory_wait_s", "memory_s", "memory_hidden_s", "drain_s")
        .equals(
            episode_frame(first).drop(
                "wall_s", "critical_s", "agent_s", "memory_wait_s", "memory_s", "memory_hidden_s", "drain_s"
            )
        )
    )


def test_crashing_episode_is_recorded_failed(tasks, tmp_path: Path) -> None:
    def play(task: MultiTurnTask, condition: Condition):
        raise RuntimeError("memory process died")

    records, _ = play_all(tasks[:1], [Condition.parse("k2")], play, EpisodeStore(tmp_path))
    frame = episode_frame(records)
    assert frame["error"].to_list() == [CRASHED] and not frame["valid"][0] and "died" in frame["detail"][0]
    assert step_frame(records).height == 0


def test_tables_add_up(tasks, tmp_path: Path) -> None:
    records, _ = play_all(
        tasks,
        [Condition.parse("k0")],
        lambda t, c: play_task(t, c, FakeOracle(t), fake_memory, SETTINGS),
        EpisodeStore(tmp_path),
    )
    episodes, steps = episode_frame(records), step_frame(records)
    assert episodes["steps"].sum() == steps.height
    assert episodes["agent_prompt_tokens"].sum() == steps["agent_prompt_tokens"].sum()
    on = episodes["memory_tokens_on_path"] + episodes["memory_tokens_off_path"]
    assert (on == episodes["memory_prompt_tokens"] + episodes["memory_completion_tokens"]).all()
    assert episodes["memory_tokens_off_path"].sum() == 0  # synchronous: every summary is waited for


def _done_agent(request: ChatRequest) -> ChatResult:
    return _ok("Done.")


def test_summary_reward_scores_what_the_agent_does_from_the_summary(tasks) -> None:
    task = tasks[0]
    trace, _ = play_task(task, Condition.parse("k0"), FakeOracle(task), fake_memory, SETTINGS)
    replies = trace.replies[:1]
    assert summary_reward(task, replies, 1, "the user wants ...", FakeOracle(task), SETTINGS) == 1.0
    lazy = summary_reward(task, replies, 1, "the user wants ...", _done_agent, SETTINGS)
    assert 0.0 <= lazy < 1.0
    with pytest.raises(ValueError, match="nothing left"):
        summary_reward(task, trace.replies, 1, "s", _done_agent, SETTINGS)


def test_training_rows_are_the_summaries_episodes_acted_on(tasks, tmp_path: Path) -> None:
    conditions = [Condition.parse(c) for c in ("full", "k0", "k1")]
    records, _ = play_all(
        tasks,
        conditions,
        lambda t, c: play_task(t, c, FakeOracle(t), fake_memory, SETTINGS),
        EpisodeStore(tmp_path),
    )
    rows = training_rows(episode_frame(records).to_dicts(), {t.id: t for t in tasks}, SETTINGS.max_steps)
    assert rows and {r["condition"] for r in rows} <= {"k0", "k1"}
    for row in rows:
        k = 0 if row["condition"] == "k0" else 1
        assert len(json.loads(row["replies_json"])) == row["summary_index"] + k
        assert row["prompt"][0]["role"] == "system" and row["prompted_summary"].startswith("memory of")
    reward = reward_function({t.id: t for t in tasks}, _done_agent, SETTINGS)
    scores = reward(
        prompts=[r["prompt"] for r in rows],
        completions=[[{"role": "assistant", "content": "m"}] for _ in rows],
        task_id=[r["task_id"] for r in rows],
        summary_index=[r["summary_index"] for r in rows],
        replies_json=[r["replies_json"] for r in rows],
    )
    assert len(scores) == len(rows) and all(0.0 <= s <= 1.0 for s in scores)
