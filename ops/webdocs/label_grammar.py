"""The condensed label line as a prefix automaton, for decoding that can only write parseable lines.

`parse_condensed` reads "fdc:005,51|bcp:3|...": every taxonomy field once, in taxonomy order, each
"<key>:<primary>[,<secondary>]" with codes from the field's label set (no secondary after the abstain
code). `LabelGrammar.advance` walks that language character by character, so a decoder can ask which
next tokens keep the text a valid prefix and when the line is complete. Every complete line parses,
and every valid prefix can be completed (no dead ends), so a decoder allowed `max_chars` characters
always ends with a parseable line.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from ops.webdocs.taxonomy import ABSTAIN, FIELDS, condensed_key, field_codes

FIELD_SEPARATOR, KEY_SEPARATOR, CODE_SEPARATOR = "|", ":", ","
KEY, PRIMARY, SECONDARY = 0, 1, 2


@dataclass(frozen=True)
class GrammarState:
    """Where a prefix stands: which field, which part of it (key, primary, secondary), and what of it is typed."""

    field: int = 0
    part: int = KEY
    typed: str = ""


class LabelGrammar:
    """Prefix automaton of condensed label lines over the taxonomy fields (see module docstring)."""

    def __init__(self) -> None:
        self.keys = [condensed_key(field) + KEY_SEPARATOR for field in FIELDS]
        self.primary = [frozenset(field_codes(field)) for field in FIELDS]
        self.secondary = [codes - {ABSTAIN} for codes in self.primary]
        self._prefixes = [_prefixes(codes) for codes in self.primary]
        self._secondary_prefixes = [_prefixes(codes) for codes in self.secondary]

    @property
    def start(self) -> GrammarState:
        """The state of the empty line."""
        return GrammarState()

    @cached_property
    def alphabet(self) -> frozenset[str]:
        """Every character a label line can contain."""
        chars = {FIELD_SEPARATOR, CODE_SEPARATOR, *"".join(self.keys)}
        return frozenset(chars | {char for codes in self.primary for code in codes for char in code})

    @cached_property
    def max_chars(self) -> int:
        """Length of the longest complete line."""
        longest = [max(map(len, codes)) for codes in self.primary]
        return sum(len(key) + 2 * size + 1 for key, size in zip(self.keys, longest, strict=True)) + len(FIELDS) - 1

    def advance(self, state: GrammarState | None, text: str) -> GrammarState | None:
        """The state after `text`, or None when `text` leaves the language."""
        for char in text:
            if state is None:
                return None
            state = self._step(state, char)
        return state

    def is_complete(self, state: GrammarState | None) -> bool:
        """Whether the line may end here (the last field has a whole code)."""
        if state is None or state.field != len(FIELDS) - 1:
            return False
        codes = self.primary if state.part == PRIMARY else self.secondary
        return state.part != KEY and state.typed in codes[state.field]

    def _step(self, state: GrammarState, char: str) -> GrammarState | None:
        index, last = state.field, len(FIELDS) - 1
        if state.part == KEY:
            typed = state.typed + char
            if not self.keys[index].startswith(typed):
                return None
            return GrammarState(index, PRIMARY) if typed == self.keys[index] else GrammarState(index, KEY, typed)
        codes = self.primary[index] if state.part == PRIMARY else self.secondary[index]
        if char == FIELD_SEPARATOR:
            return GrammarState(index + 1) if state.typed in codes and index < last else None
        if char == CODE_SEPARATOR:
            allowed = state.part == PRIMARY and state.typed in codes and state.typed != ABSTAIN
            return GrammarState(index, SECONDARY) if allowed else None
        prefixes = self._prefixes[index] if state.part == PRIMARY else self._secondary_prefixes[index]
        typed = state.typed + char
        return GrammarState(index, state.part, typed) if typed in prefixes else None


def _prefixes(codes: frozenset[str]) -> frozenset[str]:
    return frozenset(code[:size] for code in codes for size in range(1, len(code) + 1))
