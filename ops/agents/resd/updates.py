"""One round's playbook update: deltas from reflections and paired rollouts, then merge and prune.

Tags come from pairs: a task the student failed alone but solved with the playbook in context votes every
bullet that was in context helpful; the reverse votes them harmful; equal outcomes vote nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ops.agents.resd.journal import apply_journaled
from ops.agents.resd.playbook import Delta, Embed, Merge, Playbook, add_delta, merge_near_duplicates, prune_harmful
from ops.agents.resd.rollouts import STUDENT, WITH_PLAYBOOK

LINEAGE_SCHEMA: dict[str, pl.DataType] = {"source": pl.String, "op": pl.String, "bullet_id": pl.String}


def add_deltas(reflections: pl.DataFrame) -> list[Delta]:
    """One add delta per reflection (its lesson, in its section), keyed by the reflection id."""
    return [add_delta(r["reflection_id"], r["section"], r["lesson"]) for r in reflections.iter_rows(named=True)]


def tag_deltas(rollouts: pl.DataFrame) -> list[Delta]:
    """Helpful/harmful votes for the bullets that were in context, from tasks answered with and without them."""
    paired = (
        rollouts.filter(pl.col("arm") == STUDENT)
        .select("task_id", pl.col("reward").alias("alone"))
        .join(
            rollouts.filter(pl.col("arm") == WITH_PLAYBOOK).select("task_id", "rollout_id", "reward", "bullet_ids"),
            on="task_id",
        )
        .sort("task_id")
    )
    deltas = []
    for row in paired.iter_rows(named=True):
        if row["reward"] == row["alone"]:
            continue
        tag = "helpful" if row["reward"] > row["alone"] else "harmful"
        deltas += [
            Delta("tag", row["rollout_id"], bullet, tag=tag) for bullet in row["bullet_ids"].split(",") if bullet
        ]
    return deltas


@dataclass(frozen=True)
class Update:
    """The new playbook and what changed it: deltas newly applied, merges, pruned ids, replayed deltas."""

    playbook: Playbook
    lineage: pl.DataFrame
    merges: list[Merge]
    pruned: list[str]
    replayed: int


def update_playbook(
    previous: Playbook, deltas: list[Delta], embed: Embed, threshold: float, prune_at: int, state: Path
) -> Update:
    """Apply `deltas` (journaled in `state`, resumable after a kill), merge near-duplicates, prune harmful bullets."""
    playbook, replayed = apply_journaled(previous, deltas, state)
    new_keys = playbook.applied - previous.applied
    changed = [d for d in deltas if d.key in new_keys]
    merged, merges = merge_near_duplicates(playbook, embed, threshold)
    pruned_playbook, pruned = prune_harmful(merged, prune_at)
    lineage = pl.DataFrame(
        [{"source": d.source, "op": d.op, "bullet_id": d.bullet_id} for d in changed], schema=LINEAGE_SCHEMA
    )
    return Update(pruned_playbook, lineage, merges, pruned, replayed)
