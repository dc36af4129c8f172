"""Episode records: one JSON file per (condition, task), written atomically, so a killed run resumes.

A file exists only once its episode finished (temp file + rename): a run killed mid-episode leaves nothing
half-written and the episode is played again; an episode that raises is recorded as failed (`crashed`).
The records become two tables: one row per episode and one per agent action.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl

from ops.agents.comem.scheduler import FAULTS, MEMORY_EMPTY, MEMORY_ERROR, Condition, EpisodeTrace
from ops.tooluse.multi_turn import MultiTurnScore, MultiTurnTask

CRASHED = "episode:crashed"
Record = dict[str, Any]
PlayFn = Callable[[MultiTurnTask, Condition], tuple[EpisodeTrace, MultiTurnScore]]

EPISODE_SCHEMA = {
    "condition": pl.Utf8,
    "k": pl.Int64,
    "task_id": pl.Utf8,
    "valid": pl.Boolean,
    "turns_passed": pl.Int64,
    "turns": pl.Int64,
    "error": pl.Utf8,
    "detail": pl.Utf8,
    "steps": pl.Int64,
    "wall_s": pl.Float64,
    "critical_s": pl.Float64,
    "agent_s": pl.Float64,
    "memory_wait_s": pl.Float64,
    "memory_s": pl.Float64,
    "memory_hidden_s": pl.Float64,
    "drain_s": pl.Float64,
    "agent_prompt_tokens": pl.Int64,
    "agent_completion_tokens": pl.Int64,
    "memory_prompt_tokens": pl.Int64,
    "memory_completion_tokens": pl.Int64,
    "memory_tokens_on_path": pl.Int64,
    "memory_tokens_off_path": pl.Int64,
    **{fault: pl.Int64 for fault in FAULTS},
    "summaries_used": pl.Int64,
    "summaries_computed": pl.Int64,
    "replies_json": pl.Utf8,
    "summaries_json": pl.Utf8,
}
STEP_SCHEMA = {
    "condition": pl.Utf8,
    "k": pl.Int64,
    "task_id": pl.Utf8,
    "step": pl.Int64,
    "summary_index": pl.Int64,
    "raw_blocks": pl.Int64,
    "wall_s": pl.Float64,
    "critical_s": pl.Float64,
    "agent_s": pl.Float64,
    "memory_wait_s": pl.Float64,
    "agent_prompt_tokens": pl.Int64,
    "agent_completion_tokens": pl.Int64,
    "agent_error": pl.Boolean,
    "memory_prompt_tokens": pl.Int64,
    "memory_completion_tokens": pl.Int64,
    "memory_tokens_on_path": pl.Int64,
}


def episode_record(condition: Condition, task_id: str, trace: EpisodeTrace, score: MultiTurnScore) -> Record:
    """A finished episode as plain JSON data."""
    return {
        "condition": condition.name,
        "k": -1 if condition.k is None else condition.k,
        "task_id": task_id,
        "score": asdict(score),
        "steps": [asdict(step) for step in trace.steps],
        "blocks": trace.blocks,
        "replies": trace.replies,
        "summaries": {str(i): text for i, text in trace.summaries.items() if i > 0},
        "faults": {fault: trace.faults[fault] for fault in FAULTS},
        "memory_s": trace.memory_s,
        "drain_s": trace.drain_s,
        "memory_prompt_tokens": trace.memory_prompt_tokens,
        "memory_completion_tokens": trace.memory_completion_tokens,
    }


def crashed_record(condition: Condition, task: MultiTurnTask, error: Exception) -> Record:
    """An episode that raised: failed, with the exception as detail and no steps."""
    score = MultiTurnScore(task.id, False, 0, len(task.ground_truth), CRASHED, 0, f"{type(error).__name__}: {error}", 0)
    return episode_record(condition, task.id, EpisodeTrace(summaries={0: ""}), score)


class EpisodeStore:
    """A folder of finished episode records."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, condition: str, task_id: str) -> Path:
        """Where one episode's record lives."""
        return self.folder / f"{condition}__{task_id}.json"

    def load(self, condition: str, task_id: str) -> Record | None:
        """The finished record, or None when the episode has not finished yet."""
        path = self.path(condition, task_id)
        return json.loads(path.read_text()) if path.is_file() else None

    def save(self, record: Record) -> None:
        """Write a record atomically (temp file in the same folder, then rename)."""
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".episode.", suffix=".part")
        try:
            with os.fdopen(handle, "w") as out:
                json.dump(record, out)
            os.replace(temporary, self.path(record["condition"], record["task_id"]))
        finally:
            Path(temporary).unlink(missing_ok=True)


def play_all(
    tasks: Sequence[MultiTurnTask],
    conditions: Sequence[Condition],
    play: PlayFn,
    store: EpisodeStore,
    prepare: Callable[[MultiTurnTask], None] | None = None,
) -> tuple[list[Record], int]:
    """Every task under every condition (task by task, so load drifts hit all conditions alike), finished
    episodes read back from the store; returns the records and how many were resumed. `prepare` runs before a
    task's first unfinished episode (e.g. to put its prompt prefix in the KV cache, so the first condition
    played is not the only one to pay for it)."""
    records, resumed = [], 0
    for task in tasks:
        prepared = False
        for condition in conditions:
            record = store.load(condition.name, task.id)
            if record is not None:
                resumed += 1
            else:
                if prepare is not None and not prepared:
                    prepare(task)
                    prepared = True
                try:
                    record = episode_record(condition, task.id, *play(task, condition))
                except Exception as error:
                    record = crashed_record(condition, task, error)
                store.save(record)
            records.append(record)
    return records, resumed


def _episode_row(record: Record) -> dict[str, Any]:
    steps, score, faults = record["steps"], record["score"], record["faults"]
    total = {key: sum(step[key] for step in steps) for key in ("wall_s", "critical_s", "agent_s", "memory_wait_s")}
    memory_tokens = record["memory_prompt_tokens"] + record["memory_completion_tokens"]
    on_path = sum(step["memory_tokens_on_path"] for step in steps)
    return {
        "condition": record["condition"],
        "k": record["k"],
        "task_id": record["task_id"],
        "valid": score["valid"],
        "turns_passed": score["turns_passed"],
        "turns": score["turns"],
        "error": score["error"],
        "detail": score["detail"],
        "steps": len(steps),
        **total,
        "memory_s": record["memory_s"],
        "memory_hidden_s": max(record["memory_s"] - total["memory_wait_s"], 0.0),
        "drain_s": record["drain_s"],
        "agent_prompt_tokens": sum(step["agent_prompt_tokens"] for step in steps),
        "agent_completion_tokens": sum(step["agent_completion_tokens"] for step in steps),
        "memory_prompt_tokens": record["memory_prompt_tokens"],
        "memory_completion_tokens": record["memory_completion_tokens"],
        "memory_tokens_on_path": on_path,
        "memory_tokens_off_path": memory_tokens - on_path,
        **faults,
        "summaries_used": len({step["summary_index"] for step in steps} - {0}),
        "summaries_computed": len(record["summaries"]) + faults[MEMORY_ERROR] + faults[MEMORY_EMPTY],
        "replies_json": json.dumps(record["replies"]),
        "summaries_json": json.dumps(record["summaries"], sort_keys=True),
    }


def episode_frame(records: Sequence[Record]) -> pl.DataFrame:
    """One row per episode: outcome, end-to-end and critical-path seconds, tokens on/off the path, faults, and
    the agent's replies and good summaries (JSON) from which the episode replays exactly."""
    return pl.DataFrame([_episode_row(r) for r in records], schema=EPISODE_SCHEMA)


def step_frame(records: Sequence[Record]) -> pl.DataFrame:
    """One row per agent action of every episode."""
    rows = [
        {"condition": r["condition"], "k": r["k"], "task_id": r["task_id"], **{k: s[k] for k in STEP_SCHEMA if k in s}}
        for r in records
        for s in r["steps"]
    ]
    return pl.DataFrame(rows, schema=STEP_SCHEMA)
