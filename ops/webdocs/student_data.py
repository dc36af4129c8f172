"""Training and validation data of the taxonomy students, taken from the teacher's annotations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ops.webdocs.split import train_validation_split


@dataclass(frozen=True)
class StudentData:
    """Annotated documents with their text, split by a seeded hash of the doc id."""

    train: pl.DataFrame
    validation: pl.DataFrame


def student_data(annotations: pl.DataFrame, docs: pl.DataFrame, validation_fraction: float, seed: int) -> StudentData:
    """Join the annotations with the documents' text and split them; every annotation must have a text."""
    joined = annotations.join(docs.select("doc_id", "text"), on="doc_id", how="left")
    missing = joined.filter(pl.col("text").is_null())["doc_id"].to_list()
    if missing:
        raise ValueError(
            f"{len(missing)} annotated documents have no clean text, e.g. {missing[0]!r}: "
            "re-materialize web_docs and web_doc_annotations for their shards"
        )
    if joined.height < 2:
        raise ValueError(f"need at least 2 annotated documents to train and validate a student, got {joined.height}")
    train_ids, validation_ids = train_validation_split(joined["doc_id"].to_list(), validation_fraction, seed)
    return StudentData(
        train=joined.filter(pl.col("doc_id").is_in(train_ids)),
        validation=joined.filter(pl.col("doc_id").is_in(validation_ids)),
    )


def primary_labels(frame: pl.DataFrame, dimensions: Sequence[str]) -> dict[str, list[str]]:
    """The primary code of every row, per dimension."""
    return {d: frame[f"{d}__primary"].to_list() for d in dimensions}


def primary_predictions_frame(doc_ids: Sequence[str], labels: dict[str, list[str]]) -> pl.DataFrame:
    """Predicted primary codes as an annotation-shaped frame (no secondary predicted)."""
    columns: dict[str, list] = {"doc_id": list(doc_ids)}
    for dimension, codes in labels.items():
        columns[f"{dimension}__primary"] = codes
        columns[f"{dimension}__secondary"] = [None] * len(codes)
    return pl.DataFrame(columns, schema_overrides={c: pl.String for c in columns})
