"""The fabricated-reference detector: what a rewritten query cites that neither the query nor the key points hold.

QUBRIC's failure mode of naive narrowing: the rewrite adds a named report, dataset, URL, quotation or
figure that no answering model can see or check, so every response fails the rubric. The detector is
deterministic and conservative about what counts as a reference:

- `url`: http(s)/www addresses and bare domains (example.org);
- `quote`: a quotation of three or more words in straight or curly double quotes;
- `figure`: a number with two or more digits, a decimal, a percentage or an amount of money (a single
  digit, e.g. "list 3 ways", is structure, not a reference);
- `citation`: "Name et al." with an optional year;
- `standard`: an identifier such as ISO 27001 or RFC 7231;
- `document`: a capitalized name followed by a document word (the Gartner Cloud Report, the XYZ dataset).

A reference is fabricated when its text (case-folded, whitespace folded; digits alone for figures) is not
found in the query or the key points.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_DOC_WORDS = (
    "report|dataset|data set|database|study|paper|survey|guidelines?|act|standard|policy|memo|handbook|manual|"
    "article|book|whitepaper|white paper|benchmark|corpus|framework|specification|regulation|directive|case"
)
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("url", re.compile(r"\bhttps?://[^\s<>\"')\]]+|\bwww\.[^\s<>\"')\]]+|\b[\w-]+\.(?:com|org|net|io|gov|edu)\b")),
    ("quote", re.compile(r"[\"“]([^\"“”]*?\S\s+\S+\s+\S[^\"“”]*?)[\"”]")),
    ("citation", re.compile(r"\b[A-Z][a-z]+ et al\.?(?:,? \(?\d{4}\)?)?")),
    ("standard", re.compile(r"\b[A-Z]{2,}[- ]?\d{2,}(?:[-.:]\d+)*\b")),
    ("document", re.compile(rf"\b((?:[A-Z][\w&'-]*\s+){{1,5}})(?i:{_DOC_WORDS})\b")),
    ("figure", re.compile(r"[$€£]\s?\d[\d,]*(?:\.\d+)?|\b\d[\d,]*\.\d+%?|\b\d[\d,]*%|\b\d{2,}(?:,\d{3})*\b")),
)
_LEADING_ARTICLE = re.compile(r"^(?:the|a|an|according to|in|per)\s+", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+(?:\.\d+)?")


def _fold(text: str) -> str:
    return _SPACE.sub(" ", text.casefold()).strip()


def references(text: str) -> list[tuple[str, str]]:
    """Every `(kind, reference)` the patterns find in `text`, in order, without duplicates.

    A span already claimed by an earlier kind (a URL's digits, a quoted figure) is not counted again.
    """
    found: list[tuple[str, str]] = []
    claimed: list[tuple[int, int]] = []
    for kind, pattern in _PATTERNS:
        for match in pattern.finditer(text):
            span = match.span()
            if any(start < span[1] and span[0] < end for start, end in claimed):
                continue
            value = (match.group(1) if kind == "quote" else match.group(0)).strip().rstrip(".,;:")
            if kind == "document":
                value = _LEADING_ARTICLE.sub("", value)
            claimed.append(span)
            if (kind, value) not in found:
                found.append((kind, value))
    return found


def _present(kind: str, value: str, source: str, source_numbers: set[str]) -> bool:
    if kind == "figure":
        numbers = [number.replace(",", "") for number in _DIGITS.findall(value.replace(",", ""))]
        return all(number in source_numbers for number in numbers)
    if kind == "document":
        name = _fold(value).rsplit(" ", 1)[0]
        return _fold(value) in source or name in source
    return _fold(value) in source


def fabricated_references(rewrite: str, query: str, key_points: Sequence[str] = ()) -> list[str]:
    """The references of `rewrite` found in neither `query` nor `key_points`, as "kind: text" strings."""
    source_text = "\n".join([query, *key_points])
    source = _fold(source_text)
    source_numbers = set(_DIGITS.findall(source_text.replace(",", "")))
    found = references(rewrite)
    return [f"{kind}: {value}" for kind, value in found if not _present(kind, value, source, source_numbers)]
