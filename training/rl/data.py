"""RL and SFT rows: checked before training, so a bad row is named or quarantined, never trained on.

A row's `prompt` is either a non-empty string or a chat (a non-empty list of `{"role", "content"}`
messages with string content); reward columns named by the caller must be present and not None.
`check_rows` returns the good rows and a `Rejected` per bad one (reason codes `RL_REASONS`);
`require_valid` raises on the first bad row, naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ops.common.quarantine import Rejected

EMPTY_PROMPT = "empty_prompt"
MALFORMED_PROMPT = "malformed_prompt"
MISSING_COLUMN = "missing_column"
EMPTY_COMPLETION = "empty_completion"
RL_REASONS = (EMPTY_PROMPT, MALFORMED_PROMPT, MISSING_COLUMN, EMPTY_COMPLETION)
_ROLES = {"system", "user", "assistant", "tool"}


def _row_id(row: Mapping[str, Any], index: int, id_key: str) -> str:
    value = row.get(id_key) if isinstance(row, Mapping) else None
    return str(value) if value is not None else f"row {index}"


def _chat_problem(messages: Sequence[Any]) -> str | None:
    for position, message in enumerate(messages):
        if not isinstance(message, Mapping) or message.get("role") not in _ROLES:
            return f"message {position} has no valid role"
        if not isinstance(message.get("content"), str):
            return f"message {position} has no string content"
    return None


def prompt_problem(prompt: Any) -> tuple[str, str] | None:
    """(reason, detail) when a prompt is unusable, else None."""
    if prompt is None or (isinstance(prompt, str | list | tuple) and not prompt):
        return EMPTY_PROMPT, "prompt is empty"
    if isinstance(prompt, str):
        return (EMPTY_PROMPT, "prompt is blank") if not prompt.strip() else None
    if isinstance(prompt, list | tuple):
        problem = _chat_problem(prompt)
        return (MALFORMED_PROMPT, problem) if problem else None
    return MALFORMED_PROMPT, f"prompt is a {type(prompt).__name__}, not a string or a chat"


def row_problem(row: Any, columns: Sequence[str]) -> tuple[str, str] | None:
    """(reason, detail) for the first thing wrong with an RL row, or None when it can be trained on."""
    if not isinstance(row, Mapping):
        return MALFORMED_PROMPT, f"row is a {type(row).__name__}, not a mapping"
    problem = prompt_problem(row.get("prompt"))
    if problem:
        return problem
    missing = [column for column in columns if row.get(column) is None]
    if missing:
        return MISSING_COLUMN, f"reward column(s) {missing} missing or null"
    if "completion" in row and prompt_problem(row["completion"]):
        return EMPTY_COMPLETION, "completion is empty or malformed"
    return None


def check_rows(
    rows: Sequence[Any], columns: Sequence[str] = (), id_key: str = "id"
) -> tuple[list[dict[str, Any]], list[Rejected]]:
    """Rows that can be trained on, and one `Rejected` (reason in `RL_REASONS`) per row that cannot."""
    kept: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    for index, row in enumerate(rows):
        problem = row_problem(row, columns)
        if problem is None:
            kept.append(dict(row))
        else:
            rejected.append(Rejected(_row_id(row, index, id_key), problem[0], problem[1], raw=row))
    return kept, rejected


def require_valid(rows: Sequence[Any], columns: Sequence[str] = (), id_key: str = "id") -> list[dict[str, Any]]:
    """All rows as dicts; raises ValueError naming the first bad row and why (use `check_rows` to quarantine)."""
    if not rows:
        raise ValueError("no training rows: the dataset is empty")
    kept, rejected = check_rows(rows, columns, id_key)
    if rejected:
        first = rejected[0]
        raise ValueError(f"RL row {first.record_id!r}: {first.reason}: {first.detail} ({len(rejected)} bad row(s))")
    return kept
