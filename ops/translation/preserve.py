"""Answer-preserving translation: English items to every target language and back, kept only if the
answer survives.

An item is kept when both translations succeed, the target text and the back-translation contain the
English question's numbers exactly (the answer is computed from them), and the back-translation is
close in meaning to the English original (cosine similarity of multilingual E5 embeddings at least
`threshold`). Everything else is quarantined with the reason, so a lossy translator shrinks the data
instead of corrupting the answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from ops.common.embedding import Embedder
from ops.common.quarantine import Rejected, Split, split
from ops.translation.cipher import numbers_preserved
from ops.translation.languages import ENGLISH, tier_of
from ops.translation.tool import TranslationTool

TRANSLATED_SCHEMA: dict[str, pl.DataType] = {
    "task_id": pl.String(),
    "item_id": pl.String(),
    "family": pl.String(),
    "language": pl.String(),
    "tier": pl.String(),
    "question": pl.String(),
    "answer": pl.String(),
    "english_question": pl.String(),
    "back_translation": pl.String(),
    "backend": pl.String(),
    "call_cost": pl.Float64(),
    "similarity": pl.Float64(),
}
REASONS = ("translation_failed", "numbers_changed", "back_numbers_changed", "low_similarity")


def round_trips(tool: TranslationTool, english: pl.DataFrame, targets: Sequence[str]) -> list[dict[str, Any]]:
    """Forward and back translations of every English task (`question`, `item_id`, ...) per target."""
    rows = []
    questions = english["question"].to_list()
    for target in targets:
        forward = tool.translate(questions, ENGLISH, target)
        ok = [i for i, t in enumerate(forward) if t.ok]
        back_ok = tool.translate([forward[i].text or "" for i in ok], target, ENGLISH)
        back = dict(zip(ok, back_ok, strict=True))
        for index, row in enumerate(english.iter_rows(named=True)):
            returned = back.get(index)
            rows.append(
                {
                    **row,
                    "language": target,
                    "forward": forward[index],
                    "back": returned,
                }
            )
    return rows


def _reason(row: dict[str, Any]) -> tuple[str, str] | None:
    forward, back = row["forward"], row["back"]
    if not forward.ok:
        return "translation_failed", f"{forward.backend}: {forward.error}"
    if back is None or not back.ok:
        return "translation_failed", f"back-translation {back.backend if back else ''}: {back.error if back else ''}"
    if not numbers_preserved(row["question"], forward.text or ""):
        return "numbers_changed", "the translated question's numbers differ from the English original's"
    if not numbers_preserved(row["question"], back.text or ""):
        return "back_numbers_changed", "the back-translation's numbers differ from the English original's"
    return None


def answer_preserving_split(
    rows: Sequence[dict[str, Any]], embedder: Embedder, threshold: float, tiers: dict[str, str]
) -> Split:
    """Keep round trips whose answer survives (see module doc); the rest quarantined with a reason."""
    kept, rejected, similar = [], [], []
    for row in rows:
        record_id = f"{row['item_id']}:{row['language']}"
        reason = _reason(row)
        if reason is not None:
            rejected.append(Rejected(record_id, *reason, {"question": row["question"]}))
        else:
            similar.append(row)
    scores = back_similarity(embedder, [r["question"] for r in similar], [r["back"].text for r in similar])
    for row, score in zip(similar, scores, strict=True):
        record_id = f"{row['item_id']}:{row['language']}"
        if score < threshold:
            detail = f"back-translation similarity {score:.3f} < {threshold}: {row['back'].text[:200]}"
            rejected.append(Rejected(record_id, "low_similarity", detail, {"question": row["question"]}))
            continue
        kept.append(
            {
                "task_id": record_id,
                "item_id": row["item_id"],
                "family": row["family"],
                "language": row["language"],
                "tier": tier_of(row["language"], tiers, record_id),
                "question": row["forward"].text,
                "answer": row["answer"],
                "english_question": row["question"],
                "back_translation": row["back"].text,
                "backend": row["forward"].backend,
                "call_cost": row["forward"].cost,
                "similarity": round(float(score), 4),
            }
        )
    return split(kept, TRANSLATED_SCHEMA, rejected, len(rows), REASONS)


def back_similarity(embedder: Embedder, originals: Sequence[str], backs: Sequence[str]) -> list[float]:
    """Cosine similarity of each original with its back-translation (embedded as passages).

    An exact round trip (the cipher's inverse, the oracle's aligned text) has similarity 1 by definition and
    is not embedded; the embedder loads only when some back-translation differs from its original.
    """
    pairs = [(a, b) for a, b in zip(originals, backs, strict=True) if a != b]
    if not pairs:
        return [1.0] * len(originals)
    texts = list(dict.fromkeys(text for pair in pairs for text in pair))
    vectors = embedder.embed_passages(texts)
    index = {text: i for i, text in enumerate(texts)}
    return [
        1.0 if a == b else float(np.dot(vectors[index[a]], vectors[index[b]]))
        for a, b in zip(originals, backs, strict=True)
    ]
