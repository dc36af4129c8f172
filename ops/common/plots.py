"""Small matplotlib charts rendered to PNG bytes, for asset metadata in the UI."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: render to memory only
import matplotlib.pyplot as plt
import numpy as np


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


def heatmap_png(
    values: Sequence[Sequence[float]],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    title: str,
    vmin: float | None = None,
    vmax: float | None = None,
    value_format: str = "{:.2f}",
) -> bytes:
    """A heatmap with each cell's value written in it, as PNG bytes; NaN cells stay blank."""
    matrix = np.asarray(values, dtype=np.float64)
    rows, columns = matrix.shape
    figure, axes = plt.subplots(figsize=(max(4.0, 0.6 * columns + 2.5), max(3.0, 0.45 * rows + 1.5)), dpi=100)
    image = axes.imshow(np.ma.masked_invalid(matrix), cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    low, high = image.get_clim()
    for i in range(rows):
        for j in range(columns):
            if np.isfinite(matrix[i, j]):
                dark = (matrix[i, j] - low) / ((high - low) or 1.0) < 0.6  # light text on dark cells
                axes.text(
                    j,
                    i,
                    value_format.format(matrix[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if dark else "black",
                )
    axes.set_xticks(range(columns), labels=list(column_labels), fontsize=7, rotation=45, ha="right")
    axes.set_yticks(range(rows), labels=list(row_labels), fontsize=7)
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.04)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def grouped_bar_png(categories: Sequence[str], series: Mapping[str, Sequence[float]], title: str, ylabel: str) -> bytes:
    """Side-by-side bars (one group per category, one colour per series) as PNG bytes; NaN draws no bar."""
    figure, axes = plt.subplots(
        figsize=(min(14.0, max(5.0, 0.3 * len(categories) * max(1, len(series)) + 3)), 4.0), dpi=100
    )
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(categories))
    for k, (name, heights) in enumerate(series.items()):
        axes.bar(positions + (k - (len(series) - 1) / 2) * width, heights, width=width, label=name)
    axes.axhline(0.0, color="grey", linewidth=0.6)
    axes.set_xticks(positions, labels=list(categories), fontsize=7, rotation=30, ha="right")
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def line_png(x_labels: Sequence[str], series: Mapping[str, Sequence[float]], title: str, ylabel: str) -> bytes:
    """One line per series over ordered x labels (e.g. months), as PNG bytes; few tick labels shown."""
    figure, axes = plt.subplots(figsize=(7.0, 3.2), dpi=100)
    positions = np.arange(len(x_labels))
    for name, values in series.items():
        axes.plot(positions, values, label=name, linewidth=1.4)
    step = max(1, len(x_labels) // 12)
    axes.set_xticks(positions[::step], labels=list(x_labels)[::step], fontsize=7, rotation=30, ha="right")
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
