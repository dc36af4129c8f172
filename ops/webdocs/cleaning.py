"""Turn raw web records into clean documents plus a quarantine table, losing nothing.

Each raw row ends in exactly one of the two outputs. The first rule a record breaks is its
quarantine reason, in this order: unreadable shard or record, no text, markup instead of text, length
bounds, language, the document quality rules (`ops.webdocs.quality_rules`: Gopher, C4, FineWeb), exact
duplicate (the first occurrence in the shard is kept).

Markup counts HTML elements only (`<div class="x">`, `</p>`, `<!-- -->`, `<!DOCTYPE html>`), so the
angle brackets of code (`std::vector<int>`, `Map<String, List<Integer>>`, `#include <iostream>`, `a < b`)
are text. Language is identified on the whole text, or on windows spread over a long one.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import NamedTuple

import polars as pl

from ops.common.quarantine import QUARANTINE_SCHEMA as SHARED_QUARANTINE_SCHEMA
from ops.common.quarantine import Rejected, Split, split
from ops.common.text import dedup_key, normalize_text
from ops.webdocs.quality_rules import QUALITY_REASONS, QualityRules, quality_rejection
from ops.webdocs.reading import unreadable_shard

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
# The shared quarantine columns (record_id = doc_id, excerpt = the start of the raw text) plus where the
# record sits and how long its text was.
QUARANTINE_SCHEMA = {
    **SHARED_QUARANTINE_SCHEMA,
    "shard": pl.String,
    "line": pl.Int64,
    "url": pl.String,
    "chars": pl.Int64,
}
REASONS = (
    "unreadable_shard",
    "unreadable",
    "no_text",
    "markup",
    "too_short",
    "too_long",
    "language",
    *QUALITY_REASONS,
    "duplicate",
)
LANGUAGE_WHOLE_TEXT_CHARS = 10_000  # longer texts are identified on windows spread across them
LANGUAGE_WINDOWS = 10
LANGUAGE_WINDOW_CHARS = 1_000
# HTML elements (WHATWG living standard plus common obsolete ones), comments and doctypes: the only
# angle-bracket spans that count as markup.
HTML_ELEMENTS = frozenset(
    (
        "a", "abbr", "address", "area", "article", "aside", "audio", "b", "base", "bdi", "bdo", "blockquote", "body",
        "br", "button", "canvas", "caption", "center", "cite", "code", "col", "colgroup", "data", "datalist", "dd",
        "del", "details", "dfn", "dialog", "div", "dl", "dt", "em", "embed", "fieldset", "figcaption", "figure", "font",
        "footer", "form", "frame", "frameset", "h1", "h2", "h3", "h4", "h5", "h6", "head", "header", "hgroup", "hr",
        "html", "i", "iframe", "img", "input", "ins", "kbd", "label", "legend", "li", "link", "main", "map", "mark",
        "menu", "meta", "meter", "nav", "noscript", "object", "ol", "optgroup", "option", "output", "p", "param",
        "picture", "pre", "progress", "q", "rp", "rt", "ruby", "s", "samp", "script", "search", "section", "select",
        "slot", "small", "source", "span", "strike", "strong", "style", "sub", "summary", "sup", "svg", "table",
        "tbody", "td", "template", "textarea", "tfoot", "th", "thead", "time", "title", "tr", "track", "tt", "u", "ul",
        "var", "video", "wbr"
    )
)  # fmt: skip
_TAG = re.compile(r"<!--.{0,2000}?-->|<!doctype[^<>]{0,200}>|</?([a-z][a-z0-9]*)(?:\s[^<>]{0,2000})?/?>", re.I | re.S)


@dataclass(frozen=True)
class CleaningRules:
    """Bounds a document must meet to be kept (config of the `web_docs` asset)."""

    min_chars: int = 200
    max_chars: int = 100_000
    languages: tuple[str, ...] = ("en",)  # empty: keep every language
    min_language_score: float = 0.5
    max_markup_share: float = 0.3
    quality: QualityRules | None = field(default_factory=QualityRules)  # None: no quality rules

    def to_json(self) -> str:
        """The rules as JSON (asset metadata), readable back with `from_json`."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> CleaningRules:
        """Rules back from `to_json` (also reads the older form without quality rules)."""
        values = json.loads(text)
        quality = values.pop("quality", None)
        values["languages"] = tuple(values.get("languages", ()))
        return cls(**values, quality=None if quality is None else QualityRules.from_dict(quality))


class Rejection(NamedTuple):
    """Why a record is quarantined: a reason from REASONS and a human-readable detail."""

    reason: str
    detail: str


def clean_documents(raw: pl.DataFrame, rules: CleaningRules) -> Split:
    """Normalize, identify language, bound length and deduplicate one shard of raw records: the kept
    documents (`CLEAN_SCHEMA`) and the quarantined records (`QUARANTINE_SCHEMA`), rows in = raw rows."""
    kept, quarantined = [], []
    first_seen: dict[str, str] = {}
    whole_shard = unreadable_shard(raw)
    for row in raw.iter_rows(named=True):
        verdict = _judge(row, rules, whole_shard)
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
            {
                "doc_id": row["doc_id"],
                "shard": row["shard"],
                "line": row["line"],
                "url": row["url"],
                "source_date": row["source_date"],
                "text": text,
                "chars": len(text),
                "language": language,
                "language_score": score,
                "text_hash": key,
            }
        )
    return split(kept, CLEAN_SCHEMA, quarantined, raw.height, REASONS, QUARANTINE_SCHEMA)


def _judge(row: dict, rules: CleaningRules, whole_shard: bool) -> Rejection | tuple[str, str, float]:
    """The Rejection of a record to quarantine, else (clean text, language, score)."""
    if row["read_error"] is not None:
        return Rejection("unreadable_shard" if whole_shard else "unreadable", row["read_error"])
    raw_text = row["text"]
    if raw_text is None or not raw_text.strip():
        return Rejection("no_text", "the text is empty or whitespace only")
    text = normalize_text(raw_text)
    markup_share = html_markup_share(text)
    if markup_share > rules.max_markup_share:
        return Rejection("markup", f"{markup_share:.0%} of the characters are HTML tags")
    if len(text) < rules.min_chars:
        return Rejection("too_short", f"{len(text)} characters after normalization (minimum {rules.min_chars})")
    if len(text) > rules.max_chars:
        return Rejection("too_long", f"{len(text)} characters after normalization (maximum {rules.max_chars})")
    language, score = identify_language(text)
    if rules.languages and (language not in rules.languages or score < rules.min_language_score):
        return Rejection("language", f"identified as {language!r} with probability {score:.2f}")
    if rules.quality is not None and (verdict := quality_rejection(text, rules.quality)) is not None:
        return Rejection(*verdict)
    return text, language, score


def html_markup_share(text: str) -> float:
    """Share of the characters inside HTML tags, comments or doctypes (code's angle brackets excluded)."""
    tags = 0
    for match in _TAG.finditer(text):
        name = match.group(1)
        if name is None or name.lower() in HTML_ELEMENTS:
            tags += match.end() - match.start()
    return tags / max(len(text), 1)


def identify_language(text: str) -> tuple[str, float]:
    """ISO 639-1 code and probability of the text's language (py3langid, model shipped in the wheel).

    The whole text is read up to LANGUAGE_WHOLE_TEXT_CHARS; a longer one through LANGUAGE_WINDOWS
    windows spread evenly from its start to its end, so a head of page numbers or a menu does not
    decide alone.
    """
    language, score = _language_identifier().classify(language_sample(text))
    return language, float(score)


def language_sample(text: str) -> str:
    """The text itself when short, else evenly spaced windows from start to end joined by newlines."""
    if len(text) <= LANGUAGE_WHOLE_TEXT_CHARS:
        return text
    step = (len(text) - LANGUAGE_WINDOW_CHARS) / (LANGUAGE_WINDOWS - 1)
    starts = [round(index * step) for index in range(LANGUAGE_WINDOWS)]
    return "\n".join(text[start : start + LANGUAGE_WINDOW_CHARS] for start in starts)


@cache
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _quarantine_row(row: dict, reason: str, detail: str) -> Rejected:
    text = row["text"]
    where = {
        "shard": row["shard"],
        "line": row["line"],
        "url": row["url"],
        "chars": None if text is None else len(text),
    }
    return Rejected(row["doc_id"], reason, detail, text, where)
