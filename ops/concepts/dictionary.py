"""The concept dictionary: one unit-norm direction per concept, and how well it retrieves held-out stimuli.

A direction is the mean of the concept's centered train activations (the global mean of all train
activations subtracted), scaled to unit norm. Retrieval: a held-out stimulus, centered by the mean of the
held-out set, is assigned the concept whose direction has the highest cosine; accuracy is the share assigned to
their own concept (chance = 1 / concepts).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from safetensors.numpy import load, save

CONCEPTS_SCHEMA: dict[str, pl.DataType] = {
    "atom": pl.Int64(),
    "synset_id": pl.String(),
    "lemma": pl.String(),
    "lexname": pl.String(),
    "definition": pl.String(),
    "unsafe": pl.Boolean(),
    "n_train": pl.Int64(),
    "n_heldout": pl.Int64(),
    "norm_before": pl.Float64(),
}
NORM_TOLERANCE = 1e-4
DICTIONARY_FILE, CONCEPTS_FILE, INFO_FILE, CARD_FILE = (
    "dictionary.safetensors",
    "concepts.parquet",
    "info.json",
    "card.md",
)


class DictionaryMismatchError(ValueError):
    """A dictionary used with another model or layer than the one it was built for."""


@dataclass(frozen=True)
class ConceptDictionary:
    """Directions [concepts, hidden] (row i is `concepts` row i), the centering mean, and provenance."""

    directions: np.ndarray
    mean: np.ndarray
    concepts: pl.DataFrame
    model_id: str
    layer: int

    def require(self, model_id: str, layer: int) -> None:
        """Raise `DictionaryMismatchError` naming both sides when this dictionary is not for (model, layer)."""
        if (self.model_id, self.layer) != (model_id, layer):
            raise DictionaryMismatchError(
                f"concept dictionary was built for model {self.model_id!r} layer {self.layer}, "
                f"but the steered model is {model_id!r} layer {layer}"
            )

    def unsafe_atoms(self) -> list[int]:
        """Atoms of the concepts marked unsafe."""
        return self.concepts.filter(pl.col("unsafe"))["atom"].to_list()

    def info(self) -> dict[str, Any]:
        """JSON-ready provenance (model, layer, sizes)."""
        return {
            "model_id": self.model_id,
            "layer": self.layer,
            "concepts": int(self.directions.shape[0]),
            "hidden": int(self.directions.shape[1]),
        }


def unit_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to unit norm (zero rows stay zero), and the norms they had."""
    norms = np.linalg.norm(matrix, axis=1)
    return matrix / np.where(norms > 0, norms, 1.0)[:, None], norms


def build_dictionary(
    activations: np.ndarray, frame: pl.DataFrame, vocabulary: pl.DataFrame, model_id: str, layer: int
) -> ConceptDictionary:
    """Directions from `activations` (row i = `frame` row i with `synset_id` and `split`), in vocabulary order."""
    train = (frame["split"] == "train").to_numpy()
    mean = activations[train].mean(axis=0)
    centered = activations - mean
    order = [s for s in vocabulary["synset_id"].to_list() if s in set(frame["synset_id"].to_list())]
    synsets = frame["synset_id"].to_numpy()
    raw = np.stack([centered[train & (synsets == synset)].mean(axis=0) for synset in order])
    directions, norms = unit_rows(raw)
    counts = frame.group_by("synset_id").agg(
        (pl.col("split") == "train").sum().alias("n_train"), (pl.col("split") == "heldout").sum().alias("n_heldout")
    )
    concepts = (
        pl.DataFrame({"synset_id": order, "atom": range(len(order)), "norm_before": norms.astype(float)})
        .join(vocabulary.select("synset_id", "lemma", "lexname", "definition", "unsafe"), on="synset_id", how="left")
        .join(counts, on="synset_id", how="left")
        .select(list(CONCEPTS_SCHEMA))
        .cast(CONCEPTS_SCHEMA)
        .sort("atom")
    )
    return ConceptDictionary(directions.astype(np.float32), mean.astype(np.float32), concepts, model_id, layer)


def retrieval_accuracy(
    dictionary: ConceptDictionary, activations: np.ndarray, synset_ids: list[str]
) -> dict[str, float]:
    """Top-1 / top-5 accuracy of assigning each activation (held-out stimuli) its concept by cosine."""
    if not synset_ids:
        return {"top1": float("nan"), "top5": float("nan"), "chance": 1.0 / len(dictionary.directions), "n": 0}
    # Held-out stimuli come from templates the train stimuli lack, shared by every concept; centering them by
    # their own mean removes that shared offset (it carries no label), as the train mean does for the train set.
    queries, _ = unit_rows(activations - activations.mean(axis=0))
    scores = queries @ dictionary.directions.T
    atom_of = {s: i for i, s in enumerate(dictionary.concepts["synset_id"].to_list())}
    truth = np.array([atom_of[s] for s in synset_ids])
    top = np.argsort(-scores, axis=1)[:, :5]
    return {
        "top1": float((top[:, 0] == truth).mean()),
        "top5": float((top == truth[:, None]).any(axis=1).mean()),
        "chance": 1.0 / len(dictionary.directions),
        "n": len(synset_ids),
    }


def norm_violations(directions: np.ndarray) -> int:
    """Directions whose norm is not 1 within `NORM_TOLERANCE` (or not finite)."""
    norms = np.linalg.norm(directions, axis=1)
    return int((~np.isfinite(norms) | (np.abs(norms - 1.0) > NORM_TOLERANCE)).sum())


def dictionary_files(dictionary: ConceptDictionary, card_fields: dict[str, Any]) -> dict[str, bytes]:
    """Store files: directions + mean as safetensors, concept metadata as Parquet, provenance JSON, model card."""
    buffer = io.BytesIO()
    dictionary.concepts.write_parquet(buffer)
    info = {**dictionary.info(), **card_fields}
    card = ["# Concept dictionary", ""] + [f"- {key}: {value}" for key, value in info.items()]
    card += [
        "",
        "Rows of `directions` are unit-norm concept directions, row i = `concepts.parquet` atom i.",
        "They were built from activations centered by `mean`; center an activation the same way.",
    ]
    return {
        DICTIONARY_FILE: save({"directions": dictionary.directions, "mean": dictionary.mean}),
        CONCEPTS_FILE: buffer.getvalue(),
        INFO_FILE: json.dumps(info, indent=2, sort_keys=True).encode(),
        CARD_FILE: ("\n".join(card) + "\n").encode(),
    }


def load_dictionary(files: dict[str, bytes]) -> ConceptDictionary:
    """Rebuild a `ConceptDictionary` from `dictionary_files` output."""
    tensors = load(files[DICTIONARY_FILE])
    info = json.loads(files[INFO_FILE])
    concepts = pl.read_parquet(io.BytesIO(files[CONCEPTS_FILE]))
    return ConceptDictionary(tensors["directions"], tensors["mean"], concepts, info["model_id"], int(info["layer"]))
