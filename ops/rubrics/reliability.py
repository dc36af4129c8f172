"""How far the judge can be trusted: its agreement with human labels on the criteria both graded.

Human labels use the judge's semantics: `label` is True when the criterion is met, which for a
negative (must-not) criterion means the bad behaviour occurred. Ungraded judge rows are left out
(and counted), since there is no verdict to compare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import polars as pl

from ops.rubrics.grading import MET, UNGRADED

HUMAN_LABELS_SCHEMA: dict[str, pl.DataType] = {
    "criterion_id": pl.String(),
    "response_id": pl.String(),
    "label": pl.Boolean(),
}


def judge_agreement(grades: pl.DataFrame, human_labels: pl.DataFrame) -> dict[str, float | int]:
    """Agreement and Cohen's kappa of the judge against human labels, joined on (criterion_id, response_id).

    Returns `n` (pairs compared), `agreement` (share equal), `cohens_kappa`, `n_ungraded` (labelled
    pairs the judge left ungraded) and `n_unmatched` (labels with no grade at all). Agreement and
    kappa are NaN when nothing is compared; kappa is NaN too when chance agreement is 1 (both sides
    gave one and the same label everywhere), as scikit-learn reports it.
    """
    missing = [name for name in HUMAN_LABELS_SCHEMA if name not in human_labels.columns]
    if missing:
        raise ValueError(f"human labels lack columns: {', '.join(missing)}")
    keys = ["criterion_id", "response_id"]
    duplicated = human_labels.filter(pl.struct(keys).is_duplicated()).height
    if duplicated:
        raise ValueError(f"{duplicated} human label rows repeat a (criterion_id, response_id) pair")
    joined = human_labels.select(*keys, "label").join(grades.select(*keys, "status"), on=keys, how="left")
    compared = joined.filter(pl.col("status").is_not_null() & (pl.col("status") != UNGRADED))
    judge = (compared["status"] == MET).to_list()
    human = compared["label"].to_list()
    agreement = sum(a == b for a, b in zip(judge, human, strict=True)) / len(judge) if judge else math.nan
    return {
        "n": compared.height,
        "agreement": agreement,
        "cohens_kappa": cohens_kappa(judge, human),
        "n_ungraded": joined.filter(pl.col("status") == UNGRADED).height,
        "n_unmatched": joined.filter(pl.col("status").is_null()).height,
    }


def cohens_kappa(first: Sequence[bool], second: Sequence[bool]) -> float:
    """Cohen's kappa of two binary raters: (p_observed - p_chance) / (1 - p_chance), NaN if undefined."""
    if len(first) != len(second):
        raise ValueError("the two raters must label the same number of items")
    n = len(first)
    if n == 0:
        return math.nan
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    first_yes = sum(bool(a) for a in first) / n
    second_yes = sum(bool(b) for b in second) / n
    chance = first_yes * second_yes + (1 - first_yes) * (1 - second_yes)
    if chance >= 1.0:
        return math.nan
    return (observed - chance) / (1 - chance)
