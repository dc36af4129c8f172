"""Rollouts of the base policy on every translated task, three ways, and the per-task summary.

Per task and sample: `direct` (no tool offered), `translated` (the policy called `translate` and got
the tool's English text, then answers) and `free` (the tool is offered and the policy decides: the
"let the model choose" baseline, whose overconfidence the paper reports). A free-mode call is scored
with the same sample's translated answer. English tasks are rolled out directly, which measures the
model's English accuracy: the figure that says whether translating can help at all.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import polars as pl

from ops.common.llm import ChatRequest, ChatResult
from ops.translation.cipher import answer_matches, last_number
from ops.translation.reward import (
    ANSWER_TOKENS,
    after_tool_messages,
    direct_messages,
    parse_decision,
    policy_messages,
)

DIRECT, TRANSLATED, FREE = "direct", "translated", "free"
MODES = (DIRECT, TRANSLATED, FREE)
ROLLOUT_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "language": pl.String(),
    "tier": pl.String(),
    "mode": pl.String(),
    "sample": pl.Int64(),
    "output": pl.String(),
    "error": pl.String(),
    "called": pl.Boolean(),
    "correct": pl.Float64(),
}
SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "item_id": pl.String(),
    "language": pl.String(),
    "tier": pl.String(),
    "held_out": pl.Boolean(),
    "call_cost": pl.Float64(),
    "p_direct": pl.Float64(),
    "p_translated": pl.Float64(),
    "free_call_rate": pl.Float64(),
    "free_accuracy": pl.Float64(),
    "confidence": pl.Float64(),
}


def rollout_requests(
    tasks: pl.DataFrame,
    english: pl.DataFrame,
    samples: int,
    temperature: float,
    free_tokens: Sequence[int],
    answer_tokens: int = ANSWER_TOKENS,
) -> list[ChatRequest]:
    """`samples` requests per mode per translated task, and per English task (direct only).

    Answers get `answer_tokens`; the free mode's request of task i gets `free_tokens[i]` (room for its call,
    `ops.translation.reward.call_budgets`). Requests come mode by mode, so consecutive prompts share their
    few-shot prefix and llama.cpp evaluates only the new question. Request id: `task_id|mode|sample`; each
    sample has its own seed, so cached reruns are identical.
    """
    if len(free_tokens) != tasks.height:
        raise ValueError(f"{len(free_tokens)} free-mode budgets for {tasks.height} tasks")
    rows = list(tasks.iter_rows(named=True))
    answers = [*english.iter_rows(named=True), *rows]
    conversations = [(row["task_id"], DIRECT, direct_messages(row["question"]), answer_tokens) for row in answers]
    conversations += [
        (row["task_id"], TRANSLATED, after_tool_messages(row["back_translation"]), answer_tokens) for row in rows
    ]
    conversations += [
        (row["task_id"], FREE, policy_messages(row["question"]), budget)
        for row, budget in zip(rows, free_tokens, strict=True)
    ]
    requests = []
    for task_id, mode, messages, max_tokens in conversations:
        requests += _sampled(messages, f"{task_id}|{mode}", samples, temperature, max_tokens)
    return requests


def _sampled(messages: list[dict[str, str]], prefix: str, samples: int, temperature: float, max_tokens: int):
    return [
        ChatRequest(tuple(messages), max_tokens=max_tokens, temperature=temperature, seed=k, request_id=f"{prefix}|{k}")
        for k in range(samples)
    ]


def score_rollouts(tasks: pl.DataFrame, english: pl.DataFrame, results: Sequence[ChatResult]) -> pl.DataFrame:
    """One `ROLLOUT_SCHEMA` row per result; a failed request is incorrect, with its error kept."""
    info = {
        row["task_id"]: row
        for row in pl.concat([english.select(tasks_columns()), tasks.select(tasks_columns())]).iter_rows(named=True)
    }
    by_id = {r.request_id: r for r in results}
    rows = []
    for result in results:
        task_id, mode, sample = result.request_id.split("|")
        row = info[task_id]
        text = result.text or ""
        called = mode == FREE and result.ok and parse_decision(text).called
        if called:
            after = by_id.get(f"{task_id}|{TRANSLATED}|{sample}")
            correct = bool(after and after.ok and answer_matches(after.text or "", row["answer"]))
        else:
            correct = result.ok and answer_matches(text, row["answer"])
        rows.append(
            {
                "task_id": task_id,
                "language": row["language"],
                "tier": row["tier"],
                "mode": mode,
                "sample": int(sample),
                "output": text,
                "error": result.error,
                "called": called,
                "correct": float(correct),
            }
        )
    return pl.DataFrame(rows, schema=ROLLOUT_SCHEMA)


def tasks_columns() -> list[str]:
    """The task columns rollouts need."""
    return ["task_id", "language", "tier", "answer"]


def self_consistency(outputs: Sequence[str]) -> float:
    """Share of outputs giving the most common number (no number counts as its own answer)."""
    if not outputs:
        return 0.0
    counts = Counter(str(last_number(text)) for text in outputs)
    return counts.most_common(1)[0][1] / len(outputs)


def summarize(rollouts: pl.DataFrame, tasks: pl.DataFrame, held_out: Sequence[str]) -> pl.DataFrame:
    """Per translated task (`SUMMARY_SCHEMA`): accuracy direct and after translation, free-mode call rate
    and accuracy, and the policy's confidence (self-consistency of its direct answers)."""
    rows = []
    by_task = rollouts.partition_by("task_id", "mode", as_dict=True)
    for row in tasks.iter_rows(named=True):
        task_id = row["task_id"]
        direct = by_task.get((task_id, DIRECT), pl.DataFrame(schema=ROLLOUT_SCHEMA))
        translated = by_task.get((task_id, TRANSLATED), pl.DataFrame(schema=ROLLOUT_SCHEMA))
        free = by_task.get((task_id, FREE), pl.DataFrame(schema=ROLLOUT_SCHEMA))
        rows.append(
            {
                "task_id": task_id,
                "item_id": row["item_id"],
                "language": row["language"],
                "tier": row["tier"],
                "held_out": row["language"] in held_out,
                "call_cost": row["call_cost"],
                "p_direct": _mean(direct["correct"]),
                "p_translated": _mean(translated["correct"]),
                "free_call_rate": _mean(free["called"].cast(pl.Float64)),
                "free_accuracy": _mean(free["correct"]),
                "confidence": self_consistency(direct["output"].to_list()),
            }
        )
    return pl.DataFrame(rows, schema=SUMMARY_SCHEMA)


def _mean(values: pl.Series) -> float:
    return float(values.mean()) if values.len() else 0.0  # type: ignore[arg-type]
