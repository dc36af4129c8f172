"""Rubric criteria: the engine's unit, as a frozen dataclass and as a row of the criteria frame.

A criterion is one binary, checkable statement about one assistant turn of one item (a mission, a
HealthBench example, a query). Its `weight` is its importance in points: positive for behaviour the
response should show, negative for behaviour whose occurrence costs points (HealthBench semantics:
"met" then means the bad behaviour occurred). A weight of zero, or one that is not a finite number,
is rejected: it would silently drop the criterion from every score.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

CRITERIA_SCHEMA: dict[str, pl.DataType] = {
    "criterion_id": pl.String(),
    "item_id": pl.String(),
    "turn_index": pl.Int64(),
    "text": pl.String(),
    "weight": pl.Float64(),
    "required": pl.Boolean(),
    "category": pl.String(),
    "subcategory": pl.String(),
    "tags": pl.List(pl.String()),
}

# Names the source formats use for the same fields: the project's mission JSONL says "id",
# HealthBench says "points" (and "criterion" for the text, mapped by its loader).
_ALIASES = {"criterion_id": "id", "weight": "points"}


@dataclass(frozen=True)
class Criterion:
    """One weighted binary criterion of one turn of one item.

    `tags` may be given as any sequence of strings; it is stored as a tuple so that the criterion
    stays hashable. Construction raises `ValueError` with the reason `validate_criterion` gives.
    """

    criterion_id: str
    item_id: str
    turn_index: int
    text: str
    weight: float
    required: bool = True
    category: str = ""
    subcategory: str = ""
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", tuple(self.tags))
        reason = validate_criterion(self.__dict__)
        if reason is not None:
            raise ValueError(f"invalid criterion {self.criterion_id!r}: {reason}")
        object.__setattr__(self, "weight", float(self.weight))

    @property
    def is_negative(self) -> bool:
        """True for an undesirable behaviour (negative points): met = the behaviour occurred."""
        return self.weight < 0


def validate_criterion(raw: Mapping[str, Any]) -> str | None:
    """Why a raw criterion record cannot be used, or None when it can.

    Checks the fields every score depends on: a non-empty id (`criterion_id`, or `id`), a non-empty
    text, a finite non-zero numeric weight (`weight`, or `points`; booleans and strings such as
    "high" or "3" are refused), and, where present, a non-negative integer `turn_index`, a boolean
    `required` and string tags.
    """
    criterion_id = _field(raw, "criterion_id")
    if not isinstance(criterion_id, str) or not criterion_id.strip():
        return "missing id"
    text = raw.get("text")
    if not isinstance(text, str) or not text.strip():
        return "empty text"
    weight = _field(raw, "weight")
    if weight is None:
        return "missing weight"
    if isinstance(weight, bool) or not isinstance(weight, int | float):
        return f"non-numeric weight {weight!r}"
    if not math.isfinite(weight):
        return f"non-finite weight {weight!r}"
    if weight == 0:
        return "weight zero (use a positive weight, or a negative one for a must-not criterion)"
    turn_index = raw.get("turn_index", 0)
    if isinstance(turn_index, bool) or not isinstance(turn_index, int) or turn_index < 0:
        return f"turn_index must be a non-negative integer, got {turn_index!r}"
    if not isinstance(raw.get("required", True), bool):
        return f"required must be true or false, got {raw.get('required')!r}"
    tags = raw.get("tags", ())
    if isinstance(tags, str) or not isinstance(tags, Sequence) or not all(isinstance(tag, str) for tag in tags):
        return f"tags must be a list of strings, got {tags!r}"
    return None


def duplicate_ids(criteria: Iterable[Criterion | str]) -> list[str]:
    """Criterion ids that occur more than once (criteria or bare ids), in order of first occurrence."""
    counts = Counter(item.criterion_id if isinstance(item, Criterion) else item for item in criteria)
    return [criterion_id for criterion_id, count in counts.items() if count > 1]


def criteria_frame(criteria: Iterable[Criterion]) -> pl.DataFrame:
    """The criteria as a frame with exactly the `CRITERIA_SCHEMA` columns; duplicate ids raise."""
    rows = list(criteria)
    duplicated = duplicate_ids(rows)
    if duplicated:
        raise ValueError(f"duplicate criterion ids: {', '.join(duplicated[:10])}")
    records = [{**criterion.__dict__, "tags": list(criterion.tags)} for criterion in rows]
    return pl.DataFrame(records, schema=CRITERIA_SCHEMA)


def criteria_from_frame(frame: pl.DataFrame) -> list[Criterion]:
    """Criteria back from a frame with the `CRITERIA_SCHEMA` columns (each row validated again)."""
    missing = [name for name in CRITERIA_SCHEMA if name not in frame.columns]
    if missing:
        raise ValueError(f"criteria frame lacks columns: {', '.join(missing)}")
    return [
        Criterion(**{**row, "tags": tuple(row["tags"] or ())})
        for row in frame.select(list(CRITERIA_SCHEMA)).iter_rows(named=True)
    ]


def _field(raw: Mapping[str, Any], name: str) -> Any:
    """A field under its canonical name, else under the alias a source format uses."""
    value = raw.get(name)
    return raw.get(_ALIASES[name]) if value is None and name in _ALIASES else value
