"""Data-quality expectations as plain data, so asset code declares its suite without importing an engine.

Each spec names a Great Expectations expectation class in snake case (the name GE itself reports,
e.g. "expect_column_values_to_not_be_null") and the keyword arguments of that class. The quality
resource turns specs into real GE expectations; here they are only data, cheap to build, compare
and print.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# Keyword arguments through which GE expectations name the columns they read.
_COLUMN_KEYS = ("column", "column_A", "column_B")
_COLUMN_LIST_KEYS = ("column_list",)


@dataclass(frozen=True)
class ExpectationSpec:
    """One expectation: a GE expectation type in snake case and its keyword arguments."""

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.type.startswith("expect_"):
            raise ValueError(f"expectation type must be a snake-case GE name like 'expect_...': {self.type!r}")

    @property
    def columns(self) -> tuple[str, ...]:
        """Columns this expectation names explicitly (empty for table-level expectations)."""
        named = [self.kwargs[key] for key in _COLUMN_KEYS if key in self.kwargs]
        for key in _COLUMN_LIST_KEYS:
            named.extend(self.kwargs.get(key, ()))
        return tuple(named)

    @property
    def arguments(self) -> dict[str, Any]:
        """The keyword arguments other than the column names, e.g. a value set or bounds."""
        column_keys = (*_COLUMN_KEYS, *_COLUMN_LIST_KEYS)
        return {key: value for key, value in self.kwargs.items() if key not in column_keys}


def _with_mostly(kwargs: dict[str, Any], mostly: float) -> dict[str, Any]:
    """Add GE's `mostly` (fraction of rows that must pass) only when it relaxes the default of 1."""
    return {**kwargs, "mostly": mostly} if mostly < 1.0 else kwargs


def not_null(column: str, *, mostly: float = 1.0) -> ExpectationSpec:
    """No nulls (or NaN) in `column`."""
    return ExpectationSpec("expect_column_values_to_not_be_null", _with_mostly({"column": column}, mostly))


def unique(column: str) -> ExpectationSpec:
    """Every non-null value of `column` appears once."""
    return ExpectationSpec("expect_column_values_to_be_unique", {"column": column})


def in_set(column: str, values: Iterable[Any], *, mostly: float = 1.0) -> ExpectationSpec:
    """Every non-null value of `column` is one of `values`."""
    return ExpectationSpec(
        "expect_column_values_to_be_in_set",
        _with_mostly({"column": column, "value_set": list(values)}, mostly),
    )


def between(
    column: str, min_value: float | None = None, max_value: float | None = None, *, mostly: float = 1.0
) -> ExpectationSpec:
    """Every non-null value of `column` lies in [min_value, max_value]; None leaves that side open."""
    kwargs = {"column": column, "min_value": min_value, "max_value": max_value}
    return ExpectationSpec("expect_column_values_to_be_between", _with_mostly(kwargs, mostly))


def length_between(
    column: str, min_value: int | None = None, max_value: int | None = None, *, mostly: float = 1.0
) -> ExpectationSpec:
    """Every non-null string in `column` has a length in [min_value, max_value]; None leaves a side open."""
    kwargs = {"column": column, "min_value": min_value, "max_value": max_value}
    return ExpectationSpec("expect_column_value_lengths_to_be_between", _with_mostly(kwargs, mostly))


def columns_exist(columns: Iterable[str]) -> list[ExpectationSpec]:
    """One `expect_column_to_exist` per column: the frame has at least these columns."""
    return [ExpectationSpec("expect_column_to_exist", {"column": column}) for column in columns]


def columns_match(columns: Iterable[str], *, exact: bool = True) -> ExpectationSpec:
    """The frame's column names are exactly `columns` (any order); `exact=False` allows extra columns."""
    return ExpectationSpec("expect_table_columns_to_match_set", {"column_set": list(columns), "exact_match": exact})


def row_count_between(min_value: int | None = None, max_value: int | None = None) -> ExpectationSpec:
    """The frame has between min_value and max_value rows; None leaves that side open."""
    return ExpectationSpec("expect_table_row_count_to_be_between", {"min_value": min_value, "max_value": max_value})
