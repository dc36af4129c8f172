"""The one kept-plus-quarantine pattern: a split result, one quarantine schema, one accounting rule.

Every step that may refuse input returns a `Split`: the rows it kept, one quarantine row per refused
input record (a reason code from the step's own vocabulary, a human-readable detail and an excerpt of
the raw record) and the number of rows that came in. `Split.accounted()` is the invariant every
blocking check proves: rows in = rows kept + rows quarantined.

A domain that must say more about a refused record (its shard, source line, level) appends its own
columns after the shared ones (`{**QUARANTINE_SCHEMA, "shard": pl.String}`) and passes them as
`Rejected.extra`; the first four columns and their meaning never change.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from ops.common.expectations import ExpectationSpec, columns_exist, in_set, not_null

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "excerpt": pl.String,
}
EXCERPT_CHARS = 500
ROWS_ACCOUNTED = "rows in == rows kept + rows quarantined"


@dataclass(frozen=True)
class Rejected:
    """One refused input record: its id, a reason code and what exactly was wrong."""

    record_id: str
    reason: str
    detail: str
    raw: Any = None
    extra: Mapping[str, Any] | None = None

    def row(self) -> dict[str, Any]:
        """This rejection as a row of `QUARANTINE_SCHEMA` (plus the domain's `extra` columns)."""
        shared = {"record_id": self.record_id, "reason": self.reason, "detail": self.detail}
        return {**shared, "excerpt": excerpt(self.raw), **(self.extra or {})}


@dataclass(frozen=True)
class Split:
    """What a step kept and what it quarantined, with the count of rows that came in."""

    kept: pl.DataFrame
    quarantined: pl.DataFrame
    rows_in: int

    def accounted(self) -> bool:
        """True when no row was lost or invented: rows in = kept + quarantined."""
        return self.rows_in == self.kept.height + self.quarantined.height

    def reason_counts(self) -> dict[str, int]:
        """Quarantined rows per reason code (for metadata and reports)."""
        if self.quarantined.is_empty():
            return {}
        counts = self.quarantined.group_by("reason").len().sort("reason")
        return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))

    def metadata(self) -> dict[str, Any]:
        """Plain numbers for asset metadata: rows in, kept, quarantined and the count per reason."""
        counts = {f"quarantined_{reason}": count for reason, count in self.reason_counts().items()}
        totals = {"rows_in": self.rows_in, "rows_kept": self.kept.height, "rows_quarantined": self.quarantined.height}
        return {**totals, **counts}


def quarantine_frame(
    rejections: Iterable[Rejected],
    reasons: Sequence[str] | None = None,
    schema: Mapping[str, pl.DataType] = QUARANTINE_SCHEMA,
) -> pl.DataFrame:
    """Rejections as a frame of `schema` (the shared one unless a domain extends it); with `reasons`, an
    unknown reason code is a bug and raises."""
    rows = [rejection.row() for rejection in rejections]
    if reasons is not None:
        unknown = sorted({row["reason"] for row in rows} - set(reasons))
        if unknown:
            raise ValueError(f"quarantine reason codes {unknown} are not in the step's vocabulary {list(reasons)}")
    return pl.DataFrame(rows, schema=dict(schema))


def split(
    kept_rows: Sequence[dict[str, Any]],
    kept_schema: dict[str, pl.DataType],
    rejections: Sequence[Rejected],
    rows_in: int,
    reasons: Sequence[str] | None = None,
    quarantine_schema: Mapping[str, pl.DataType] = QUARANTINE_SCHEMA,
) -> Split:
    """Build a `Split` from kept rows and rejections; raises if a row was lost or invented."""
    quarantined = quarantine_frame(rejections, reasons, quarantine_schema)
    result = Split(pl.DataFrame(list(kept_rows), schema=kept_schema), quarantined, rows_in)
    if not result.accounted():
        raise AssertionError(
            f"{ROWS_ACCOUNTED} failed: {rows_in} in, {result.kept.height} kept, {result.quarantined.height} quarantined"
        )
    return result


def excerpt(raw: Any, limit: int = EXCERPT_CHARS) -> str:
    """A bounded text view of a raw record (JSON for structures), for the quarantine row."""
    if raw is None:
        return ""
    text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False, default=str, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def quarantine_suite(reasons: Sequence[str], extra_columns: Sequence[str] = ()) -> list[ExpectationSpec]:
    """The expectations every quarantine table meets: the shared schema (plus the domain's `extra_columns`),
    a named record, a known reason code and a detail saying what was wrong."""
    columns = [*QUARANTINE_SCHEMA, *extra_columns]
    return [*columns_exist(columns), not_null("record_id"), in_set("reason", list(reasons)), not_null("detail")]
