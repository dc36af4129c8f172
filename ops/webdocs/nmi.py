"""Normalized mutual information between taxonomy dimensions, with the Essential-Web weighting.

How independent are two label sets? Essential-Web answers with NMI(X, Y) = 2 I(X;Y) / (H(X) + H(Y))
(log base 2) over a contingency table built from the annotations:

- every document is weighted by its length (the `chars` column), so long documents count more;
- each document adds its primary_X x primary_Y and secondary_X x secondary_Y pairs at weight 1, and
  its cross pairs primary_X x secondary_Y and secondary_X x primary_Y at weight 0.01;
- codes < 0 (the abstain "-1") and null secondaries are dropped: a pair with a dropped side adds
  nothing. Pairs are matched by role (primary, secondary), as the formula states. (The reference
  script numbers the codes that survive the drop instead, so a document with an abstained primary and
  a kept secondary pairs that secondary at weight 1; abstaining primaries normally come with abstaining
  secondaries, so the two readings agree on real annotations.)

Entropies and I(X;Y) come from the marginals of that one weighted table. Codes are strings; a code
is dropped when it is null, empty, or reads as a negative number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import polars as pl

from ops.common.plots import heatmap_png

CROSS_PAIR_WEIGHT = 0.01  # primary x secondary pairs count 1/100 of a matching-role pair

_ROLE_PAIRS: tuple[tuple[str, str, float], ...] = (
    ("primary", "primary", 1.0),
    ("secondary", "secondary", 1.0),
    ("primary", "secondary", CROSS_PAIR_WEIGHT),
    ("secondary", "primary", CROSS_PAIR_WEIGHT),
)


def _kept(column: str) -> pl.Expr:
    """True where the code in `column` counts: not null, not empty, not a negative number."""
    code = pl.col(column)
    negative = code.cast(pl.Float64, strict=False).lt(0).fill_null(False)
    return code.is_not_null() & code.str.len_chars().gt(0) & ~negative


def _code_order(code: str) -> tuple[int, float, str]:
    """Sort key: numeric codes by value ("5" < "005.1" < "51"), then any other codes by text."""
    try:
        return (0, float(code), code)
    except ValueError:
        return (1, 0.0, code)


def weighted_contingency(
    annotations: pl.DataFrame, dim_x: str, dim_y: str, length_column: str = "chars"
) -> tuple[np.ndarray, list[str], list[str]]:
    """The length-weighted contingency table of two dimensions with Essential-Web pair weights.

    Returns (matrix, x_codes, y_codes): matrix[i, j] is the summed weight of pairs (x_codes[i],
    y_codes[j]); only codes that occur in a kept pair are listed, in numeric order.
    """
    lengths = annotations[length_column]
    if lengths.null_count() > 0 or (lengths.len() > 0 and lengths.min() < 0):
        raise ValueError(f"column {length_column!r} must hold non-negative lengths, without nulls")
    parts = [
        annotations.select(
            pl.col(f"{dim_x}__{role_x}").cast(pl.String).alias("x"),
            pl.col(f"{dim_y}__{role_y}").cast(pl.String).alias("y"),
            (pl.col(length_column).cast(pl.Float64) * factor).alias("weight"),
        )
        for role_x, role_y, factor in _ROLE_PAIRS
    ]
    pairs = (
        pl.concat(parts)
        .filter(_kept("x") & _kept("y") & pl.col("weight").gt(0))
        .group_by("x", "y")
        .agg(pl.col("weight").sum())
    )
    x_codes = sorted(set(pairs["x"].to_list()), key=_code_order)
    y_codes = sorted(set(pairs["y"].to_list()), key=_code_order)
    x_index = {code: i for i, code in enumerate(x_codes)}
    y_index = {code: j for j, code in enumerate(y_codes)}
    matrix = np.zeros((len(x_codes), len(y_codes)), dtype=np.float64)
    for x, y, weight in pairs.iter_rows():
        matrix[x_index[x], y_index[y]] = weight
    return matrix, x_codes, y_codes


def _entropy_bits(probabilities: np.ndarray) -> float:
    """Shannon entropy in bits of a probability vector (zeros ignored)."""
    p = probabilities[probabilities > 0]
    return float(-(p * np.log2(p)).sum())


def nmi_from_contingency(matrix: np.ndarray) -> float:
    """NMI = 2 I(X;Y) / (H(X) + H(Y)) in bits of a (weighted) contingency table.

    NaN when undefined: an empty table, or both marginals concentrated on one code (0 / 0). When only
    one side is constant, I(X;Y) = 0 and the NMI is 0.0.
    """
    table = np.asarray(matrix, dtype=np.float64)
    if table.ndim != 2:
        raise ValueError(f"a contingency table is 2-D, got shape {table.shape}")
    if (table < 0).any():
        raise ValueError("a contingency table holds non-negative weights")
    total = table.sum()
    if total <= 0:
        return math.nan
    joint = table / total
    p_x = joint.sum(axis=1)
    p_y = joint.sum(axis=0)
    h_x, h_y = _entropy_bits(p_x), _entropy_bits(p_y)
    if h_x + h_y <= 1e-12:
        return math.nan
    nonzero = joint > 0
    outer = np.outer(p_x, p_y)
    mutual = float((joint[nonzero] * np.log2(joint[nonzero] / outer[nonzero])).sum())
    return min(1.0, max(0.0, 2.0 * mutual / (h_x + h_y)))


def _has_entropy(annotations: pl.DataFrame, dimension: str) -> bool:
    """Whether a dimension uses more than one kept code (with positive weight), so NMI with itself is 1."""
    matrix, _, _ = weighted_contingency(annotations, dimension, dimension)
    return not math.isnan(nmi_from_contingency(matrix))


def nmi_matrix(annotations: pl.DataFrame, dimensions: Sequence[str]) -> pl.DataFrame:
    """The square, symmetric NMI matrix: a `dimension` column, then one Float64 column per dimension.

    The diagonal is 1.0 for a dimension that uses at least two codes and NaN otherwise (as in the
    reference, the diagonal is set, not computed: the 0.01 cross pairs would pull a self-NMI below 1).
    """
    names = list(dimensions)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate dimension names in {names}")
    values = np.full((len(names), len(names)), math.nan)
    for i, dim_x in enumerate(names):
        values[i, i] = 1.0 if _has_entropy(annotations, dim_x) else math.nan
        for j in range(i + 1, len(names)):
            matrix, _, _ = weighted_contingency(annotations, dim_x, names[j])
            values[i, j] = values[j, i] = nmi_from_contingency(matrix)
    return pl.DataFrame(
        {"dimension": names, **{name: values[:, j] for j, name in enumerate(names)}},
        schema={"dimension": pl.String, **dict.fromkeys(names, pl.Float64)},
    )


def highest_nmi(matrix_frame: pl.DataFrame, dimension: str, against: Sequence[str]) -> tuple[str, float]:
    """The dimension in `against` (itself excluded) with the highest NMI to `dimension`, and that NMI.

    NaN entries are skipped; when every candidate is NaN the answer is ("", nan).
    """
    candidates = [name for name in against if name != dimension]
    if not candidates:
        raise ValueError(f"no dimension to compare {dimension!r} against")
    row = matrix_frame.filter(pl.col("dimension") == dimension)
    if row.height != 1:
        raise KeyError(f"dimension {dimension!r} is not a row of the NMI matrix")
    scored = [(name, float(row[name][0])) for name in candidates]
    defined = [(name, value) for name, value in scored if not math.isnan(value)]
    if not defined:
        return "", math.nan
    return max(defined, key=lambda item: item[1])


def nmi_heatmap_png(matrix_frame: pl.DataFrame) -> bytes:
    """The NMI matrix as an annotated heatmap (PNG bytes), scale fixed to [0, 1]; NaN cells left blank."""
    names = matrix_frame["dimension"].to_list()
    values = matrix_frame.select(names).to_numpy()
    return heatmap_png(values, names, names, title="Pairwise NMI between taxonomy dimensions", vmin=0.0, vmax=1.0)
