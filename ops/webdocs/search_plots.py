"""Charts of the filter search: Δ bits per byte with seed error bars, and yield against quality."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from ops.common.plots import pyplot


def _png(figure) -> bytes:
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot().close(figure)
    return buffer.getvalue()


def delta_bars_png(names: Sequence[str], deltas: Sequence[float], spreads: Sequence[float], title: str) -> bytes:
    """Horizontal bars of Δ bpb vs random at equal yield (negative = better), ± one seed std as error bars."""
    figure, axes = pyplot().subplots(figsize=(7.0, max(2.5, 0.35 * len(names) + 1.2)), dpi=100)
    errors = np.nan_to_num(np.asarray(spreads, dtype=float))
    values = np.nan_to_num(np.asarray(deltas, dtype=float))
    axes.barh(range(len(names)), values, xerr=errors, color=["tab:green" if v < 0 else "tab:red" for v in values])
    axes.set_yticks(range(len(names)), [name[:60] for name in names], fontsize=7)
    axes.invert_yaxis()
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel("Δ bits per byte vs random at equal yield (± seed std)")
    axes.set_title(title)
    return _png(figure)


def yield_quality_png(yields: Sequence[float], deltas: Sequence[float], names: Sequence[str], title: str) -> bytes:
    """Each filter as a point: the share of documents it keeps against its Δ bpb vs random."""
    figure, axes = pyplot().subplots(figsize=(6.0, 4.0), dpi=100)
    axes.scatter(yields, deltas)
    for x, y, name in zip(yields, deltas, names, strict=True):
        axes.annotate(name[:30], (x, y), fontsize=6)
    axes.axhline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel("yield (share of deduplicated documents kept)")
    axes.set_ylabel("Δ bits per byte vs random")
    axes.set_title(title)
    return _png(figure)
