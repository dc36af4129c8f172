"""Turn raw web records into clean documents plus a quarantine table, losing nothing.

Each raw row ends in exactly one of the two outputs. The first rule a record breaks is its
quarantine reason, in this order: unreadable record, no text, markup instead of text, length
bounds, language, exact duplicate (the first occurrence in the shard is kept).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import NamedTuple

import polars as pl

from ops.common.text import dedup_key, normalize_text

CLEAN_SCHEMA = {
    "doc_id": pl.String,
    "shard": pl.String,
    "line": pl.Int64,
    "url": pl.String,
    "source_date": pl.String,
    "text": pl.String,
    "chars": pl.Int64,
    "language": pl.String,
    "language_score": pl.Float64,
    "text_hash": pl.String,
}
QUARANTINE_SCHEMA = {
    "doc_id": pl.String,
    "shard": pl.String,
    "line": pl.Int64,
    "url": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "chars": pl.Int64,
    "text_excerpt": pl.String,
}
REASONS = ("unreadable", "no_text", "markup", "too_short", "too_long", "language", "duplicate")
EXCERPT_CHARS = 500
_LANGUAGE_SAMPLE_CHARS = 3_000
_TAG = re.compile(r"<[^>]{0,2000}>")


@dataclass(frozen=True)
class CleaningRules:
    """Bounds a document must meet to be kept (config of the `web_docs` asset)."""

    min_chars: int = 200
    max_chars: int = 100_000
    languages: tuple[str, ...] = ("en",)  # empty: keep every language
    min_language_score: float = 0.5
    max_markup_share: float = 0.3


class Rejection(NamedTuple):
    """Why a record is quarantined: a reason from REASONS and a human-readable detail."""

    reason: str
    detail: str


@dataclass(frozen=True)
class CleaningResult:
    """The two outputs of cleaning one shard; `kept.height + quarantined.height == rows in`."""

    kept: pl.DataFrame
    quarantined: pl.DataFrame


def clean_documents(raw: pl.DataFrame, rules: CleaningRules) -> CleaningResult:
    """Normalize, identify language, bound length and deduplicate one shard of raw records."""
    kept, quarantined = [], []
    first_seen: dict[str, str] = {}
    for row in raw.iter_rows(named=True):
        verdict = _judge(row, rules)
        if isinstance(verdict, Rejection):
            quarantined.append(_quarantine_row(row, *verdict))
            continue
        text, language, score = verdict
        key = dedup_key(text)
        if key in first_seen:
            quarantined.append(_quarantine_row(row, "duplicate", f"same normalized text as {first_seen[key]}"))
            continue
        first_seen[key] = row["doc_id"]
        kept.append(
            (
                row["doc_id"],
                row["shard"],
                row["line"],
                row["url"],
                row["source_date"],
                text,
                len(text),
                language,
                score,
                key,
            )
        )
    return CleaningResult(
        kept=pl.DataFrame(kept, schema=CLEAN_SCHEMA, orient="row"),
        quarantined=pl.DataFrame(quarantined, schema=QUARANTINE_SCHEMA, orient="row"),
    )


def _judge(row: dict, rules: CleaningRules) -> Rejection | tuple[str, str, float]:
    """The Rejection of a record to quarantine, else (clean text, language, score)."""
    if row["read_error"] is not None:
        return Rejection("unreadable", row["read_error"])
    raw_text = row["text"]
    if raw_text is None or not raw_text.strip():
        return Rejection("no_text", "the text is empty or whitespace only")
    text = normalize_text(raw_text)
    markup_share = sum(len(tag) for tag in _TAG.findall(text)) / max(len(text), 1)
    if markup_share > rules.max_markup_share:
        return Rejection("markup", f"{markup_share:.0%} of the characters are HTML tags")
    if len(text) < rules.min_chars:
        return Rejection("too_short", f"{len(text)} characters after normalization (minimum {rules.min_chars})")
    if len(text) > rules.max_chars:
        return Rejection("too_long", f"{len(text)} characters after normalization (maximum {rules.max_chars})")
    language, score = identify_language(text)
    if rules.languages and (language not in rules.languages or score < rules.min_language_score):
        return Rejection("language", f"identified as {language!r} with probability {score:.2f}")
    return text, language, score


def identify_language(text: str) -> tuple[str, float]:
    """ISO 639-1 code and probability of the text's language (py3langid, model shipped in the wheel)."""
    language, score = _language_identifier().classify(text[:_LANGUAGE_SAMPLE_CHARS])
    return language, float(score)


@cache
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _quarantine_row(row: dict, reason: str, detail: str) -> tuple:
    text = row["text"]
    return (
        row["doc_id"],
        row["shard"],
        row["line"],
        row["url"],
        reason,
        detail,
        None if text is None else len(text),
        None if text is None else text[:EXCERPT_CHARS],
    )
