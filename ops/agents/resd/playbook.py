"""RESD's persistent playbook (ACE-style): bullets with helpful/harmful counters, changed only by deltas.

A delta is one of add, update, tag, remove, and carries the id of what caused it (a reflection, or a paired
rollout for a tag). Applying a delta whose key is already recorded is a no-op, so replaying a round after a
kill never duplicates a bullet. Near-duplicate bullets (cosine similarity of their embeddings at or above a
threshold, same section) are merged into the older one; bullets with more harmful than helpful votes, and at
least `prune_at` harmful ones, are pruned. Bullet text is data: it is rendered into prompts as quoted
content and never interpreted or executed here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from ops.common.text import sha256_hex

SECTIONS = ("tool_choice", "arguments", "format", "abstention", "general")
OPS = ("add", "update", "tag", "remove")
TAGS = ("helpful", "harmful")
Embed = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Bullet:
    """One lesson: a stable id, a section, the text, its counters and the deltas' sources that shaped it."""

    id: str
    section: str
    content: str
    helpful: int = 0
    harmful: int = 0
    sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Delta:
    """One change to the playbook, caused by `source` (a reflection id or a rollout pair id)."""

    op: Literal["add", "update", "tag", "remove"]
    source: str
    bullet_id: str = ""
    section: str = "general"
    content: str = ""
    tag: str = ""

    @property
    def key(self) -> str:
        """What makes a delta unique: replaying the same key is a no-op."""
        return f"{self.op}:{self.source}:{self.bullet_id}:{self.tag}"


@dataclass(frozen=True)
class Playbook:
    """Bullets in insertion order plus the keys of every delta already applied."""

    bullets: tuple[Bullet, ...] = ()
    applied: frozenset[str] = field(default_factory=frozenset)

    def find(self, bullet_id: str) -> Bullet | None:
        return next((bullet for bullet in self.bullets if bullet.id == bullet_id), None)


def bullet_id(source: str, content: str) -> str:
    """Deterministic id of an added bullet: the same reflection and lesson always give the same id."""
    return "b-" + sha256_hex(f"{source}\n{content}")[:10]


def add_delta(source: str, section: str, content: str) -> Delta:
    """An add delta whose bullet id is derived from its source and text."""
    section = section if section in SECTIONS else "general"
    return Delta("add", source, bullet_id(source, content), section, content.strip())


def apply_delta(playbook: Playbook, delta: Delta) -> Playbook:
    """The playbook after `delta`; an already-applied key, or a delta on a missing bullet, changes nothing."""
    if delta.op not in OPS:
        raise ValueError(f"unknown delta op {delta.op!r} from {delta.source}")
    if delta.key in playbook.applied:
        return playbook
    applied = playbook.applied | {delta.key}
    target = playbook.find(delta.bullet_id)
    if delta.op == "add":
        if target is not None or not delta.content:
            return replace(playbook, applied=applied)
        added = Bullet(delta.bullet_id, delta.section, delta.content, sources=(delta.source,))
        return Playbook((*playbook.bullets, added), applied)
    if target is None:
        return replace(playbook, applied=applied)
    if delta.op == "remove":
        return Playbook(tuple(b for b in playbook.bullets if b.id != target.id), applied)
    if delta.op == "update":
        changed = replace(target, content=delta.content or target.content, sources=(*target.sources, delta.source))
    elif delta.tag in TAGS:
        changed = replace(target, **{delta.tag: getattr(target, delta.tag) + 1})
    else:
        raise ValueError(f"tag delta from {delta.source} has tag {delta.tag!r}, expected one of {TAGS}")
    return Playbook(tuple(changed if b.id == target.id else b for b in playbook.bullets), applied)


def apply_deltas(playbook: Playbook, deltas: Iterable[Delta]) -> Playbook:
    """Apply deltas in order (idempotent per delta key)."""
    for delta in deltas:
        playbook = apply_delta(playbook, delta)
    return playbook


@dataclass(frozen=True)
class Merge:
    """A near-duplicate folded into an older bullet, with their cosine similarity."""

    kept: str
    merged: str
    similarity: float


def merge_near_duplicates(playbook: Playbook, embed: Embed, threshold: float) -> tuple[Playbook, list[Merge]]:
    """Fold each bullet into the first earlier kept bullet of its section with cosine similarity >= `threshold`.

    The kept bullet keeps its id and text, adds the counters and the sources of the merged one. Greedy in
    insertion order, so the result does not depend on embedding ties and older ids stay stable.
    """
    if len(playbook.bullets) < 2:
        return playbook, []
    vectors = np.asarray(embed([b.content for b in playbook.bullets]), dtype=np.float64)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    similarity = vectors @ vectors.T
    kept: list[int] = []
    merged_into: dict[int, int] = {}
    merges: list[Merge] = []
    for i, bullet in enumerate(playbook.bullets):
        same = [k for k in kept if playbook.bullets[k].section == bullet.section and similarity[i, k] >= threshold]
        if same:
            merged_into[i] = same[0]
            merges.append(Merge(playbook.bullets[same[0]].id, bullet.id, round(float(similarity[i, same[0]]), 4)))
        else:
            kept.append(i)
    bullets = []
    for k in kept:
        base = playbook.bullets[k]
        extra = [playbook.bullets[i] for i, into in merged_into.items() if into == k]
        bullets.append(
            replace(
                base,
                helpful=base.helpful + sum(b.helpful for b in extra),
                harmful=base.harmful + sum(b.harmful for b in extra),
                sources=tuple(dict.fromkeys([*base.sources, *(s for b in extra for s in b.sources)])),
            )
        )
    return Playbook(tuple(bullets), playbook.applied), merges


def prune_harmful(playbook: Playbook, prune_at: int) -> tuple[Playbook, list[str]]:
    """Drop bullets with `harmful > helpful` and `harmful >= prune_at`; returns the playbook and the pruned ids."""
    pruned = [b.id for b in playbook.bullets if b.harmful > b.helpful and b.harmful >= prune_at]
    return Playbook(tuple(b for b in playbook.bullets if b.id not in pruned), playbook.applied), pruned


def ranked(playbook: Playbook) -> list[Bullet]:
    """Bullets by net usefulness (helpful - harmful, descending), then insertion order."""
    order = {b.id: i for i, b in enumerate(playbook.bullets)}
    return sorted(playbook.bullets, key=lambda b: (b.harmful - b.helpful, order[b.id]))


def render_bullets(bullets: Sequence[Bullet]) -> str:
    """The playbook as prompt text: one quoted line per bullet, marked as notes rather than instructions."""
    if not bullets:
        return ""
    lines = [f"- [{b.id}] ({b.section}) {json.dumps(b.content, ensure_ascii=False)}" for b in bullets]
    return "Playbook of lessons from earlier attempts (quoted notes, not instructions):\n" + "\n".join(lines)


def to_json(playbook: Playbook) -> str:
    """Stable JSON of a playbook (bullets in order, applied keys sorted)."""
    bullets = [{**b.__dict__, "sources": list(b.sources)} for b in playbook.bullets]
    return json.dumps({"bullets": bullets, "applied": sorted(playbook.applied)}, indent=1, sort_keys=True)


def from_json(text: str) -> Playbook:
    """Inverse of `to_json`."""
    data = json.loads(text)
    bullets = tuple(Bullet(**{**b, "sources": tuple(b["sources"])}) for b in data["bullets"])
    return Playbook(bullets, frozenset(data["applied"]))
