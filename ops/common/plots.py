"""Small matplotlib charts rendered to PNG bytes, for asset metadata in the UI.

Every chart fits the Dagster UI's metadata modal (1,240 px wide) without scaling: at most
`MAX_WIDTH_IN` x `DPI` = 1,200 px. Bars start at zero; a value that is undefined (NaN, e.g. Cohen's
kappa when the teacher used a single code) draws no bar and is named in a note under the chart, and a
chart with nothing to draw says so instead of showing empty axes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import matplotlib.pyplot as plt

DPI = 100
MAX_WIDTH_IN = 12.0  # 1,200 px at DPI: fits the UI's 1,240 px metadata modal
NOTE_CHARS = 160


def pyplot() -> ModuleType:
    """matplotlib's pyplot on the Agg backend (no display), imported on first use: loading the code location
    must not pay for matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def _figure(width: float, height: float) -> tuple[plt.Figure, plt.Axes]:
    """A figure no wider than the UI modal."""
    return pyplot().subplots(figsize=(min(MAX_WIDTH_IN, width), height), dpi=DPI)


def _png(figure: plt.Figure, noted: bool = False) -> bytes:
    """Render and close; `noted` keeps a strip at the bottom for the note under the chart."""
    figure.tight_layout(rect=(0, 0.07, 1, 1) if noted else None)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    pyplot().close(figure)
    return buffer.getvalue()


def undefined_note(categories: Sequence[str], series: Mapping[str, Sequence[float]]) -> str:
    """ "n/a: ..." naming each (series, category) whose value is undefined (NaN); "" when all are defined."""
    missing = [
        f"{name} / {category}" if len(series) > 1 else str(category)
        for name, values in series.items()
        for category, value in zip(categories, values, strict=True)
        if value is None or not np.isfinite(value)
    ]
    if not missing:
        return ""
    text = "n/a (undefined, no bar): " + ", ".join(missing)
    return text if len(text) <= NOTE_CHARS else text[: NOTE_CHARS - 1] + "…"


def _annotate(
    figure: plt.Figure, axes: plt.Axes, categories: Sequence[str], series: Mapping[str, Sequence[float]]
) -> bool:
    """Say what is not drawn: every value undefined or zero, or the undefined ones (True: a note was added)."""
    values = np.asarray([v if v is not None else np.nan for vs in series.values() for v in vs], dtype=np.float64)
    if not len(values) or not np.isfinite(values).any():
        axes.text(0.5, 0.5, "no defined value to plot", ha="center", va="center", transform=axes.transAxes)
    elif not np.nan_to_num(values).any():
        axes.text(0.5, 0.5, "all values are 0", ha="center", va="center", transform=axes.transAxes)
    note = undefined_note(categories, series)
    if note:
        figure.text(0.01, 0.01, note, fontsize=7, color="dimgrey", ha="left", va="bottom")
    return bool(note)


def stacked_bar_png(categories: Sequence[str], series: Mapping[str, Sequence[float]], title: str, ylabel: str) -> bytes:
    """A stacked bar chart (one bar per category, one colour per series) as PNG bytes."""
    figure, axes = _figure(max(4.0, 1.2 * len(categories) + 2), 3.2)
    bottom = [0.0] * len(categories)
    for name, values in series.items():
        axes.bar(categories, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes.tick_params(axis="x", labelsize=7, labelrotation=15)
    return _png(figure, _annotate(figure, axes, categories, series))


def heatmap_png(
    values: Sequence[Sequence[float]],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    title: str,
    vmin: float | None = None,
    vmax: float | None = None,
    value_format: str = "{:.2f}",
) -> bytes:
    """A heatmap with each cell's value written in it, as PNG bytes; NaN cells say "n/a"."""
    matrix = np.asarray(values, dtype=np.float64)
    rows, columns = matrix.shape
    figure, axes = _figure(max(4.0, 0.6 * columns + 2.5), max(3.0, 0.45 * rows + 1.5))
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
            else:
                axes.text(j, i, "n/a", ha="center", va="center", fontsize=6, color="dimgrey")
    axes.set_xticks(range(columns), labels=list(column_labels), fontsize=7, rotation=45, ha="right")
    axes.set_yticks(range(rows), labels=list(row_labels), fontsize=7)
    axes.set_title(title)
    figure.colorbar(image, ax=axes, fraction=0.04)
    return _png(figure)


def grouped_bar_png(
    categories: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
) -> bytes:
    """Side-by-side bars (one group per category, one colour per series) as PNG bytes; NaN draws no bar
    and is named under the chart. `ylim` fixes the value axis (e.g. (0, 1) for rates)."""
    figure, axes = _figure(max(5.0, 0.3 * len(categories) * max(1, len(series)) + 3), 4.0)
    width = 0.8 / max(1, len(series))
    positions = np.arange(len(categories))
    for k, (name, heights) in enumerate(series.items()):
        axes.bar(positions + (k - (len(series) - 1) / 2) * width, heights, width=width, label=name)
    axes.axhline(0.0, color="grey", linewidth=0.6)
    axes.set_xticks(positions, labels=list(categories), fontsize=7, rotation=30, ha="right")
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if ylim is not None:
        axes.set_ylim(*ylim)
    return _png(figure, _annotate(figure, axes, categories, series))


def line_png(
    x_labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    title: str,
    ylabel: str,
    ylim: tuple[float, float] | None = None,
) -> bytes:
    """One line per series over ordered x labels (e.g. months), as PNG bytes; few tick labels shown.
    `ylim` fixes the value axis (e.g. (0, 1) for rates)."""
    figure, axes = _figure(7.0, 3.2)
    positions = np.arange(len(x_labels))
    for name, values in series.items():
        axes.plot(positions, values, label=name, linewidth=1.4)
    step = max(1, len(x_labels) // 12)
    axes.set_xticks(positions[::step], labels=list(x_labels)[::step], fontsize=7, rotation=30, ha="right")
    axes.set_title(title)
    axes.set_ylabel(ylabel)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if ylim is not None:
        axes.set_ylim(*ylim)
    return _png(figure, _annotate(figure, axes, x_labels, series))
