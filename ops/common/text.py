"""Text normalization and content hashing shared by every domain.

One definition of "the same text" for the whole project: exact deduplication, cache keys and
content versions all go through these functions.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\ufeff]")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_SPACE_AROUND_NEWLINE = re.compile(r" *\n *")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_ANY_SPACE = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Return `text` in NFC with control characters and NULs removed and whitespace folded.

    Paragraph breaks survive (at most one blank line in a row) because document structure is signal
    for later annotation; runs of spaces, tabs and other horizontal whitespace become one space.
    """
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL_CHARS.sub("", text)
    text = _HORIZONTAL_SPACE.sub(" ", text)
    text = _SPACE_AROUND_NEWLINE.sub("\n", text)
    return _MANY_NEWLINES.sub("\n\n", text).strip()


def dedup_key(text: str) -> str:
    """Hash under which two texts count as exact duplicates: case-folded, all whitespace folded.

    Documents that differ only in spacing or line breaks therefore collide on purpose.
    """
    folded = _ANY_SPACE.sub(" ", unicodedata.normalize("NFC", text).casefold()).strip()
    return sha256_hex(folded)[:32]


def sha256_hex(text: str | bytes) -> str:
    """Hex sha256 of a string (UTF-8) or bytes."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def sql_literal(value: str) -> str:
    """A string as a single-quoted SQL literal (quotes doubled), for DuckDB and LanceDB filters."""
    return "'" + value.replace("'", "''") + "'"
