"""Content versions of tables: equal content gives an equal version, whatever produced it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

import polars as pl

VERSION_CHARS = 16
_SLICE_ROWS = 65_536


def frame_version(frame: pl.DataFrame) -> str:
    """Return a short hash of a frame's schema and values, in row order.

    Values are serialised slice by slice as NDJSON after the dtypes: unlike Arrow IPC bytes, that
    text does not depend on how polars chunked the columns in memory, and memory stays bounded by
    one slice.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps({name: str(dtype) for name, dtype in frame.schema.items()}).encode())
    digest.update(str(frame.height).encode())
    for start in range(0, frame.height, _SLICE_ROWS):
        digest.update(frame.slice(start, _SLICE_ROWS).write_ndjson().encode())
    return digest.hexdigest()[:VERSION_CHARS]


def combine_versions(parts: Iterable[str]) -> str:
    """Version of something built from several versioned parts (order matters)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:VERSION_CHARS]
