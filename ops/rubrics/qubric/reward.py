"""The rubric reward for GRPO: Σ wᵢ·metᵢ / Σ wᵢ over a pair's criteria, judged by the rubric engine.

`rubric_reward(judge, settings)` returns a TRL reward callable: it reads each sample's criteria from the
`criteria` column (JSON text of `{"criterion_id", "text", "weight", "kind"}` objects, as exported by
`ops.rubrics.qubric.pairs.trl_rows`) and grades the completion on them through `grade_responses`. With
positive weights the score is Σ wᵢ·metᵢ / Σ wᵢ; a negative (must-not) criterion counts with |wᵢ| and
passes when its behaviour did not occur (`ops.rubrics.scores`). A sample with no graded criterion returns
None, which `training.rl.rewards.SafeReward` scores 0 and counts as a failure.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from ops.common.llm import LLMClient
from ops.rubrics.criteria import Criterion, criteria_frame
from ops.rubrics.qubric.judging import JudgeSettings, Response, grade_responses, response_scores

RewardFn = Callable[..., list[float | None]]


def criteria_json(criteria: Sequence[dict[str, Any]]) -> str:
    """The `criteria` column of a training row (stable key order)."""
    keys = ("criterion_id", "text", "weight", "kind")
    return json.dumps([{key: criterion[key] for key in keys} for criterion in criteria], sort_keys=True)


def _text(message: Any) -> str:
    """The text of a prompt or completion, plain or conversational (the last message's content)."""
    if isinstance(message, str):
        return message
    return str(message[-1]["content"]) if message else ""


def _question(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    users = [message["content"] for message in prompt if message.get("role") == "user"]
    return users[-1] if users else _text(prompt)


def sample_criteria(index: int, raw: str) -> list[Criterion]:
    """One sample's criteria, ids prefixed with the sample index so a batch grades them apart."""
    item = f"sample{index}"
    return [
        Criterion(f"{index}:{c['criterion_id']}", item, 0, c["text"], float(c["weight"]), category=c.get("kind", ""))
        for c in json.loads(raw)
    ]


def rubric_reward(judge: LLMClient, settings: JudgeSettings) -> RewardFn:
    """A TRL reward (`prompts`, `completions`, `criteria` columns) scoring each completion on its rubric."""

    def reward(prompts: list[Any], completions: list[Any], criteria: list[str], **_: Any) -> list[float | None]:
        rubric = {f"sample{i}": sample_criteria(i, raw) for i, raw in enumerate(criteria)}
        responses = [
            Response(f"r{i}", "policy", f"sample{i}", _question(prompt), _text(completion))
            for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True))
        ]
        grades = grade_responses(judge, responses, rubric, settings)
        scores = response_scores(grades, criteria_frame([c for rows in rubric.values() for c in rows]))
        return [scores.get(f"r{i}") for i in range(len(responses))]

    reward.__name__ = "rubric_reward"
    return reward
