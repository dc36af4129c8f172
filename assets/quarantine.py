"""The asset side of the kept-plus-quarantine pattern (`ops.common.quarantine`): the rows-in figure a step
records on its materialization, and the one spelling of the rows-accounted invariant its blocking check reports."""

from __future__ import annotations

from typing import Any

import dagster as dg

from ops.common.quarantine import ROWS_ACCOUNTED
from resources.io_manager import latest_materialization

UNRECORDED = -1


def recorded_rows_in(context: dg.AssetCheckExecutionContext, asset: str, partition: str | None = None) -> int:
    """The `rows_in` the asset's latest materialization recorded; `UNRECORDED` (never accounts) when missing."""
    event = latest_materialization(context.instance, dg.AssetKey(asset), partition)
    if event is None or "rows_in" not in event.metadata:
        return UNRECORDED
    return int(event.metadata["rows_in"].value)


def accounting(rows_in: int, kept: int, quarantined: int) -> tuple[dict[str, bool], dict[str, Any]]:
    """The check's verdict on rows in = kept + quarantined (under `ROWS_ACCOUNTED`) and the three counts."""
    counts = {"rows_in": rows_in, "rows_kept": kept, "rows_quarantined": quarantined}
    return {ROWS_ACCOUNTED: rows_in == kept + quarantined}, counts
