"""Small matplotlib charts rendered to PNG bytes, for asset metadata in the UI."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: render to memory only
import matplotlib.pyplot as plt


def stacked_bar_png(categories: Sequence[str], series: Mapping[str, Sequence[float]], title: str, ylabel: str) -> bytes:
    """A stacked bar chart (one bar per category, one colour per series) as PNG bytes."""
    figure, axes = plt.subplots(figsize=(max(4.0, 1.2 * len(categories) + 2), 3.2), dpi=100)
    bottom = [0.0] * len(categories)
    for name, values in series.items():
        axes.bar(categories, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.tick_params(axis="x", labelsize=7, labelrotation=15)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
