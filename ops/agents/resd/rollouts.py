"""RESD's tasks and rollouts: tool-use prompts from `tool_rl_environment`, scored by the BFCL-style reward.

The verifier's feedback is the reward's own outcome and detail (`ops.tooluse.reward.score_output`), e.g.
`missing_required: missing required parameter 'unit'`: that is what a reflection diagnoses. Each task is
answered by the student alone and, once a playbook exists, by the student with the playbook in context; the
pair tags the playbook's bullets helpful or harmful.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl

from ops.agents.resd.playbook import Playbook, ranked, render_bullets
from ops.common.text import sha256_hex
from ops.tooluse.bfcl import parse_function_spec, parse_ground_truth
from ops.tooluse.reward import RewardResult, score_output
from ops.tooluse.training_data import grpo_rows, shortest_rows

STUDENT = "student"
WITH_PLAYBOOK = "playbook"
ARMS = (STUDENT, WITH_PLAYBOOK)
ROLLOUT_SCHEMA: dict[str, pl.DataType] = {
    "rollout_id": pl.String,
    "task_id": pl.String,
    "round": pl.Int64,
    "arm": pl.String,
    "prompt_json": pl.String,
    "oracle": pl.String,
    "completion": pl.String,
    "reward": pl.Float64,
    "outcome": pl.String,
    "feedback": pl.String,
    "failed": pl.Boolean,
    "playbook_version": pl.String,
    "bullet_ids": pl.String,
}


def split_tasks(
    environment: Sequence[Mapping[str, Any]], train: int, evaluate: int, max_prompt_chars: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training and held-out evaluation tasks: the AST-rewarded lines, shortest prompts first, disjoint."""
    rows = grpo_rows(environment, {line["id"] for line in environment})
    ordered = shortest_rows(rows, train + evaluate, max_prompt_chars)
    if len(ordered) <= train:
        raise ValueError(
            f"{len(ordered)} tool-use tasks with prompts of at most {max_prompt_chars or 'any'} characters: "
            f"need more than the {train} training tasks to hold any out"
        )
    return ordered[:train], ordered[train : train + evaluate]


def verify(completion: str, oracle: str) -> RewardResult:
    """Score one completion against its oracle (JSON text): score, outcome code and the detail message."""
    data = json.loads(oracle)
    expected = parse_ground_truth(data.get("ground_truth") or [])
    functions = tuple(parse_function_spec(f) for f in data.get("functions") or [])
    return score_output(completion, expected, functions)


def rollout_id(task_id: str, round_number: int, arm: str, playbook_version: str) -> str:
    """Stable id of one rollout (the reflection and the tags it causes are keyed by it)."""
    return "r-" + sha256_hex(f"{task_id}|{round_number}|{arm}|{playbook_version}")[:12]


def score_rollouts(
    tasks: Sequence[Mapping[str, Any]],
    completions: Sequence[str],
    round_number: int,
    arm: str,
    playbook_version: str,
    bullet_ids: Sequence[str] = (),
) -> pl.DataFrame:
    """One row per task: the completion, its reward, outcome and feedback, whether it failed, and the ids of the
    playbook bullets that were in its context."""
    rows = []
    for task, completion in zip(tasks, completions, strict=True):
        result = verify(completion, task["oracle"])
        rows.append(
            {
                "rollout_id": rollout_id(task["id"], round_number, arm, playbook_version),
                "task_id": task["id"],
                "round": round_number,
                "arm": arm,
                "prompt_json": json.dumps(task["prompt"], ensure_ascii=False),
                "oracle": task["oracle"],
                "completion": completion,
                "reward": float(result.score),
                "outcome": str(result.outcome),
                "feedback": f"{result.outcome}: {result.detail}",
                "failed": result.score < 1.0,
                "playbook_version": playbook_version,
                "bullet_ids": ",".join(bullet_ids),
            }
        )
    return pl.DataFrame(rows, schema=ROLLOUT_SCHEMA)


def failed_student_rollouts(rollouts: pl.DataFrame) -> pl.DataFrame:
    """The student's own failed rollouts (what reflections are written about)."""
    return rollouts.filter((pl.col("arm") == STUDENT) & pl.col("failed"))


def with_context(prompt: str | list[dict[str, str]], context: str) -> str | list[dict[str, str]]:
    """A prompt with context after it: after the text, or after the last user message of a chat (the same
    composition as the self-teacher's, `training.rl.self_distillation.teacher_prompt`)."""
    if not context:
        return prompt
    if isinstance(prompt, str):
        return f"{prompt}\n\n{context}"
    *earlier, last = [dict(message) for message in prompt]
    return [*earlier, {**last, "content": f"{last['content']}\n\n{context}"}]


def rollout_round(
    tasks: Sequence[Mapping[str, Any]],
    generate: Callable[[list[Any]], list[str]],
    playbook: Playbook,
    round_number: int,
    playbook_version: str,
    arms: Sequence[str] = ARMS,
) -> pl.DataFrame:
    """The student's rollouts on `tasks` alone and, when the playbook has bullets, with it in context; scored."""
    bullets = ranked(playbook)
    context = render_bullets(bullets)
    prompts = {STUDENT: [task["prompt"] for task in tasks]}
    if bullets and WITH_PLAYBOOK in arms:
        prompts[WITH_PLAYBOOK] = [with_context(task["prompt"], context) for task in tasks]
    completions = generate([prompt for arm in prompts for prompt in prompts[arm]])
    frames = []
    for i, arm in enumerate(prompts):
        mine = completions[i * len(tasks) : (i + 1) * len(tasks)]
        ids = [b.id for b in bullets] if arm == WITH_PLAYBOOK else []
        frames.append(score_rollouts(tasks, mine, round_number, arm, playbook_version, ids))
    return pl.concat(frames)
