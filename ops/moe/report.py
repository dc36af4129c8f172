"""The upcycling report: gap closure, compute saved and routing figures from the training curves.

Curves are frames of `CURVE_SCHEMA`, one row per evaluation of one run; tokens are counted from the
start of pretraining, so an upcycled run's curve starts at the upcycling point (the base budget).
"""

from __future__ import annotations

import math

import polars as pl

CURVE_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.String,
    "step": pl.Int64,
    "tokens": pl.Int64,
    "train_loss": pl.Float64,
    "val_loss": pl.Float64,
    "load_entropy": pl.Float64,
    "duplicate_cosine": pl.Float64,
}
BASE_RUN = "base-E"
KEEP_E_RUN = "baseline-keep-E"
SCRATCH_RUN = "baseline-scratch-mE"
REPORT_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.String,
    "final_val_loss": pl.Float64,
    "gap_closure": pl.Float64,
    "tokens_to_scratch_loss": pl.Int64,
    "compute_saved": pl.Float64,
    "load_entropy": pl.Float64,
    "duplicate_cosine_start": pl.Float64,
    "duplicate_cosine_end": pl.Float64,
}


def gap_closure(loss_e: float, loss_up: float, loss_me: float) -> float:
    """(L_E - L_up) / (L_E - L_mE): 1 = the upcycled model matches the mE model trained from scratch,
    0 = no better than continuing the E model; NaN when the scratch model did not beat the E model."""
    gap = loss_e - loss_me
    return (loss_e - loss_up) / gap if gap > 0 else math.nan


def tokens_to_reach(curve: pl.DataFrame, target: float) -> int | None:
    """Tokens at the first evaluation whose validation loss is at or below `target` (None if never)."""
    reached = curve.sort("tokens").filter(pl.col("val_loss") <= target)
    return None if reached.is_empty() else int(reached["tokens"][0])


def compute_saved(tokens_needed: int | None, scratch_tokens: int) -> float:
    """Share of the from-scratch run's compute saved by reaching its final loss after `tokens_needed`
    (active compute per token is equal: top-K is held). NaN when the loss was never reached."""
    return math.nan if tokens_needed is None else 1.0 - tokens_needed / scratch_tokens


def final_loss(curves: pl.DataFrame, run: str) -> float:
    """The last validation loss of a run."""
    curve = curves.filter(pl.col("run") == run).sort("tokens")
    if curve.is_empty():
        raise ValueError(f"no curve for run {run!r}; runs present: {sorted(curves['run'].unique().to_list())}")
    return float(curve["val_loss"][-1])


def upcycling_report(curves: pl.DataFrame) -> pl.DataFrame:
    """One row per run after the upcycling point (every strategy and both baselines)."""
    loss_e, loss_me = final_loss(curves, KEEP_E_RUN), final_loss(curves, SCRATCH_RUN)
    scratch = curves.filter(pl.col("run") == SCRATCH_RUN)
    scratch_tokens = int(scratch["tokens"].max())
    rows = []
    for run in sorted(set(curves["run"].to_list()) - {BASE_RUN}):
        curve = curves.filter(pl.col("run") == run).sort("tokens")
        loss = float(curve["val_loss"][-1])
        needed = tokens_to_reach(curve, loss_me)
        cosine = curve["duplicate_cosine"].drop_nans().drop_nulls()
        rows.append(
            {
                "run": run,
                "final_val_loss": loss,
                "gap_closure": gap_closure(loss_e, loss, loss_me),
                "tokens_to_scratch_loss": needed,
                "compute_saved": compute_saved(needed, scratch_tokens),
                "load_entropy": float(curve["load_entropy"][-1]),
                "duplicate_cosine_start": float(cosine[0]) if len(cosine) else math.nan,
                "duplicate_cosine_end": float(cosine[-1]) if len(cosine) else math.nan,
            }
        )
    return pl.DataFrame(rows, schema=REPORT_SCHEMA)
