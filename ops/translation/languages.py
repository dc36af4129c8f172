"""Languages and their resource tiers: the one table every translation step reads.

The tier of a language decides the cost of a translation call and how results are grouped. A language
code that is not in the table is a configuration or input error and raises, naming the code.
"""

from __future__ import annotations

from collections.abc import Mapping

ENGLISH = "en"
TIERS = ("High", "Low", "XLow")
# The two synthetic languages (ciphers of English, see `ops.translation.cipher`).
SYNTHETIC_LANGUAGES = ("syn_a", "syn_b")
# our choice: MGSM's languages by the resource level of web text (MGSM paper: sw and bn are its
# under-represented languages); the synthetic languages have no resources at all.
DEFAULT_TIERS: dict[str, str] = {
    "en": "High",
    "es": "High",
    "fr": "High",
    "de": "High",
    "zh": "High",
    "ja": "High",
    "sw": "Low",
    "bn": "Low",
    "syn_a": "XLow",
    "syn_b": "XLow",
}
# our choice: a call costs more for rarer pairs (commercial MT prices and latency grow as resources
# shrink); the cost unit is one High-tier call of an average item.
DEFAULT_TIER_COSTS: dict[str, float] = {"High": 1.0, "Low": 1.25, "XLow": 1.5}
# Languages never used in training: zero-shot transfer of the learned gate (one per tier at least).
DEFAULT_HELD_OUT: tuple[str, ...] = ("fr", "ja", "bn", "syn_b")


class UnknownLanguageError(ValueError):
    """A language code that the tier table does not list."""


def validate_tiers(tiers: Mapping[str, str], costs: Mapping[str, float]) -> None:
    """Raise when a tier is not one of `TIERS`, a tier has no cost, or English is missing."""
    bad = sorted({tier for tier in tiers.values() if tier not in TIERS})
    if bad:
        raise ValueError(f"tier table uses unknown tiers {bad}; expected one of {TIERS}")
    missing = sorted(set(tiers.values()) - set(costs))
    if missing:
        raise ValueError(f"no call cost for tiers {missing}; tier costs given: {dict(costs)}")
    if ENGLISH not in tiers:
        raise ValueError("the tier table must list English ('en'), the language translations go to")


def tier_of(language: str, tiers: Mapping[str, str], record_id: str = "") -> str:
    """The tier of `language`; an unknown code raises `UnknownLanguageError` naming it (and the record)."""
    if language not in tiers:
        where = f" (record {record_id!r})" if record_id else ""
        raise UnknownLanguageError(
            f"language code {language!r}{where} is not in the tier table; known: {', '.join(sorted(tiers))}. "
            "Add it with its tier (High, Low or XLow) to the config's `tiers`."
        )
    return tiers[language]
