"""BFCL multi-turn tasks as the scheduler's environment, played by two model processes and scored by execution.

The environment is `tooluse`'s: the episode, its replies-to-calls step (`advance`) and BFCL's per-turn
scorer (`score_multi_turn`, the success checker) are reused as they are. The current user request is pinned
next to the summary when it arrived in a summarized block, so the agent never loses the task it serves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from ops.agents.comem.memory import memory_request
from ops.agents.comem.scheduler import Block, Condition, EpisodeTrace, MemoryJob, Message, run_episode
from ops.common.llm import ChatRequest, ChatResult
from ops.tooluse.multi_turn import MultiTurnScore, MultiTurnTask, score_multi_turn
from ops.tooluse.multi_turn_policy import advance, start_episode

Chat = Callable[[ChatRequest], ChatResult]
Submit = Callable[[ChatRequest], Future[ChatResult]]


@dataclass(frozen=True)
class PlaySettings:
    """Replies per user turn, tokens per agent reply and per summary, and how long the agent waits for one."""

    max_steps: int = 2
    agent_max_tokens: int = 48
    memory_max_tokens: int = 48
    memory_timeout_s: float = 30.0


class BfclStepEnv:
    """One BFCL multi-turn episode, one agent reply at a time."""

    def __init__(self, task: MultiTurnTask, max_steps: int) -> None:
        self.episode = start_episode(task)
        self.max_steps = max_steps
        self._acted = 0
        self._arrived = {0: 0}  # user turn -> block it arrived in

    @property
    def done(self) -> bool:
        """True once every user turn is answered."""
        return self.episode.done

    def prefix(self) -> Block:
        """The system prompt with the tool lines."""
        return self.episode.messages[:1]

    def opening(self) -> Block:
        """The first user turn."""
        return list(self.episode.messages[1:])

    def pinned(self, first_raw_block: int) -> Block:
        """The current user turn when it is only inside the summary."""
        turn = self.episode.turn
        if self.done or self._arrived[turn] >= first_raw_block:
            return []
        return list(self.episode.task.turns[turn])

    def act(self, reply: ChatResult) -> Block:
        """Run the reply's calls (or close the turn) and return the messages it produced."""
        before, turn = len(self.episode.messages), self.episode.turn
        advance(self.episode, reply, self.max_steps)
        self._acted += 1
        if self.episode.turn != turn and not self.done:
            self._arrived[self.episode.turn] = self._acted
        return self.episode.messages[before:]

    def score(self) -> MultiTurnScore:
        """BFCL's execution verdict on the calls made so far."""
        return score_multi_turn(self.episode.task, self.episode.steps)


def agent_chat(chat: Chat, max_tokens: int) -> Callable[[list[Message]], ChatResult]:
    """The scheduler's agent: one greedy reply to the view."""
    return lambda view: chat(ChatRequest(tuple(view), max_tokens=max_tokens))


def memory_submit(submit: Submit, max_tokens: int) -> Callable[[MemoryJob], Future[ChatResult]]:
    """The scheduler's memory model: one summary request per job, answered in the background."""
    return lambda job: submit(memory_request(job, max_tokens))


def play_task(
    task: MultiTurnTask, condition: Condition, agent: Chat, memory: Submit, settings: PlaySettings
) -> tuple[EpisodeTrace, MultiTurnScore]:
    """Play one task under one memory condition and score it by execution."""
    env = BfclStepEnv(task, settings.max_steps)
    trace = run_episode(
        env,
        agent_chat(agent, settings.agent_max_tokens),
        memory_submit(memory, settings.memory_max_tokens),
        condition,
        settings.memory_timeout_s,
    )
    return trace, env.score()


def replay(task: MultiTurnTask, replies: Sequence[str], max_steps: int) -> tuple[BfclStepEnv, list[Block]]:
    """The environment and blocks after re-applying recorded replies (the backends are deterministic)."""
    env = BfclStepEnv(task, max_steps)
    blocks = [env.opening()]
    for text in replies:
        blocks.append(env.act(ChatResult("", text, None, None, 0, 0, 0.0, False)))
    return env, blocks


def opening_prompt(task: MultiTurnTask) -> tuple[Message, ...]:
    """The first prompt every condition sends for a task (system prompt with the tools, first user turn)."""
    return tuple(start_episode(task).messages)
