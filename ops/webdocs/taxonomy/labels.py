"""Loaders over `label_sets.json`: the taxonomy's dimensions, allowed codes, label names and passes.

The teacher answers 12 taxonomy *fields* (FDC as one subject code plus 11 label sets); the annotation
frame stores 14 *dimensions*, because the FDC code is split into its first one, two and three digits
(`fdc_level1..3`), as Essential-Web does. Codes are strings everywhere; "-1" means abstain.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

LABEL_SETS_PATH = Path(__file__).with_name("label_sets.json")
ABSTAIN = "-1"
FDC = "fdc"
FDC_LEVELS: tuple[str, ...] = ("fdc_level1", "fdc_level2", "fdc_level3")

DIMENSIONS: tuple[str, ...] = (
    *FDC_LEVELS,
    "bloom_cognitive_process",
    "bloom_knowledge_domain",
    "document_type_v1",
    "document_type_v2",
    "extraction_artifacts",
    "missing_content",
    "reasoning_depth",
    "technical_correctness",
    "education_level",
    "timeliness",
    "cultural_specificity",
)

# The two new dimensions form a third pass instead of joining pass 2:
# - independence: the asset's point is to measure how independent timeliness and cultural specificity
#   are of the Essential-Web dimensions (taxonomy_nmi). In one JSON answer the later fields are decoded
#   after, and conditioned on, the earlier ones, which tends to add correlation to exactly what NMI measures.
# - fidelity: passes 1 and 2 stay the Essential-Web protocol, so their labels stay comparable with it,
#   and editing our own, unvalidated label set never changes (or evicts from the LLM cache) the
#   completions of the two established passes.
# - prompt length: on a 2,048-token model each pass must fit system prompt + document + answer. The
#   system prompts are ~730 (pass 1), ~470 (pass 2) and ~200 (pass 3) SmolLM2 tokens; pass 2 with the
#   new fields would still fit, so length alone does not force the split.
# The price: every document is read once more (llama.cpp reuses the system prompt's KV cache across
# a pass, but not the document): pass 3 took ~22% of the teacher time in a CPU run with
# SmolLM2-135M, paid once thanks to the LLM cache.
PASS_NAMES: tuple[str, ...] = ("pass_1", "pass_2", "pass_3")


@cache
def _data() -> dict[str, Any]:
    return json.loads(LABEL_SETS_PATH.read_text(encoding="utf-8"))


def label_sets() -> dict[str, dict[str, Any]]:
    """Taxonomy field -> its record in `label_sets.json` (name, key, annotation_pass, values, ...)."""
    return _data()["label_sets"]


FIELDS: tuple[str, ...] = tuple(label_sets())

PASSES: dict[str, tuple[str, ...]] = {
    name: tuple(field for field, record in label_sets().items() if record["annotation_pass"] == number)
    for number, name in enumerate(PASS_NAMES, start=1)
}


def field_codes(field: str) -> list[str]:
    """Allowed codes of a taxonomy field ("fdc" or a label set), "-1" first."""
    return [value["code"] for value in label_sets()[field]["values"]]


def secondary_may_abstain(field: str) -> bool:
    """Whether the field may go without a secondary label although its primary is not abstained."""
    return bool(label_sets()[field]["secondary_may_abstain"])


def condensed_key(field: str) -> str:
    """Short key of a field in the condensed one-line label format (e.g. "bcp")."""
    return label_sets()[field]["key"]


def fdc_levels(code: str | None, missing: str | None = ABSTAIN) -> tuple[str | None, str | None, str | None]:
    """FDC code -> its level-1/2/3 codes: the first 1, 2, 3 digits of its integer part.

    "005.1" -> ("0", "00", "005"); a code too short for a level gives `missing` there ("51" -> ("5",
    "51", "-1") for a primary, pass missing=None for a secondary); "-1" abstains and None stays None.
    """
    if code is None:
        return (None, None, None)
    if code == ABSTAIN:
        return (ABSTAIN, ABSTAIN, ABSTAIN)
    digits = code.split(".")[0]
    first, second, third = (digits[:size] if len(digits) >= size else missing for size in (1, 2, 3))
    return (first, second, third)


@cache
def _vocabularies() -> dict[str, tuple[str, ...]]:
    vocabularies: dict[str, tuple[str, ...]] = {}
    fdc_codes = [code for code in field_codes(FDC) if code != ABSTAIN]
    for index, level in enumerate(FDC_LEVELS):
        prefixes = (fdc_levels(code, missing=None)[index] for code in fdc_codes)
        vocabularies[level] = (ABSTAIN, *dict.fromkeys(prefix for prefix in prefixes if prefix is not None))
    for dimension in DIMENSIONS[len(FDC_LEVELS) :]:
        vocabularies[dimension] = tuple(field_codes(dimension))
    return vocabularies


def vocabularies() -> dict[str, list[str]]:
    """Dimension -> allowed string codes, "-1" first; FDC levels are the prefixes of the known codes."""
    return {dimension: list(codes) for dimension, codes in _vocabularies().items()}


def label_name(dimension: str, code: str) -> str:
    """Human label of a code of a dimension or taxonomy field ("fdc_level2", "51" -> "Mathematics").

    FDC prefixes the source does not name (e.g. level 3 "005") read "FDC 005". Raises KeyError for a
    code outside the dimension's vocabulary.
    """
    field = FDC if dimension in FDC_LEVELS else dimension
    allowed = field_codes(FDC) if dimension == FDC else _vocabularies()[dimension]
    if code not in allowed:
        raise KeyError(f"{code!r} is not a code of {dimension}")
    labels = {value["code"]: value["label"] for value in label_sets()[field]["values"]}
    return labels.get(code, f"FDC {code}")
