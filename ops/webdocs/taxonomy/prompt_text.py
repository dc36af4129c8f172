"""The annotation prompts, read from `prompts/*.txt`, and the version that names them.

`PROMPT_VERSION` hashes every prompt file and the label sets (which shape the JSON schema), so it
changes whenever what the teacher is asked changes; assets record it next to the teacher model.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from ops.common.text import sha256_hex
from ops.webdocs.taxonomy.labels import LABEL_SETS_PATH, PASS_NAMES

PROMPTS_DIR = Path(__file__).with_name("prompts")
DOCUMENT_SLOT = "{document}"
MARKER_PREFIX = "<<<"  # document markers start with it; the document text may never contain it


@cache
def system_prompt(pass_name: str) -> str:
    """System prompt of a pass ("pass_1", ...): instructions and the codes of its fields."""
    if pass_name not in PASS_NAMES:
        raise KeyError(f"unknown pass {pass_name!r}; expected one of {', '.join(PASS_NAMES)}")
    return (PROMPTS_DIR / f"{pass_name}.txt").read_text(encoding="utf-8").strip()


@cache
def _user_template() -> str:
    return (PROMPTS_DIR / "user.txt").read_text(encoding="utf-8").strip()


def user_message(document: str) -> str:
    """The user turn: the document between the markers, with anything that could forge one defused."""
    return _user_template().replace(DOCUMENT_SLOT, defuse_markers(document))


def defuse_markers(document: str) -> str:
    """The document with every "<<<" broken up, so no text inside it can close or open the data block."""
    while MARKER_PREFIX in document:
        document = document.replace(MARKER_PREFIX, "<< <")
    return document


def _prompt_version() -> str:
    files = [*sorted(PROMPTS_DIR.glob("*.txt")), LABEL_SETS_PATH]
    return sha256_hex(b"".join(path.name.encode() + b"\0" + path.read_bytes() + b"\0" for path in files))[:12]


PROMPT_VERSION: str = _prompt_version()
