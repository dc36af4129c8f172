"""Persistent cache of LLM completions, so an interrupted or repeated run never pays twice.

One SQLite file in WAL mode: several processes (e.g. partitions run by the multiprocess executor)
can read and write it at once, and every completion is committed on its own, so a killed run keeps
everything that finished before it died.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ops.common.llm import ChatRequest
from ops.common.text import sha256_hex

DEFAULT_CACHE_PATH = ".assay/cache/llm.sqlite"
_SQLITE_MAX_VARIABLES = 500
_BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS completions (
    key TEXT PRIMARY KEY,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created_at REAL NOT NULL,
    finish_reason TEXT
)
"""


@dataclass(frozen=True)
class CachedCompletion:
    """What the cache keeps for one completion."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None = None


def completion_key(backend: str, model_id: str, request: ChatRequest) -> str:
    """Cache key of a request: sha256 of canonical JSON of everything that shapes the output.

    `request_id` is left out on purpose: it names the caller's item, not the completion.
    """
    payload = {
        "backend": backend,
        "model": model_id,
        "messages": [dict(message) for message in request.messages],
        "params": {
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "seed": request.seed,
        },
        "json_schema": request.json_schema,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return sha256_hex(canonical)


class LLMCache:
    """Completion cache in one SQLite file; thread-safe within a process, WAL across processes."""

    def __init__(self, path: str | Path = DEFAULT_CACHE_PATH) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(
            self.path, timeout=_BUSY_TIMEOUT_MS / 1000, check_same_thread=False, isolation_level=None
        )
        # WAL is a property of the file, set once by its first writer: switching modes needs an exclusive lock that
        # a second process opening the file mid-write could not get (the concurrent-writers test failed once so).
        if self._connection.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        self._connection.execute(_SCHEMA)
        self._add_finish_reason()

    def _add_finish_reason(self) -> None:
        """Cache files written before `finish_reason` was kept get the column (NULL for old entries)."""
        columns = {row[1] for row in self._connection.execute("PRAGMA table_info(completions)")}
        if "finish_reason" not in columns:
            try:
                self._connection.execute("ALTER TABLE completions ADD COLUMN finish_reason TEXT")
            except sqlite3.OperationalError as error:  # another process added it first
                if "duplicate column" not in str(error):
                    raise

    def get_many(self, keys: Sequence[str]) -> dict[str, CachedCompletion]:
        """Return the cached completions among `keys` (missing keys are simply absent)."""
        found: dict[str, CachedCompletion] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), _SQLITE_MAX_VARIABLES):
                chunk = unique[start : start + _SQLITE_MAX_VARIABLES]
                placeholders = ",".join("?" * len(chunk))
                rows = self._connection.execute(
                    "SELECT key, text, prompt_tokens, completion_tokens, finish_reason FROM completions "
                    f"WHERE key IN ({placeholders})",
                    chunk,
                ).fetchall()
                for key, text, prompt_tokens, completion_tokens, finish_reason in rows:
                    found[key] = CachedCompletion(text, prompt_tokens, completion_tokens, finish_reason)
        return found

    def put(
        self, key: str, text: str, prompt_tokens: int, completion_tokens: int, finish_reason: str | None = None
    ) -> None:
        """Store one completion and commit it at once (autocommit), replacing any older entry."""
        with self._lock:
            self._connection.execute(
                "INSERT OR REPLACE INTO completions "
                "(key, text, prompt_tokens, completion_tokens, created_at, finish_reason) VALUES (?, ?, ?, ?, ?, ?)",
                (key, text, prompt_tokens, completion_tokens, time.time(), finish_reason),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._connection.execute("SELECT COUNT(*) FROM completions").fetchone()[0]

    def close(self) -> None:
        """Close the connection; the file stays for the next run."""
        with self._lock:
            self._connection.close()
