"""Invariants of the corpus-wide webdocs tables (labels, NMI matrix, agreement), as lists of problems.

Each function returns what is wrong (empty = sound), so that a blocking asset check can show it; the
schema-level expectations (columns, nulls, value sets) are Great Expectations suites in `suites.py`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

PROBABILITY_TOLERANCE = 1e-3


def label_problems(
    labels: pl.DataFrame, doc_ids: Sequence[str], vocabularies: Mapping[str, Sequence[str]]
) -> list[str]:
    """One row per kept document, primary codes from the label set, per-dimension distributions that sum to 1."""
    problems = []
    labelled, expected = set(labels["doc_id"]), set(doc_ids)
    if labelled != expected or labels.height != len(doc_ids):
        problems.append(
            f"{labels.height} label rows for {len(doc_ids)} documents "
            f"({len(expected - labelled)} missing, {len(labelled - expected)} unexpected)"
        )
    for dimension, codes in vocabularies.items():
        unknown = set(labels[f"{dimension}__primary"].drop_nulls()) - set(codes)
        if unknown:
            problems.append(f"{dimension}: primary codes outside the label set: {sorted(unknown)[:5]}")
        probs = labels[f"{dimension}__probs"].to_list()
        if any(len(row) != len(codes) for row in probs):
            problems.append(f"{dimension}: a probability list does not have {len(codes)} entries")
            continue
        matrix = np.asarray(probs, dtype=np.float64).reshape(len(probs), len(codes))
        if not np.isfinite(matrix).all() or (np.abs(matrix.sum(axis=1) - 1) > PROBABILITY_TOLERANCE).any():
            problems.append(f"{dimension}: probabilities not finite or not summing to 1")
    return problems


def nmi_problems(matrix: pl.DataFrame, dimensions: Sequence[str]) -> list[str]:
    """Square over the dimensions, symmetric, NMI in [0, 1] (NaN only where a dimension has one code)."""
    names = list(dimensions)
    if matrix["dimension"].to_list() != names or matrix.columns[1:] != names:
        return [f"rows/columns {matrix['dimension'].to_list()} / {matrix.columns[1:]} are not the dimensions {names}"]
    values = matrix.select(names).to_numpy()
    problems = []
    if not np.array_equal(values, values.T, equal_nan=True):
        problems.append("the matrix is not symmetric")
    defined = values[~np.isnan(values)]
    if ((defined < 0) | (defined > 1 + 1e-9)).any():
        problems.append("an NMI lies outside [0, 1]")
    diagonal = np.diag(values)
    if not all(math.isnan(value) or value == 1.0 for value in diagonal):
        problems.append("a diagonal entry is neither 1 nor NaN")
    return problems


def agreement_problems(table: pl.DataFrame, students: Sequence[str], dimensions: Sequence[str]) -> list[str]:
    """Every (student, dimension) once, on some documents; rates in range (kappa may be undefined)."""
    problems = []
    pairs = list(zip(table["student"], table["dimension"], strict=True))
    if sorted(pairs) != sorted((s, d) for s in students for d in dimensions):
        problems.append(
            f"{len(pairs)} rows; expected one per student and dimension ({len(students) * len(dimensions)})"
        )
    empty = table.filter(pl.col("n") <= 0)
    if empty.height:
        problems.append(f"compared on no document: {list(zip(empty['student'], empty['dimension'], strict=True))}")
    for column, low in (("accuracy", 0.0), ("eai_agreement", 0.0), ("cohens_kappa", -1.0)):
        values = table[column].to_numpy()
        defined = values[~np.isnan(values)]
        if column != "cohens_kappa" and len(defined) != len(values):
            problems.append(f"{column} is undefined for a compared dimension")
        if ((defined < low - 1e-9) | (defined > 1 + 1e-9)).any():
            problems.append(f"{column} outside [{low:g}, 1]")
    return problems
