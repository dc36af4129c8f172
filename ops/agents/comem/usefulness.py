"""Memory usefulness: a summary is scored by what the agent achieves when it acts from it.

At a recorded decision point (the actions taken so far are replayed on fresh backends), the agent sees the
summary S(j) in place of blocks 0..j-1 plus the raw blocks after them, and plays to the end of the episode
with that summary fixed. The reward is half BFCL's turn pass share of the finished episode and half the
recall of the ground-truth function names of the unfinished turns among the agent's calls in those turns (a
denser signal for weak agents: a summary that keeps the request helps the agent name the right function).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ops.agents.comem.bfcl_env import PlaySettings, agent_chat, replay
from ops.agents.comem.memory import memory_messages
from ops.agents.comem.scheduler import Message, agent_view
from ops.common.llm import ChatRequest, ChatResult
from ops.tooluse.multi_turn import MultiTurnTask, parse_call

Chat = Callable[[ChatRequest], ChatResult]


def _names(calls: Sequence[str]) -> list[str]:
    names = []
    for call in calls:
        try:
            names.append(parse_call(call)[0])
        except (SyntaxError, ValueError):
            continue
    return names


def summary_reward(
    task: MultiTurnTask, replies: Sequence[str], index: int, summary: str, agent: Chat, settings: PlaySettings
) -> float:
    """Downstream success in [0, 1] of the agent acting from `summary` (= S(index)) after `replies`."""
    env, blocks = replay(task, replies, settings.max_steps)
    if env.done:
        raise ValueError(f"{task.id}: nothing left to play after {len(replies)} replies")
    turn = env.episode.turn
    act = agent_chat(agent, settings.agent_max_tokens)
    while not env.done:
        blocks.append(env.act(act(agent_view(env, blocks, index, summary))))
    score = env.score()
    unfinished = [call for turn_steps in env.episode.steps[turn:] for step in turn_steps for call in step]
    wanted = _names([call for calls in task.ground_truth[turn:] for call in calls])
    called = set(_names(unfinished))
    recall = sum(name in called for name in wanted) / len(wanted) if wanted else 1.0
    return 0.5 * score.turns_passed / max(score.turns, 1) + 0.5 * recall


def training_rows(episodes: Sequence[dict[str, Any]], tasks: dict[str, MultiTurnTask], max_steps: int) -> list[dict]:
    """One row per summary that an asynchronous or synchronous episode used: the memory prompt that produced it
    (chat, JSON), the decision point (replies before it), the prompted summary."""
    rows = []
    for episode in episodes:
        if episode["k"] < 0:
            continue
        replies, summaries = json.loads(episode["replies_json"]), json.loads(episode["summaries_json"])
        task = tasks[episode["task_id"]]
        _, blocks = replay(task, replies, max_steps)
        good = sorted(int(i) for i in summaries)
        for index in good:
            decision = index + episode["k"]
            if decision >= len(replies):
                continue
            base = max([0, *(i for i in good if i < index)])
            prompt = memory_messages(summaries.get(str(base), ""), blocks[base:index])
            rows.append(
                {
                    "task_id": task.id,
                    "condition": episode["condition"],
                    "summary_index": index,
                    "prompt": prompt,
                    "replies_json": json.dumps(replies[:decision]),
                    "prompted_summary": summaries[str(index)],
                }
            )
    return rows


def reward_function(tasks: dict[str, MultiTurnTask], agent: Chat, settings: PlaySettings) -> Callable[..., list[float]]:
    """The trainer's reward: each completion (a summary) scored by `summary_reward` at its row's decision point."""

    def memory_usefulness(
        prompts: list[Any],
        completions: list[Any],
        task_id: list[str],
        summary_index: list[int],
        replies_json: list[str],
        **_: Any,
    ) -> list[float]:
        return [
            summary_reward(tasks[t], json.loads(r), int(i), _text(c), agent, settings)
            for c, t, i, r in zip(completions, task_id, summary_index, replies_json, strict=True)
        ]

    return memory_usefulness


def _text(completion: Any) -> str:
    """A TRL completion (text, or a chat whose last message is the reply) as its text."""
    if isinstance(completion, str):
        return completion
    last: Message = completion[-1]
    return last["content"]
