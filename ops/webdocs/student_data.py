"""Training and validation data of the taxonomy students, taken from the teacher's annotations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ops.webdocs.annotation import AnnotationError, parse_condensed
from ops.webdocs.split import train_validation_split
from ops.webdocs.taxonomy import DIMENSIONS


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


def label_lines_frame(doc_ids: list[str], lines: list[str]) -> tuple[pl.DataFrame, int]:
    """A generative student's label lines as label columns, with the count of unparseable lines.

    An unparseable line abstains on every dimension, so it counts against the student in agreement
    instead of disappearing.
    """
    columns = [c for d in DIMENSIONS for c in (f"{d}__primary", f"{d}__secondary")]
    abstain = {c: ("-1" if c.endswith("__primary") else None) for c in columns}
    rows, unparseable = [], 0
    for doc_id, line in zip(doc_ids, lines, strict=True):
        try:
            labels = parse_condensed(line)
        except AnnotationError:
            unparseable += 1
            labels = abstain
        rows.append({"doc_id": doc_id, **{c: labels.get(c) for c in columns}})
    return pl.DataFrame(rows, schema=dict.fromkeys(["doc_id", *columns], pl.String)), unparseable
