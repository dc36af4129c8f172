"""Text stimuli per concept: the definition, WordNet's own examples and templated captions of its lemmas.

The schema carries an optional `image` column (a path or URI, null for text): caption-image pairs for a
vision-language model drop into the same table. Each concept's stimuli are split into `train` (they
build the direction) and `heldout` (they test it), the last `heldout_per_concept` in a fixed order.
A concept with fewer than `min_stimuli` distinct stimuli is quarantined with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ops.common.quarantine import Rejected, Split, split
from ops.common.text import sha256_hex

STIMULI_SCHEMA: dict[str, pl.DataType] = {
    "stimulus_id": pl.String(),
    "synset_id": pl.String(),
    "lemma": pl.String(),
    "source": pl.String(),
    "text": pl.String(),
    "image": pl.String(),
    "split": pl.String(),
}
SOURCES = ("definition", "example", "template")
SPLITS = ("train", "heldout")
TOO_FEW_STIMULI = "too_few_stimuli"
STIMULI_REASONS = (TOO_FEW_STIMULI,)
TEMPLATES = (
    "a {lemma}",
    "This is a picture of a {lemma}.",
    "Here is an example of a {lemma}.",
    "The word for this is {lemma}.",
    "I was thinking about the {lemma}.",
    "Let me tell you about {lemma}.",
    "Everyone knows what a {lemma} is.",
    "A short story about a {lemma}.",
    "Look at that {lemma} over there.",
    "We talked about {lemma} all day.",
    "The topic of the lesson is {lemma}.",
    "Describe a typical {lemma}.",
)


@dataclass(frozen=True)
class StimulusRules:
    """How many stimuli a concept gets and needs, and how many are held out to test its direction."""

    min_stimuli: int = 8
    max_stimuli: int = 12
    heldout_per_concept: int = 2
    templates: tuple[str, ...] = TEMPLATES

    def __post_init__(self) -> None:
        if not 0 < self.heldout_per_concept < self.min_stimuli <= self.max_stimuli:
            raise ValueError("need 0 < heldout_per_concept < min_stimuli <= max_stimuli")


def concept_texts(concept: dict, templates: Sequence[str]) -> list[tuple[str, str]]:
    """(source, text) candidates of one concept, distinct texts, definition and examples first.

    Templates cycle over the concept's lemmas so that synonyms are covered before a lemma repeats.
    """
    candidates = [("definition", f"{concept['lemma']}: {concept['definition']}")] if concept["definition"] else []
    candidates += [("example", example) for example in concept["examples"] if example.strip()]
    lemmas = concept["lemmas"] or [concept["lemma"]]
    candidates += [("template", t.format(lemma=lemmas[i % len(lemmas)])) for i, t in enumerate(templates)]
    seen: set[str] = set()
    distinct = []
    for source, text in candidates:
        if text not in seen:
            seen.add(text)
            distinct.append((source, text))
    return distinct


CONCEPT_COUNTS_SCHEMA: dict[str, pl.DataType] = {"synset_id": pl.String(), "n_stimuli": pl.Int64()}


@dataclass(frozen=True)
class Stimuli:
    """The stimuli table and the concept-level split it came from (concepts are the records refused)."""

    stimuli: pl.DataFrame
    concepts: Split


def build_stimuli(vocabulary: pl.DataFrame, rules: StimulusRules) -> Stimuli:
    """Stimuli of every concept; a concept with too few distinct stimuli gets one quarantine row instead."""
    rows, counts, rejected = [], [], []
    for concept in vocabulary.iter_rows(named=True):
        texts = concept_texts(concept, rules.templates)[: rules.max_stimuli]
        if len(texts) < rules.min_stimuli:
            detail = f"{len(texts)} distinct stimuli, at least {rules.min_stimuli} needed"
            rejected.append(Rejected(concept["synset_id"], TOO_FEW_STIMULI, detail, concept["gloss"]))
            continue
        counts.append({"synset_id": concept["synset_id"], "n_stimuli": len(texts)})
        first_heldout = len(texts) - rules.heldout_per_concept
        rows += [
            {
                "stimulus_id": sha256_hex(f"{concept['synset_id']}\n{text}")[:16],
                "synset_id": concept["synset_id"],
                "lemma": concept["lemma"],
                "source": source,
                "text": text,
                "image": None,
                "split": "heldout" if index >= first_heldout else "train",
            }
            for index, (source, text) in enumerate(texts)
        ]
    concepts = split(counts, CONCEPT_COUNTS_SCHEMA, rejected, vocabulary.height, STIMULI_REASONS)
    return Stimuli(pl.DataFrame(rows, schema=STIMULI_SCHEMA), concepts)
