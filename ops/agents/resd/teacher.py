"""The self-teacher's privileged context: the reflection on this task plus the playbook, never truncated.

The context must fit the model's window together with the prompt and the completion budget. Text is never cut
mid-way: when it does not fit, whole playbook bullets are left out, least useful first, and their ids are
recorded; the reflection itself is required (a row whose reflection alone does not fit is refused).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ops.agents.resd.playbook import Bullet, Playbook, ranked, render_bullets
from ops.agents.resd.rollouts import STUDENT


@dataclass(frozen=True)
class TeacherContext:
    """The context text, the bullet ids it holds and those left out to fit the window, and its token count."""

    text: str
    kept: tuple[str, ...]
    cut: tuple[str, ...]
    tokens: int


def reflection_text(diagnosis: str, lesson: str) -> str:
    """The reflection on this task as the teacher reads it (quoted notes)."""
    header = "Reflection on an earlier failed attempt at this task (notes):"
    return f'{header}\n- diagnosis: "{diagnosis}"\n- lesson: "{lesson}"'


def compose(reflection: str, bullets: Sequence[Bullet]) -> str:
    """Playbook first, then the task's reflection."""
    return "\n\n".join(part for part in (render_bullets(bullets), reflection) if part)


def fit_context(
    reflection: str, bullets: Sequence[Bullet], count_tokens: Callable[[str], int], budget: int
) -> TeacherContext:
    """The largest prefix of `bullets` (ranked best first) whose context keeps `count_tokens(context) <= budget`.

    `count_tokens` counts the whole teacher prompt for a context (prompt + context), `budget` is the window
    minus the completion tokens. Raises ValueError when even the reflection alone does not fit.
    """
    for keep in range(len(bullets), -1, -1):
        text = compose(reflection, bullets[:keep])
        tokens = count_tokens(text)
        if tokens <= budget:
            kept, cut = bullets[:keep], bullets[keep:]
            return TeacherContext(text, tuple(b.id for b in kept), tuple(b.id for b in cut), tokens)
    raise ValueError(f"the reflection alone needs {count_tokens(reflection)} tokens > budget {budget}")


def distillation_rows(
    rollouts: pl.DataFrame, reflections: pl.DataFrame, book: Playbook, count: Callable[[Any, str], int], budget: int
) -> tuple[list[dict], list[dict]]:
    """Self-distillation rows (a training task's prompt + its privileged context: the playbook and, for a failed
    task, its reflection) and a record per row of the bullets kept and cut to fit the window."""
    notes = {row["task_id"]: row for row in reflections.iter_rows(named=True)}
    rows, records = [], []
    for task in rollouts.filter(pl.col("arm") == STUDENT).iter_rows(named=True):
        prompt = json.loads(task["prompt_json"])
        note = notes.get(task["task_id"])
        reflection = reflection_text(note["diagnosis"], note["lesson"]) if note else ""
        if not reflection and not book.bullets:
            continue
        fitted = fit_context(reflection, ranked(book), lambda text, p=prompt: count(p, text), budget)
        rows.append({"id": task["task_id"], "prompt": prompt, "privileged_context": fitted.text})
        records.append(
            {
                "task_id": task["task_id"],
                "reflection_id": note["reflection_id"] if note else "",
                "kept": list(fitted.kept),
                "cut": list(fitted.cut),
                "teacher_tokens": fitted.tokens,
            }
        )
    return rows, records
