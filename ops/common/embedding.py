"""The text-embedding contract between domain logic and whatever model computes the vectors.

`ops/` code takes an `Embedder` and never knows whether the offline E5 engine, sentence-transformers
or a test fake answers; the Dagster resource in `resources/embedder.py` implements it, so domain
functions (E5-MLP filters, retrieval, dedup) are unit-tested and reused without Dagster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Anything that turns texts into unit-length float32 vectors.

    Rows are L2-normalized, so a dot product is a cosine similarity. Passages (documents) and queries
    are separate calls because asymmetric models such as E5 embed them with different prefixes;
    symmetric models may return the same vector for both.
    """

    @property
    def model_id(self) -> str:
        """Stable name of the model (backend and model), used in cache keys and artifact metadata."""
        ...

    @property
    def dim(self) -> int:
        """Number of columns of every returned matrix."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """Float32 array of shape (len(texts), dim), one normalized row per document, same order."""
        ...

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Float32 array of shape (len(texts), dim), one normalized row per search query, same order."""
        ...
