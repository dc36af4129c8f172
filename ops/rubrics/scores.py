"""Scores over a grades frame joined with its criteria: weighted pass rate, HealthBench score, breakdowns.

Conventions, the same in every function:

- Ungraded criteria (the judge gave no usable verdict) leave both numerator and denominator, and are
  counted in `n_ungraded`, so a judge failure is never a pass nor a fail.
- Weighted pass rate (Shopping Reasoning Bench, Rubrics-as-Rewards): per response (one model's answer
  to one turn of one item), sum(|w| * pass) / sum(|w|) over its graded criteria. A positive criterion
  passes when met; a negative (must-not) criterion passes when its bad behaviour did NOT occur
  ("not_met"), with the size of its penalty as weight. The rate stays in [0, 1], and a response that
  does the forbidden thing loses exactly that importance. No graded criterion: null, not 0.
- HealthBench score: per example (= per response) sum of the points of the criteria met, negative
  points included when the bad behaviour occurred, divided by the sum of positive points; an example
  may fall below 0 or (never in HealthBench, possible with ungraded positives) above 1 and is NOT
  clipped: only the mean over examples is clipped to [0, 1], as in HealthBench. Examples without a
  graded positive criterion have no score and are counted apart (`n_unscored`).
- Breakdowns average the per-response rates over the responses that have a graded criterion in the
  slice (macro average: each response/turn counts once, as the paper reports per-turn scores).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from ops.rubrics.grading import MET, UNGRADED

RESPONSE_KEYS = ("model", "response_id", "item_id", "turn_index")
BREAKDOWNS = ("model", "required", "category", "subcategory", "turn_index")
_BOOTSTRAP_BLOCK = 100


def graded_criteria(grades: pl.DataFrame, criteria: pl.DataFrame) -> pl.DataFrame:
    """Grades with each criterion's weight, required, category and subcategory, plus the 0/1 columns
    `graded`, `met` and `passed` (met for a positive criterion, not met for a negative one).

    Raises when a grade names a criterion the criteria frame does not hold: its weight is unknown.
    """
    attributes = criteria.select("criterion_id", "weight", "required", "category", "subcategory")
    joined = grades.join(attributes, on="criterion_id", how="left", validate="m:1")
    unknown = joined.filter(pl.col("weight").is_null())["criterion_id"].unique().to_list()
    if unknown:
        raise ValueError(f"grades name criteria missing from the criteria frame: {', '.join(sorted(unknown)[:10])}")
    graded = pl.col("status") != UNGRADED
    met = pl.col("status") == MET
    return joined.with_columns(
        graded.cast(pl.Int64).alias("graded"),
        met.cast(pl.Int64).alias("met"),
        (graded & (met != (pl.col("weight") < 0))).cast(pl.Int64).alias("passed"),
    )


def weighted_pass_rate(grades: pl.DataFrame, criteria: pl.DataFrame) -> pl.DataFrame:
    """Per response: `weighted_pass_rate` (see the module docstring), `n_criteria`, `n_graded`,
    `n_ungraded` and `n_negative_met` (must-not behaviours that occurred)."""
    rows = graded_criteria(grades, criteria)
    return (
        rows.group_by(RESPONSE_KEYS)
        .agg(_pass_rate_aggregations())
        .with_columns(
            (pl.col("n_criteria") - pl.col("n_graded")).alias("n_ungraded"),
        )
        .sort(RESPONSE_KEYS)
        .select(*RESPONSE_KEYS, "weighted_pass_rate", "n_criteria", "n_graded", "n_ungraded", "n_negative_met")
    )


def example_scores(grades: pl.DataFrame, criteria: pl.DataFrame) -> pl.DataFrame:
    """Per response: `points_met`, `positive_points` and the unclipped HealthBench `score`."""
    rows = graded_criteria(grades, criteria)
    weight = pl.col("weight")
    return (
        rows.group_by(RESPONSE_KEYS)
        .agg(
            (weight * pl.col("met")).sum().alias("points_met"),
            pl.when(weight > 0).then(weight * pl.col("graded")).otherwise(0.0).sum().alias("positive_points"),
            (1 - pl.col("graded")).sum().alias("n_ungraded"),
        )
        .with_columns(
            pl.when(pl.col("positive_points") > 0)
            .then(pl.col("points_met") / pl.col("positive_points"))
            .otherwise(None)
            .alias("score")
        )
        .sort(RESPONSE_KEYS)
    )


def healthbench_score(
    grades: pl.DataFrame, criteria: pl.DataFrame, n_bootstrap: int = 1000, seed: int = 0
) -> pl.DataFrame:
    """Per model: the mean example score clipped to [0, 1] (`score`), the unclipped mean, and the
    bootstrap standard deviation of the clipped mean (`bootstrap_std`, `n_bootstrap` resamples)."""
    examples = example_scores(grades, criteria)
    rows = []
    for (model,), group in examples.sort("model").group_by(["model"], maintain_order=True):
        values = group["score"].drop_nulls().to_numpy()
        score, std = clipped_mean_stats(values, n_bootstrap, seed)
        rows.append(
            {
                "model": model,
                "n_examples": len(values),
                "n_unscored": group.height - len(values),
                "mean_unclipped": float(values.mean()) if len(values) else None,
                "score": score if len(values) else None,
                "bootstrap_std": std if len(values) else None,
            }
        )
    schema = {
        "model": pl.String(),
        "n_examples": pl.Int64(),
        "n_unscored": pl.Int64(),
        "mean_unclipped": pl.Float64(),
        "score": pl.Float64(),
        "bootstrap_std": pl.Float64(),
    }
    return pl.DataFrame(rows, schema=schema)


def clipped_mean_stats(values: np.ndarray, n_bootstrap: int = 1000, seed: int = 0) -> tuple[float, float]:
    """The mean of `values` clipped to [0, 1], and the standard deviation (ddof 0, as HealthBench) of
    that clipped mean over `n_bootstrap` resamples with replacement (seeded: same inputs, same std).
    NaN for both when there are no values."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = []
    for start in range(0, n_bootstrap, _BOOTSTRAP_BLOCK):
        block = min(_BOOTSTRAP_BLOCK, n_bootstrap - start)
        means.append(values[rng.integers(0, values.size, size=(block, values.size))].mean(axis=1))
    clipped = np.clip(np.concatenate(means), 0.0, 1.0) if means else np.array([np.nan])
    return float(np.clip(values.mean(), 0.0, 1.0)), float(clipped.std())


def score_breakdowns(grades: pl.DataFrame, criteria: pl.DataFrame, by: Sequence[str] = BREAKDOWNS) -> pl.DataFrame:
    """Weighted pass rate per model and slice: one row per (dimension, model, value), with the number
    of responses averaged, criteria and ungraded criteria in the slice.

    Dimensions: "model" (the model's overall rate), "required" (values "required"/"optional"),
    "category", "subcategory", "turn_index".
    """
    unknown = [dimension for dimension in by if dimension not in BREAKDOWNS]
    if unknown:
        raise ValueError(f"unknown breakdowns {unknown}; expected some of {', '.join(BREAKDOWNS)}")
    rows = graded_criteria(grades, criteria)
    frames = []
    for dimension in by:
        per_response = (
            rows.with_columns(_slice_value(dimension).alias("value"))
            .group_by("model", "response_id", "value")
            .agg(_pass_rate_aggregations())
        )
        frames.append(
            per_response.group_by("model", "value")
            .agg(
                pl.col("weighted_pass_rate").mean(),
                pl.col("weighted_pass_rate").count().alias("n_responses"),
                pl.col("n_criteria").sum(),
                (pl.col("n_criteria") - pl.col("n_graded")).sum().alias("n_ungraded"),
            )
            .with_columns(pl.lit(dimension).alias("dimension"))
            .sort("model", "value")
        )
    columns = ["dimension", "model", "value", "weighted_pass_rate", "n_responses", "n_criteria", "n_ungraded"]
    if not frames:
        return pl.DataFrame(schema=dict.fromkeys(columns, pl.String()))
    return pl.concat([frame.select(columns) for frame in frames], how="vertical_relaxed")


def _pass_rate_aggregations() -> list[pl.Expr]:
    size = pl.col("weight").abs()
    graded_weight = (size * pl.col("graded")).sum()
    return [
        pl.when(graded_weight > 0)
        .then((size * pl.col("passed")).sum() / graded_weight)
        .otherwise(None)
        .alias("weighted_pass_rate"),
        pl.len().cast(pl.Int64).alias("n_criteria"),
        pl.col("graded").sum().alias("n_graded"),
        ((pl.col("weight") < 0) & (pl.col("met") == 1)).sum().cast(pl.Int64).alias("n_negative_met"),
    ]


def _slice_value(dimension: str) -> pl.Expr:
    if dimension == "required":
        return pl.when(pl.col("required")).then(pl.lit("required")).otherwise(pl.lit("optional"))
    return pl.col(dimension).cast(pl.String)
