"""Resumable playbook updates: each applied delta is persisted atomically before the next one.

A process killed with SIGKILL in the middle of a round leaves the state file of the last completed delta (a
write goes to a temporary file first and is renamed over the old one, so the file is never half-written); a
rerun loads it and skips every delta whose key it already holds, so no bullet is added twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from ops.agents.resd.playbook import Delta, Playbook, apply_delta, from_json, to_json


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and an atomic rename (fsynced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with temporary.open("w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def apply_journaled(
    start: Playbook, deltas: Iterable[Delta], state: Path, after_each: Callable[[Delta], None] | None = None
) -> tuple[Playbook, int]:
    """Apply `deltas` to `start` (or to the state a killed run left in `state`), saving after each one.

    Returns the playbook and how many deltas were already applied when this call began (0: a fresh run).
    """
    playbook = from_json(state.read_text()) if state.is_file() else start
    resumed = 0
    for delta in deltas:
        if delta.key in playbook.applied:
            resumed += 1
            continue
        playbook = apply_delta(playbook, delta)
        write_atomic(state, to_json(playbook))
        if after_each is not None:
            after_each(delta)
    return playbook, resumed
