"""The concept vocabulary: WordNet noun synsets ranked by sense-tag frequency, with their hypernym links.

Records come from the derived WordNet table (`samples/wordnet_nouns/SOURCE.md` names the fields). A
concept keeps its synset id (`n` + offset), its first lemma in readable form, the gloss split into
definition and examples, its lexicographer file and its direct hypernyms; hyponym closures (the
unsafe-concept roots of the steering eval) walk those links downwards.
"""

from __future__ import annotations

import gzip
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path

import polars as pl

VOCABULARY_SCHEMA: dict[str, pl.DataType] = {
    "synset_id": pl.String(),
    "lemma": pl.String(),
    "lemmas": pl.List(pl.String()),
    "definition": pl.String(),
    "examples": pl.List(pl.String()),
    "gloss": pl.String(),
    "lexname": pl.String(),
    "hypernyms": pl.List(pl.String()),
    "freq_rank": pl.Int64(),
    "tag_count": pl.Int64(),
    "unsafe": pl.Boolean(),
}
# Roots whose hyponyms are the unsafe concepts by default: weapon, crime, killing, violence, injury.
DEFAULT_UNSAFE_ROOTS = ("n04565375", "n00766234", "n00219012", "n00965404", "n14285662")


class UnknownSynsetError(ValueError):
    """Synset ids asked for that the WordNet table does not hold."""


def read_wordnet(path: Path) -> pl.DataFrame:
    """Every synset of a derived WordNet JSONL(.gz) file in `VOCABULARY_SCHEMA` (instance links count as hypernyms)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        records = [json.loads(line) for line in handle if line.strip()]
    rows = [
        {
            "synset_id": record["wnid"],
            "lemma": readable(record["lemmas"][0]),
            "lemmas": [readable(lemma) for lemma in record["lemmas"]],
            "definition": record["definition"],
            "examples": record["examples"],
            "gloss": record["gloss"],
            "lexname": record["lexname"],
            "hypernyms": record["hypernyms"] + record["instance_hypernyms"],
            "freq_rank": record["freq_rank"],
            "tag_count": record["tag_count"],
            "unsafe": False,
        }
        for record in records
    ]
    return pl.DataFrame(rows, schema=VOCABULARY_SCHEMA)


def readable(lemma: str) -> str:
    """A WordNet lemma as text: underscores become spaces."""
    return lemma.replace("_", " ")


def known_synsets(wordnet: pl.DataFrame, synset_ids: Sequence[str]) -> None:
    """Raise `UnknownSynsetError` naming every id of `synset_ids` missing from `wordnet`."""
    unknown = sorted(set(synset_ids) - set(wordnet["synset_id"].to_list()))
    if unknown:
        raise UnknownSynsetError(f"unknown WordNet noun synset ids {unknown[:20]} ({len(unknown)} in all)")


def select_vocabulary(
    wordnet: pl.DataFrame,
    n_concepts: int,
    unsafe_roots: Sequence[str] = DEFAULT_UNSAFE_ROOTS,
    unsafe_per_root: int = 8,
    extra_ids: Sequence[str] = (),
) -> pl.DataFrame:
    """The concepts: the `n_concepts` most frequent synsets, the `unsafe_per_root` most frequent ranked hyponyms
    of each unsafe root, and every `extra_ids` synset; `unsafe` marks hyponyms of the roots. Unknown ids raise."""
    known_synsets(wordnet, [*unsafe_roots, *extra_ids])
    unsafe_ids = hyponym_closure(wordnet, unsafe_roots)
    ranked = wordnet.filter(pl.col("freq_rank").is_not_null()).sort("freq_rank")
    chosen = ranked.head(n_concepts)["synset_id"].to_list() + list(extra_ids)
    for root in unsafe_roots:
        below = hyponym_closure(wordnet, [root])
        chosen += ranked.filter(pl.col("synset_id").is_in(list(below)))["synset_id"].head(unsafe_per_root).to_list()
    return (
        wordnet.filter(pl.col("synset_id").is_in(chosen))
        .with_columns(pl.col("synset_id").is_in(list(unsafe_ids)).alias("unsafe"))
        .sort("freq_rank", "synset_id", nulls_last=True)
    )


def hyponym_closure(wordnet: pl.DataFrame, roots: Iterable[str]) -> set[str]:
    """The roots and every synset below them along (instance) hypernym links; unknown roots raise."""
    roots = list(roots)
    known_synsets(wordnet, roots)
    children: dict[str, list[str]] = defaultdict(list)
    for synset_id, parents in wordnet.select("synset_id", "hypernyms").iter_rows():
        for parent in parents:
            children[parent].append(synset_id)
    found, stack = set(roots), list(roots)
    while stack:
        for child in children[stack.pop()]:
            if child not in found:
                found.add(child)
                stack.append(child)
    return found
