"""Open-ended queries in, kept or quarantined with a reason; a deterministic train/held-out split.

A query is data: text that tells a model to ignore its instructions is kept (flagged
`injection_suspect`) and every prompt that carries it wraps it between data markers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from ops.common.quarantine import Rejected, Split, split
from ops.common.text import normalize_text, sha256_hex

QUERY_SCHEMA: dict[str, pl.DataType] = {
    "query_id": pl.String(),
    "source": pl.String(),
    "cluster": pl.String(),
    "query": pl.String(),
    "injection_suspect": pl.Boolean(),
    "split": pl.String(),
}
QUERY_REASONS = ("malformed_json", "missing_query", "empty_query", "too_long", "non_english", "duplicate_id")
TRAIN, HELDOUT = "train", "heldout"

_INJECTION = re.compile(
    r"ignore (all |any )?(the |your )?(previous |prior |above )?(instructions|rules|prompt)|disregard (the |your )?"
    r"(previous |above )?(instructions|rules)|you are now|system prompt|jailbreak",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_ENGLISH_WORDS = "the a an and or of to in is are be for with on that this it how what why i you my me"
_OTHER_WORDS = (
    "der die das und ist nicht ich ein eine mit für le la les et est une des pour pas el los las y es por para "
    "una que il di che non per della gli não uma com"
)


def is_english(text: str) -> bool:
    """A cheap language gate for English-only teachers and judges: mostly Latin letters, and not more
    function words of German, French, Spanish, Italian or Portuguese than of English."""
    letters = [char for char in text if char.isalpha()]
    if not letters:
        return True
    latin = sum(char.isascii() or "\u00c0" <= char <= "\u024f" for char in letters)
    if latin / len(letters) < 0.7:
        return False
    words = [word.casefold() for word in _WORD.findall(text)]
    other = sum(word in _OTHER_WORDS.split() for word in words)
    return other < 2 or other <= sum(word in _ENGLISH_WORDS.split() for word in words)


def injection_suspect(text: str) -> bool:
    """True when the query addresses the model's instructions (kept as data, flagged for review)."""
    return bool(_INJECTION.search(text))


def heldout_ids(query_ids: Iterable[str], heldout_share: float, seed: int = 0) -> set[str]:
    """The held-out queries: the `floor(n * share)` ids with the smallest sha256(seed|id), at least one when
    there are two or more queries and the share is positive (a tiny local run still evaluates something)."""
    ids = sorted(set(query_ids), key=lambda query_id: sha256_hex(f"{seed}|{query_id}"))
    if len(ids) < 2 or heldout_share <= 0:
        return set()
    return set(ids[: min(len(ids) - 1, max(1, math.floor(len(ids) * heldout_share)))])


def read_jsonl(path: Path, source: str) -> list[tuple[str, Any]]:
    """`(record id, parsed record or the raw line when it is not JSON)` for every non-blank line."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{source}:{number}", json.loads(line)))
        except json.JSONDecodeError:
            records.append((f"{source}:{number}", line))
    return records


def _query_text(record: dict[str, Any]) -> Any:
    """The query of an Arena-Hard row (`prompt`), a `{"query"}` row, or a v2 row (`turns[0].content`)."""
    if "prompt" in record or "query" in record:
        return record.get("prompt", record.get("query"))
    turns = record.get("turns")
    return turns[0].get("content") if isinstance(turns, list) and turns and isinstance(turns[0], dict) else None


def load_queries(
    records: Iterable[tuple[str, Any]],
    max_chars: int = 8000,
    keep_non_english: bool = False,
    heldout_share: float = 0.25,
    seed: int = 0,
) -> Split:
    """Validate `(record id, record)` pairs into `QUERY_SCHEMA` rows; refused rows get a reason code.

    The query id is the record's `uid`/`id`, else the record id (source:line). Text is NFC-normalized;
    a query over `max_chars` is refused (`too_long`), not cut: a cut question is another question.
    """
    kept: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    seen: set[str] = set()
    records = list(records)
    for record_id, record in records:
        reason = _refusal(record, max_chars, keep_non_english)
        query_id = str(record.get("uid") or record.get("id") or record_id) if isinstance(record, dict) else record_id
        if reason is None and query_id in seen:
            reason = ("duplicate_id", f"query id {query_id!r} occurs twice")
        if reason is not None:
            rejected.append(Rejected(query_id, reason[0], reason[1], record))
            continue
        seen.add(query_id)
        text = normalize_text(_query_text(record))
        kept.append(
            {
                "query_id": query_id,
                "source": record_id.split(":", 1)[0],
                "cluster": str(record.get("cluster") or ""),
                "query": text,
                "injection_suspect": injection_suspect(text),
                "split": TRAIN,
            }
        )
    held = heldout_ids([row["query_id"] for row in kept], heldout_share, seed)
    kept = [{**row, "split": HELDOUT if row["query_id"] in held else TRAIN} for row in kept]
    return split(kept, QUERY_SCHEMA, rejected, len(records), QUERY_REASONS)


def _refusal(record: Any, max_chars: int, keep_non_english: bool) -> tuple[str, str] | None:
    if not isinstance(record, dict):
        return "malformed_json", "the line is not a JSON object"
    text = _query_text(record)
    if not isinstance(text, str):
        return "missing_query", "no string `prompt`, `query` or `turns[0].content`"
    text = normalize_text(text)
    if not text:
        return "empty_query", "the query is empty after normalization"
    if len(text) > max_chars:
        return "too_long", f"{len(text)} characters, more than {max_chars}"
    if not keep_non_english and not is_english(text):
        return "non_english", "not English: the local teacher and judge read English only"
    return None
