"""The one way an asset hands a table to Dagster: content version, data version and UI metadata."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import dagster as dg
import polars as pl

from ops.common.versioning import frame_version
from resources.io_manager import ARTIFACT_VERSION

PREVIEW_ROWS = 5
_PREVIEW_CELL_CHARS = 80


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
    """A frame as a markdown table for the UI, long cells cut to keep it readable."""
    if frame.width == 0:
        return dg.MetadataValue.md("_empty_")

    def cell(value: Any) -> str:
        text = "" if value is None else str(value)
        text = text.replace("\n", " ").replace("|", "\\|")
        return text if len(text) <= _PREVIEW_CELL_CHARS else text[: _PREVIEW_CELL_CHARS - 1] + "…"

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * frame.width]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.iter_rows()]
    return dg.MetadataValue.md("\n".join(lines))


def png_metadata(png: bytes, alt: str) -> dg.MetadataValue:
    """A PNG image shown inline in the UI (markdown with a data URI)."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
