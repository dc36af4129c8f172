"""Corpus-wide near-duplicate detection: MinHash signatures of word shingles in a datasketch LSH index.

Deterministic whatever order the shards arrive in. Every document is first indexed; then each one's
LSH candidates whose estimated Jaccard similarity reaches the threshold become edges, and each
connected component keeps its smallest `doc_id`. The others are quarantined with the id of the
document they duplicate (the one kept). The outcome depends on the set of documents only, not on the
order they were added. Texts are streamed in batches: memory holds the LSH index and one signature per
document (`num_perm` 64-bit integers), never the corpus.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from ops.common.quarantine import QUARANTINE_SCHEMA, Rejected, Split, quarantine_frame
from ops.common.text import normalize_text

if TYPE_CHECKING:
    from datasketch import LeanMinHash

NEAR_DUPLICATE = "near_duplicate"
DEDUP_REASONS = (NEAR_DUPLICATE,)
DEDUP_QUARANTINE_SCHEMA = {**QUARANTINE_SCHEMA, "duplicate_of": pl.String}
SCHEME = "affine32"  # datasketch's MinHash permutation scheme, fixed so signatures stay comparable


@dataclass(frozen=True)
class DedupConfig:
    """Similarity threshold (estimated Jaccard of word shingles), signature size, shingle width, hash seed."""

    threshold: float = 0.8
    num_perm: int = 128
    shingle_words: int = 5
    seed: int = 1


def shingles(text: str, width: int) -> set[bytes]:
    """Word `width`-grams of the case-folded, whitespace-folded text (a short text is one shingle)."""
    words = normalize_text(text).casefold().split()
    if len(words) <= width:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + width]).encode() for i in range(len(words) - width + 1)}


def signature(text: str, config: DedupConfig) -> np.ndarray:
    """The MinHash signature of a text's shingles (`num_perm` uint64 values)."""
    from datasketch import MinHash

    minhash = MinHash(num_perm=config.num_perm, seed=config.seed, scheme=SCHEME)
    minhash.update_batch(list(shingles(text, config.shingle_words)))
    return minhash.hashvalues.copy()


def estimated_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Share of equal MinHash values: an unbiased estimate of the Jaccard similarity of the shingle sets."""
    return float(np.mean(a == b))


class NearDuplicateIndex:
    """Documents added in any order; `duplicates()` then maps each duplicate to its cluster's smallest id."""

    def __init__(self, config: DedupConfig) -> None:
        from datasketch import MinHashLSH

        self.config = config
        self._lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
        self._signatures: dict[str, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._signatures)

    def add(self, doc_id: str, text: str) -> None:
        """Index one document; a repeated id is an error (ids must be unique corpus-wide)."""
        if doc_id in self._signatures:
            raise ValueError(f"document id {doc_id!r} appears twice in the corpus")
        values = signature(text, self.config)
        self._signatures[doc_id] = values
        self._lsh.insert(doc_id, self._lean(values))

    def duplicates(self) -> dict[str, tuple[str, float]]:
        """Duplicate id -> (id of the document kept for its cluster, estimated Jaccard with it)."""
        parent = {doc_id: doc_id for doc_id in self._signatures}

        def root(doc_id: str) -> str:
            while parent[doc_id] != doc_id:
                parent[doc_id] = parent[parent[doc_id]]
                doc_id = parent[doc_id]
            return doc_id

        for doc_id in sorted(self._signatures):
            values = self._signatures[doc_id]
            for other in self._lsh.query(self._lean(values)):
                if other == doc_id or estimated_jaccard(values, self._signatures[other]) < self.config.threshold:
                    continue
                low, high = sorted((root(doc_id), root(other)))
                parent[high] = low
        result = {}
        for doc_id in sorted(self._signatures):
            kept = root(doc_id)
            if kept != doc_id:
                result[doc_id] = (kept, estimated_jaccard(self._signatures[doc_id], self._signatures[kept]))
        return result

    def _lean(self, values: np.ndarray) -> LeanMinHash:
        from datasketch import LeanMinHash

        return LeanMinHash(seed=self.config.seed, hashvalues=values, scheme=SCHEME)


def find_near_duplicates(
    batches: Iterable[pl.DataFrame], config: DedupConfig
) -> tuple[dict[str, tuple[str, float]], int]:
    """Stream (`doc_id`, `text`) batches through the index; the duplicates and how many documents came in."""
    index = NearDuplicateIndex(config)
    for batch in batches:
        for doc_id, text in batch.select("doc_id", "text").iter_rows():
            index.add(doc_id, text)
    return index.duplicates(), len(index)


def dedup_split(docs: pl.LazyFrame, config: DedupConfig, batch_docs: int = 10_000) -> Split:
    """The corpus without its near-duplicates, and one quarantine row per duplicate naming what it duplicates.

    The quarantine has the shared columns plus `duplicate_of`; rows in = kept + quarantined.
    """
    duplicates, rows_in = find_near_duplicates(
        docs.select("doc_id", "text").collect_batches(chunk_size=batch_docs), config
    )
    ids = pl.Series(list(duplicates), dtype=pl.String)
    kept = docs.filter(~pl.col("doc_id").is_in(ids)).sort("doc_id").collect()
    texts = dict(docs.filter(pl.col("doc_id").is_in(ids)).select("doc_id", "text").collect().iter_rows())
    rejections = [
        Rejected(doc_id, NEAR_DUPLICATE, f"near-duplicate of {kept_id} (estimated Jaccard {score:.3f})", texts[doc_id])
        for doc_id, (kept_id, score) in duplicates.items()
    ]
    quarantined = quarantine_frame(rejections, DEDUP_REASONS).with_columns(
        duplicate_of=pl.Series([duplicates[r.record_id][0] for r in rejections], dtype=pl.String)
    )
    result = Split(kept, quarantined, rows_in)
    if not result.accounted():
        raise AssertionError(f"dedup lost rows: {rows_in} in, {kept.height} kept, {quarantined.height} quarantined")
    return result
