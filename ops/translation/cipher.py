"""Synthetic languages: deterministic, exactly invertible ciphers of English that keep numbers intact.

A language the model has never seen, whose perfect translator is known: the cipher's inverse. Letters
are substituted by a seeded permutation of the alphabet (case kept); `syn_b` also reverses every
run of letters, so even word shapes differ from English. Digits, spaces and punctuation pass through,
so every number of the question (and so the answer) is preserved by construction.
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_LETTER_RUN = re.compile(r"[A-Za-z]+")
# A number: digits with optional thousands separators and a decimal part, optionally negative.
_NUMBER = re.compile(r"(?<![A-Za-z0-9_.])-?\d+(?:,\d{3})*(?:\.\d+)?")


@dataclass(frozen=True)
class Cipher:
    """A letter substitution (from `seed`), optionally followed by reversing each run of letters."""

    name: str
    seed: int
    reverse_words: bool = False

    def _tables(self) -> tuple[dict[int, str], dict[int, str]]:
        letters = list(string.ascii_lowercase)
        shuffled = letters[:]
        random.Random(self.seed).shuffle(shuffled)
        forward = dict(zip(letters, shuffled, strict=True))
        forward |= {k.upper(): v.upper() for k, v in forward.items()}
        backward = {v: k for k, v in forward.items()}
        return str.maketrans(forward), str.maketrans(backward)

    def encode(self, text: str) -> str:
        """English (or any text) into the synthetic language."""
        coded = text.translate(self._tables()[0])
        return _LETTER_RUN.sub(lambda m: m.group(0)[::-1], coded) if self.reverse_words else coded

    def decode(self, text: str) -> str:
        """The exact inverse of `encode`: `decode(encode(t)) == t` for every string."""
        plain = _LETTER_RUN.sub(lambda m: m.group(0)[::-1], text) if self.reverse_words else text
        return plain.translate(self._tables()[1])


# our choice: fixed seeds, so the synthetic languages are the same on every machine and run.
SYNTHETIC_CIPHERS: dict[str, Cipher] = {
    "syn_a": Cipher("syn_a", seed=1729),
    "syn_b": Cipher("syn_b", seed=4242, reverse_words=True),
}


def numbers_in(text: str) -> list[Decimal]:
    """The numbers written with digits in `text`, as exact decimals, sorted (a multiset)."""
    values = []
    for match in _NUMBER.findall(text):
        try:
            values.append(Decimal(match.replace(",", "")))
        except InvalidOperation:
            continue
    return sorted(values)


def numbers_preserved(original: str, translated: str) -> bool:
    """True when both texts contain exactly the same numbers (as a multiset, order free)."""
    return numbers_in(original) == numbers_in(translated)


def last_number(text: str) -> Decimal | None:
    """The last number written in `text` (how an answer is read from free-form output), or None."""
    found = _NUMBER.findall(text or "")
    if not found:
        return None
    try:
        return Decimal(found[-1].replace(",", ""))
    except InvalidOperation:
        return None


def answer_matches(output: str, gold: str) -> bool:
    """True when the last number of `output` equals the gold answer numerically."""
    value = last_number(output)
    return value is not None and value == Decimal(gold.replace(",", ""))
