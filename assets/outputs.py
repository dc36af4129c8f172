"""The one way an asset hands a table to Dagster: content version, data version and UI metadata."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl

from ops.common.versioning import frame_version
from resources.io_manager import ARTIFACT_VERSION

PREVIEW_ROWS = 5
_PREVIEW_CELL_CHARS = 80
HEADLINE_DIGITS = 4
# polars names a count column "len" (`group_by(...).len()`); the UI shows it as "count"
_COLUMN_LABELS = {"len": "count"}


def frame_output(
    frame: pl.DataFrame, metadata: Mapping[str, Any] | None = None, output_name: str = "result"
) -> dg.Output:
    """Wrap a frame in an Output whose DataVersion is the hash of its content.

    Equal content gives the equal version, so Dagster's staleness reflects real changes and the
    IO manager recognises a version it already stored.
    """
    version = frame_version(frame)
    return dg.Output(
        frame,
        output_name=output_name,
        data_version=dg.DataVersion(version),
        metadata={
            ARTIFACT_VERSION: version,
            "dagster/row_count": frame.height,
            "preview": markdown_table(frame.head(PREVIEW_ROWS)),
            **(metadata or {}),
        },
    )


def markdown_table(frame: pl.DataFrame) -> dg.MetadataValue:
    """A frame as a markdown table for the UI: floats to 4 significant digits, long cells cut."""
    if frame.width == 0:
        return dg.MetadataValue.md("_empty_")

    def cell(value: Any) -> str:
        text = "" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)
        text = text.replace("\n", " ").replace("|", "\\|")
        return text if len(text) <= _PREVIEW_CELL_CHARS else text[: _PREVIEW_CELL_CHARS - 1] + "…"

    lines = ["| " + " | ".join(_COLUMN_LABELS.get(c, c) for c in frame.columns) + " |", "|" + "---|" * frame.width]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return dg.MetadataValue.md("\n".join(lines))


def png_metadata(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG image shown inline in the UI (markdown with a data URI)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def headline_metadata(values: Mapping[str, float | None]) -> dict[str, Any]:
    """Headline figures as numeric metadata (rounded to 4 digits) so the UI can plot them over time.

    An undefined figure (None or NaN, e.g. Cohen's kappa when the teacher used one code) is left out
    rather than stored as NaN, and named under `undefined_figures`.
    """
    defined = {
        name: round(float(v), HEADLINE_DIGITS) for name, v in values.items() if v is not None and math.isfinite(v)
    }
    undefined = sorted(set(values) - set(defined))
    return {**defined, **({"undefined_figures": ", ".join(undefined)} if undefined else {})}
