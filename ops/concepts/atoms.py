"""Naming SAE atoms after concepts, and how well atom clusters follow WordNet's lexicographer files.

A dictionary-initialised atom inherits the concept it started from; every other atom gets the concept
whose direction is nearest (cosine) to its decoder row, with that cosine, plus its top-activating
snippets from the web corpus. NMI compares KMeans clusters of the atoms' decoder rows with the
lexicographer files of the concepts the atoms are named after.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from ops.concepts.dictionary import unit_rows

ANNOTATIONS_SCHEMA: dict[str, pl.DataType] = {
    "atom": pl.Int64(),
    "origin": pl.String(),
    "synset_id": pl.String(),
    "lemma": pl.String(),
    "lexname": pl.String(),
    "cosine": pl.Float64(),
    "fire_rate": pl.Float64(),
    "top_snippets": pl.List(pl.String()),
}
ORIGINS = ("dictionary", "free")


def nearest_concepts(decoder: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per decoder row: index of the nearest concept direction and the cosine to it."""
    cosines = unit_rows(decoder)[0] @ directions.T
    nearest = cosines.argmax(axis=1)
    return nearest, cosines[np.arange(len(decoder)), nearest]


def annotate_atoms(
    decoder: np.ndarray,
    directions: np.ndarray,
    concepts: pl.DataFrame,
    codes: np.ndarray,
    snippets: Sequence[str],
    dictionary_init: bool,
    top: int = 3,
) -> pl.DataFrame:
    """One row per atom: its concept (inherited or nearest), cosine, fire rate on `codes`, top snippets."""
    named, cosine = nearest_concepts(decoder, directions)
    inherited = len(directions) if dictionary_init else 0
    named[:inherited] = np.arange(inherited)
    cosine[:inherited] = (unit_rows(decoder[:inherited])[0] * directions[:inherited]).sum(axis=1)
    meta = concepts.sort("atom").select("synset_id", "lemma", "lexname").to_dicts()
    order = np.argsort(-codes, axis=0)[:top].T
    rows = [
        {
            "atom": atom,
            "origin": "dictionary" if atom < inherited else "free",
            **meta[named[atom]],
            "cosine": float(cosine[atom]),
            "fire_rate": float((codes[:, atom] > 0).mean()) if len(codes) else 0.0,
            "top_snippets": [snippets[i] for i in order[atom] if codes[i, atom] > 0],
        }
        for atom in range(len(decoder))
    ]
    return pl.DataFrame(rows, schema=ANNOTATIONS_SCHEMA)


def cluster_nmi(vectors: np.ndarray, labels: Sequence[str], seed: int = 0) -> float:
    """NMI between KMeans clusters of `vectors` (as many as distinct labels) and `labels`."""
    from sklearn.cluster import KMeans  # here, not at module level: loading the code location skips sklearn
    from sklearn.metrics import normalized_mutual_info_score

    n_clusters = len(set(labels))
    if n_clusters < 2 or len(vectors) <= n_clusters:
        return float("nan")
    clusters = KMeans(n_clusters=n_clusters, n_init=4, random_state=seed).fit_predict(unit_rows(vectors)[0])
    return float(normalized_mutual_info_score(list(labels), clusters))
