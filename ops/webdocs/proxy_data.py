"""What a proxy LM trains on and is measured on: a filter's documents, and the fixed target sets.

Target sets (`samples/proxy_targets`, see its SOURCE.md) stand for the paper's three evaluation areas:
reasoning (MGSM English maths problems), code (CPython standard-library source) and knowledge (WordNet
noun glosses). They are never trained on: `contaminated_documents` counts training documents that
contain one of their lines, and the proxy's check requires none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

from ops.common.text import sha256_hex

TARGET_NAMES = ("reasoning", "code", "knowledge")
MIN_OVERLAP_CHARS = 40


def target_sets(folder: str | Path, max_bytes: int = 0) -> dict[str, str]:
    """The target texts by name, each cut at a whole line to at most `max_bytes` UTF-8 bytes (0: whole file)."""
    texts = {}
    for name in TARGET_NAMES:
        path = Path(folder) / f"{name}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"proxy target set {name!r} not found at {path}")
        texts[name] = _cut(path.read_text(encoding="utf-8"), max_bytes)
    return texts


def _cut(text: str, max_bytes: int) -> str:
    if not max_bytes:
        return text
    kept, size = [], 0
    for line in text.splitlines(keepends=True):
        size += len(line.encode("utf-8"))
        if size > max_bytes:
            break
        kept.append(line)
    return "".join(kept)


def contaminated_documents(texts: Sequence[str], targets: Mapping[str, str]) -> int:
    """How many training texts contain a target line of at least `MIN_OVERLAP_CHARS` characters."""
    lines = {line.strip() for text in targets.values() for line in text.splitlines()}
    lines = {line for line in lines if len(line) >= MIN_OVERLAP_CHARS}
    return sum(any(line in text for line in lines) for text in texts)


def training_texts(docs: pl.DataFrame, doc_ids: Sequence[str], seed: int) -> list[str]:
    """The texts of `doc_ids` in an order fixed by sha256(seed:doc_id), whatever order the corpus is in."""
    chosen = docs.filter(pl.col("doc_id").is_in(pl.Series(list(doc_ids), dtype=pl.String)))
    rows = sorted(chosen.select("doc_id", "text").iter_rows(), key=lambda row: sha256_hex(f"{seed}:{row[0]}"))
    return [text for _, text in rows]
