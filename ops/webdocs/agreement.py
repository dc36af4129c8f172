"""How well a student classifier agrees with the teacher LLM, per taxonomy dimension.

Three numbers per dimension, on the documents both frames label (inner join on doc_id):

- accuracy: the share of documents whose primary codes are equal (abstain "-1" is a code here);
- Cohen's kappa on the primary codes (scikit-learn), i.e. agreement beyond chance. It is NaN when
  undefined: no documents, or teacher and student both use one and the same single code (chance
  agreement is then 1 and kappa is 0/0), even though accuracy is 1.0 there;
- the Essential-Web agreement rule: teacher and student agree on a document when their
  {primary, secondary} code sets overlap, abstains and null secondaries left out of the sets. As in
  the reference `taxonomy_overlap`, a document where the teacher's set is empty (it abstained on
  both) counts as agreement exactly when the student's set is empty too.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
import polars as pl

from ops.common.plots import grouped_bar_png

ABSTAIN = "-1"

AGREEMENT_SCHEMA: dict[str, pl.DataType] = {
    "student": pl.String(),
    "dimension": pl.String(),
    "n": pl.Int64(),
    "accuracy": pl.Float64(),
    "cohens_kappa": pl.Float64(),
    "eai_agreement": pl.Float64(),
}


def _counts(code: str | None) -> bool:
    """Whether a code is a real label: not null, not empty, not a negative number (the abstain "-1")."""
    if not code:
        return False
    try:
        return float(code) >= 0
    except ValueError:
        return True


def _label_set(primary: str | None, secondary: str | None) -> frozenset[str]:
    """The codes that count for the overlap rule."""
    return frozenset(code for code in (primary, secondary) if _counts(code))


def eai_agrees(
    teacher_primary: str | None,
    teacher_secondary: str | None,
    student_primary: str | None,
    student_secondary: str | None,
) -> bool:
    """The Essential-Web rule for one document: the two {primary, secondary} sets overlap.

    Both sets empty (both abstained entirely) is agreement; one empty and the other not is not.
    """
    teacher = _label_set(teacher_primary, teacher_secondary)
    student = _label_set(student_primary, student_secondary)
    if not teacher:
        return not student
    return bool(teacher & student)


def _kappa(teacher: list[str], student: list[str]) -> float:
    """Cohen's kappa, NaN where scikit-learn finds it undefined (or there is nothing to compare)."""
    from sklearn.metrics import cohen_kappa_score  # here: loading the code location skips sklearn

    if not teacher:
        return math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the single-label warnings: the NaN below says it
        kappa = float(cohen_kappa_score(teacher, student, replace_undefined_by=np.nan))
    return kappa if math.isfinite(kappa) else math.nan


def agreement_table(
    teacher: pl.DataFrame, student: pl.DataFrame, dimensions: Sequence[str], student_name: str
) -> pl.DataFrame:
    """One row per dimension: student, dimension, n, accuracy, cohens_kappa, eai_agreement.

    Both frames are annotation frames (`doc_id`, `{d}__primary`, `{d}__secondary`); only documents
    present in both count (n). A null primary is read as an abstain.
    """
    columns = [f"{d}__{role}" for d in dimensions for role in ("primary", "secondary")]
    joined = teacher.select("doc_id", *columns).join(
        student.select("doc_id", *columns), on="doc_id", how="inner", suffix="__student"
    )
    rows = []
    for dimension in dimensions:
        t_primary = joined[f"{dimension}__primary"].cast(pl.String).fill_null(ABSTAIN).to_list()
        s_primary = joined[f"{dimension}__primary__student"].cast(pl.String).fill_null(ABSTAIN).to_list()
        t_secondary = joined[f"{dimension}__secondary"].cast(pl.String).to_list()
        s_secondary = joined[f"{dimension}__secondary__student"].cast(pl.String).to_list()
        n = len(t_primary)
        overlaps = [
            eai_agrees(tp, ts, sp, ss)
            for tp, ts, sp, ss in zip(t_primary, t_secondary, s_primary, s_secondary, strict=True)
        ]
        rows.append(
            {
                "student": student_name,
                "dimension": dimension,
                "n": n,
                "accuracy": sum(a == b for a, b in zip(t_primary, s_primary, strict=True)) / n if n else math.nan,
                "cohens_kappa": _kappa(t_primary, s_primary),
                "eai_agreement": sum(overlaps) / n if n else math.nan,
            }
        )
    return pl.DataFrame(rows, schema=AGREEMENT_SCHEMA)


def agreement_bar_png(table: pl.DataFrame) -> bytes:
    """Cohen's kappa per dimension, one bar colour per student (rows of one or more agreement tables)."""
    dimensions = list(dict.fromkeys(table["dimension"].to_list()))
    series = {}
    for student in dict.fromkeys(table["student"].to_list()):
        kappas = dict(table.filter(pl.col("student") == student).select("dimension", "cohens_kappa").iter_rows())
        series[student] = [kappas.get(d, math.nan) for d in dimensions]
    title = "Student vs teacher: Cohen's kappa (primary)"
    return grouped_bar_png(dimensions, series, title=title, ylabel="kappa", ylim=(-1, 1))
