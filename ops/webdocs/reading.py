"""Read one input shard of web documents (JSON Lines or Parquet) into the raw record table.

Every non-blank line becomes exactly one row, including lines that are broken (not JSON, bad
UTF-8, no text): those carry a `read_error` so that cleaning quarantines them with the reason
instead of the reader dropping them; a shard none of whose lines is readable is quarantined as a
whole. A file that yields no record at all (missing, empty, not Parquet) raises `ShardReadError`;
`read_shard_or_record` turns that error into one line-0 row, so that the shard is recorded as
unreadable and the corpus proceeds without it instead of waiting for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq

RAW_SCHEMA = {
    "doc_id": pl.String,
    "shard": pl.String,
    "line": pl.Int64,
    "url": pl.String,
    "source_date": pl.String,
    "text": pl.String,
    "read_error": pl.String,
}
SUPPORTED_SUFFIXES = (".jsonl", ".json", ".ndjson", ".parquet")
_PARQUET_BATCH_ROWS = 10_000


class ShardReadError(ValueError):
    """A shard file that cannot be read at all; the message names the file and line."""


def shard_files(folder: str | Path) -> list[Path]:
    """Input files in a folder that the reader understands, sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise ShardReadError(f"{root}: input folder does not exist")
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)


def read_shard(path: str | Path, shard: str) -> pl.DataFrame:
    """Read a shard file into RAW_SCHEMA rows, one per non-blank line (or Parquet row)."""
    path = Path(path)
    if not path.exists():
        raise ShardReadError(f"{path}: shard file does not exist")
    rows = _read_parquet(path, shard) if path.suffix.lower() == ".parquet" else _read_jsonl(path, shard)
    frame = pl.DataFrame(rows, schema=RAW_SCHEMA, orient="row")
    if frame.height == 0:
        raise ShardReadError(f"{path}: the file is empty (no records)")
    return frame


def read_shard_or_record(path: str | Path, shard: str) -> pl.DataFrame:
    """`read_shard`, or, for a file that cannot be read at all, one line-0 row whose `read_error` says why."""
    try:
        return read_shard(path, shard)
    except ShardReadError as exc:
        row = (f"{shard}:file", shard, 0, None, None, None, f"unreadable shard: {exc}")
        return pl.DataFrame([row], schema=RAW_SCHEMA, orient="row")


def unreadable_shard(raw: pl.DataFrame) -> bool:
    """True when no record of the shard could be read (every row carries a `read_error`)."""
    return raw.height > 0 and bool(raw["read_error"].is_not_null().all())


def _read_jsonl(path: Path, shard: str) -> list[tuple]:
    rows = []
    with path.open("rb") as handle:
        for line_number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            rows.append(_parse_line(raw, line_number, shard))
    return rows


def _parse_line(raw: bytes, line_number: int, shard: str) -> tuple:
    encoding_error = None
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Decode with replacement only to recover the id and url for the quarantine row.
        decoded = raw.decode("utf-8", errors="replace")
        encoding_error = f"invalid UTF-8 at byte {exc.start} of the line"
    fallback = (f"{shard}:{line_number}", shard, line_number, None, None, decoded[:2000])
    try:
        record = json.loads(decoded)
    except json.JSONDecodeError as exc:
        return (*fallback, encoding_error or f"not JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(record, dict):
        return (*fallback, encoding_error or f"a JSON {type(record).__name__}, not an object")
    row = _record_row(record, line_number, shard)
    return (*row[:-1], encoding_error or row[-1])


def _record_row(record: dict[str, Any], line_number: int, shard: str) -> tuple:
    """Map a source record (C4: text/url/timestamp; Dolma: id/text/metadata.url/created) to a row."""
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    source_id = record.get("id")
    doc_id = str(source_id) if source_id not in (None, "") else f"{shard}:{line_number}"
    url = record.get("url") or metadata.get("url")
    source_date = record.get("date") or record.get("timestamp") or record.get("created")
    text = record.get("text")
    error = None  # a missing text is not a read error: cleaning quarantines it as `no_text`
    if text is not None and not isinstance(text, str):
        error = f"`text` is a {type(text).__name__}, not a string"
        text = None
    return (
        doc_id,
        shard,
        line_number,
        None if url is None else str(url),
        None if source_date is None else str(source_date),
        text,
        error,
    )


def _read_parquet(path: Path, shard: str) -> list[tuple]:
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise ShardReadError(f"{path}: not a readable Parquet file: {exc}") from exc
    if "text" not in parquet.schema_arrow.names:
        raise ShardReadError(f"{path}: Parquet file has no `text` column (columns: {parquet.schema_arrow.names})")
    rows, line_number = [], 0
    for batch in parquet.iter_batches(batch_size=_PARQUET_BATCH_ROWS):
        for record in batch.to_pylist():
            line_number += 1
            rows.append(_record_row(record, line_number, shard))
    return rows
