"""Charts of the upcycling report: validation loss against tokens with the upcycling point marked."""

from __future__ import annotations

import io

import polars as pl

from ops.common.plots import pyplot


def curves_png(curves: pl.DataFrame, value: str, title: str, upcycling_tokens: int | None = None) -> bytes:
    """One line per run of `value` against tokens, a dashed vertical line at the upcycling point."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7.5, 3.6), dpi=100)
    for run in sorted(curves["run"].unique().to_list()):
        curve = curves.filter(pl.col("run") == run).sort("tokens").drop_nans(value)
        axes.plot(curve["tokens"].to_list(), curve[value].to_list(), label=run, linewidth=1.3)
    if upcycling_tokens is not None:
        axes.axvline(upcycling_tokens, color="grey", linestyle="--", linewidth=1.0, label="upcycling point")
    axes.set_xlabel("tokens")
    axes.set_ylabel(value)
    axes.set_title(title)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
