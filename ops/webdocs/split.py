"""A seeded train / validation split that does not move documents when the corpus grows.

Each document's side is decided by its own hash of (seed, doc_id) alone, never by its position or
by the other documents, so adding documents (a new shard, a re-run) leaves every earlier document
where it was, and the held-out split stays held out. The one exception is the guarantee of at least
one document per side: on a tiny set whose hashes all fall on one side, the document nearest the
threshold is moved across; that can only happen while a side would otherwise be empty.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _unit_hash(seed: int, doc_id: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, doc_id)."""
    digest = hashlib.sha256(f"{seed}\x1f{doc_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def train_validation_split(
    doc_ids: Sequence[str], validation_fraction: float, seed: int
) -> tuple[list[str], list[str]]:
    """Split doc ids into (train, validation); each keeps the input order.

    A document goes to validation when its hash falls below `validation_fraction` (0 < f < 1), so
    about that share is held out. With two or more documents both sides get at least one.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if len(set(doc_ids)) != len(doc_ids):
        raise ValueError("doc_ids must be unique")
    scores = {doc_id: _unit_hash(seed, doc_id) for doc_id in doc_ids}
    validation = {doc_id for doc_id, score in scores.items() if score < validation_fraction}
    if len(doc_ids) >= 2:
        if not validation:
            validation = {min(scores, key=scores.__getitem__)}
        elif len(validation) == len(doc_ids):
            validation.remove(max(scores, key=scores.__getitem__))
    train = [doc_id for doc_id in doc_ids if doc_id not in validation]
    held_out = [doc_id for doc_id in doc_ids if doc_id in validation]
    return train, held_out
