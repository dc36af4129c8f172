"""Byte-level tokenized pretraining corpus, split into train and validation by document.

The tokenizer is UTF-8 bytes plus one end-of-document id: a 257-entry vocabulary keeps the local
MoE tiny (with SmolLM2's 49k vocabulary the embedding and head alone would dwarf a 64-wide model).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from ops.common.quarantine import Rejected, Split, split
from ops.webdocs.split import train_validation_split

EOS_ID = 256
VOCAB_SIZE = 257
TOO_SHORT = "too_short"
REASONS = (TOO_SHORT,)
CORPUS_SCHEMA: dict[str, pl.DataType] = {
    "doc_id": pl.String,
    "split": pl.String,
    "n_tokens": pl.Int64,
    "tokens": pl.List(pl.UInt16),
}
SPLITS = ("train", "validation")


def byte_tokens(text: str) -> list[int]:
    """UTF-8 bytes of a text followed by the end-of-document id."""
    return [*text.encode("utf-8"), EOS_ID]


def tokenize_corpus(docs: pl.DataFrame, min_tokens: int, validation_fraction: float, seed: int) -> Split:
    """One row per document long enough to train on, assigned to a split by its own id's hash
    (so adding documents never moves earlier ones); shorter documents are quarantined."""
    kept, rejected = [], []
    for doc_id, text in docs.select("doc_id", "text").iter_rows():
        tokens = byte_tokens(text or "")
        if len(tokens) < min_tokens:
            rejected.append(Rejected(doc_id, TOO_SHORT, f"{len(tokens)} tokens < min_tokens={min_tokens}", text))
        else:
            kept.append({"doc_id": doc_id, "split": "", "n_tokens": len(tokens), "tokens": tokens})
    if len(kept) >= 2:
        _, validation = train_validation_split([row["doc_id"] for row in kept], validation_fraction, seed)
        held_out = set(validation)
        for row in kept:
            row["split"] = "validation" if row["doc_id"] in held_out else "train"
    elif kept:
        raise ValueError(f"only {len(kept)} document has >= {min_tokens} tokens: need two for a train/validation split")
    result = split(kept, CORPUS_SCHEMA, rejected, docs.height, REASONS)
    return Split(result.kept.sort("doc_id"), result.quarantined, result.rows_in)


def split_stream(corpus: pl.DataFrame, which: str) -> np.ndarray:
    """All tokens of one split, documents concatenated in doc_id order."""
    if which not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {which!r}")
    rows = corpus.filter(pl.col("split") == which).sort("doc_id")["tokens"].to_list()
    if not rows:
        raise ValueError(f"the corpus has no {which} documents")
    return np.concatenate([np.asarray(tokens, dtype=np.uint16) for tokens in rows])
