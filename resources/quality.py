"""Blocking data-quality checks: Great Expectations 1.x suites, declared as data, run on polars frames.

Asset code declares a suite as `ExpectationSpec`s (ops/common/expectations.py); `QualityResource`
turns them into real GE expectations, validates the frame in an in-memory (ephemeral) GE context and
returns a `QualityReport`, which becomes a blocking `AssetCheckResult` together with the invariants
GE cannot see (e.g. rows in = rows kept + rows quarantined).

GE validates pandas data here, so the frame is converted with `to_pandas()`, but only the columns
the suite names (all of them when a table-level expectation needs the full schema): wide text or
embedding columns the suite never reads are not copied. Frames too large for one pandas copy belong
on a Spark or SQL datasource, or should be validated per partition.

Great Expectations is imported on first use, not at import time: it takes seconds to import and this
module is loaded with the Dagster definitions.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import dagster as dg
import numpy as np
import polars as pl
from pydantic import Field, PrivateAttr

from ops.common.expectations import ExpectationSpec

# Table expectations that count rows but read no column: they can run on a frame of named columns only.
_ROW_COUNT_TYPES = frozenset({"expect_table_row_count_to_be_between", "expect_table_row_count_to_equal"})
# Stand-in column that keeps the row count when a suite names no column present in the frame.
_ROW_CARRIER = "__row__"
# Where each spec's position in the suite travels through GE (results come back in another order).
_INDEX_META = "assay_index"
_SAMPLE_CHARS = 120
_ARGUMENT_CHARS = 80


@dataclass(frozen=True)
class ExpectationOutcome:
    """How one expectation of a suite fared."""

    type: str
    column: str | None
    arguments: dict[str, Any]
    success: bool
    observed_value: Any
    unexpected_count: int | None
    unexpected_values: tuple[Any, ...]
    error: str | None

    @property
    def label(self) -> str:
        """Short name such as `expect_column_values_to_not_be_null(text)`."""
        return f"{self.type}({self.column})" if self.column else self.type


@dataclass(frozen=True)
class QualityReport:
    """Result of validating one frame against one suite: GE's statistics and each expectation's outcome."""

    suite_name: str
    rows: int
    success: bool
    evaluated: int
    successful: int
    unsuccessful: int
    success_percent: float
    results: tuple[ExpectationOutcome, ...]

    @property
    def failed(self) -> tuple[ExpectationOutcome, ...]:
        """Outcomes of the expectations that did not pass (including those that raised)."""
        return tuple(outcome for outcome in self.results if not outcome.success)

    def to_markdown(self) -> str:
        """A markdown table with one row per expectation, for the Dagster UI."""
        lines = [
            "| status | expectation | column | arguments | observed | unexpected | examples |",
            "|---|---|---|---|---|---|---|",
        ]
        for outcome in self.results:
            status = "pass" if outcome.success else ("ERROR" if outcome.error else "FAIL")
            arguments = ", ".join(f"{key}={value!r}" for key, value in outcome.arguments.items())
            observed = outcome.error if outcome.error else outcome.observed_value
            cells = [
                status,
                outcome.type,
                outcome.column or "",
                _shorten(arguments, _ARGUMENT_CHARS),
                "" if observed is None else str(observed),
                "" if outcome.unexpected_count is None else str(outcome.unexpected_count),
                ", ".join(repr(value) for value in outcome.unexpected_values),
            ]
            lines.append("| " + " | ".join(_md_cell(cell) for cell in cells) + " |")
        return "\n".join(lines)

    def to_check_result(
        self,
        extra: Mapping[str, bool] | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        check_name: str | None = None,
        asset_key: dg.AssetKey | str | Sequence[str] | None = None,
    ) -> dg.AssetCheckResult:
        """A blocking (ERROR) check result: passed only if GE passed and every `extra` invariant holds.

        `extra` maps an invariant's description (e.g. "rows_in == rows_kept + rows_quarantined") to
        whether it holds. `metadata` is added as is; its keys must not shadow the report's own.
        `check_name` and `asset_key` are needed only when one asset yields several checks.
        """
        invariants = {name: bool(holds) for name, holds in (extra or {}).items()}
        failed_invariants = [name for name, holds in invariants.items() if not holds]
        failed_expectations = [outcome.label for outcome in self.failed]
        report_metadata: dict[str, Any] = {
            "suite": dg.MetadataValue.text(self.suite_name),
            "rows_validated": dg.MetadataValue.int(self.rows),
            "evaluated_expectations": dg.MetadataValue.int(self.evaluated),
            "successful_expectations": dg.MetadataValue.int(self.successful),
            "unsuccessful_expectations": dg.MetadataValue.int(self.unsuccessful),
            "success_percent": dg.MetadataValue.float(self.success_percent),
            "expectations": dg.MetadataValue.md(self.to_markdown()),
            "failed_expectations": dg.MetadataValue.json(failed_expectations),
            "invariants": dg.MetadataValue.json(invariants),
            "failed_invariants": dg.MetadataValue.json(failed_invariants),
        }
        shadowed = sorted(set(report_metadata) & set(metadata or {}))
        if shadowed:
            raise ValueError(f"metadata keys {shadowed} are reserved for the quality report")
        description = f"suite {self.suite_name!r}: {self.successful}/{self.evaluated} expectations passed"
        if failed_expectations:
            description += "; failed: " + ", ".join(failed_expectations)
        if failed_invariants:
            description += "; invariants failed: " + ", ".join(failed_invariants)
        return dg.AssetCheckResult(
            passed=self.success and not failed_invariants,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={**report_metadata, **(metadata or {})},
            description=description,
            check_name=check_name,
            asset_key=asset_key,
        )


class QualityResource(dg.ConfigurableResource):
    """Validates polars frames against expectation suites with Great Expectations 1.x, offline.

    One in-memory GE context is created per resource instance and reused; every validation adds
    its own short-lived pandas datasource and deletes it afterwards, so no frame stays referenced
    by the context between calls and nothing is written to disk or sent over the network.
    """

    unexpected_sample_size: int = Field(
        default=5, ge=0, description="How many unexpected values each failed expectation reports."
    )

    _context: Any = PrivateAttr(default=None)

    def validate(self, frame: pl.DataFrame, suite_name: str, expectations: Sequence[ExpectationSpec]) -> QualityReport:
        """Run the suite `expectations` on `frame` and report every expectation's outcome.

        Raises ValueError for an empty suite, an unknown expectation type or invalid arguments;
        a failing expectation (or one GE could not evaluate, e.g. a missing column) is reported,
        not raised.
        """
        specs = list(expectations)
        if not specs:
            raise ValueError(f"suite {suite_name!r} has no expectations")
        gx = _great_expectations()
        suite = gx.ExpectationSuite(
            name=suite_name,
            expectations=[_expectation(spec, index, suite_name) for index, spec in enumerate(specs)],
        )
        data = _frame_for_suite(frame, specs).to_pandas()
        context = self._get_context()
        source_name = f"assay-{uuid.uuid4().hex}"
        source = context.data_sources.add_pandas(source_name)
        try:
            batch = (
                source.add_dataframe_asset("frame")
                .add_batch_definition_whole_dataframe("whole")
                .get_batch(batch_parameters={"dataframe": data})
            )
            result = batch.validate(
                suite,
                result_format={
                    "result_format": "BASIC",
                    "partial_unexpected_count": self.unexpected_sample_size,
                },
            )
        finally:
            context.data_sources.delete(source_name)
        return _report(suite_name, frame.height, specs, result)

    def _get_context(self) -> Any:
        """The instance's ephemeral GE context, created on first use without progress bars."""
        if self._context is None:
            gx = _great_expectations()
            from great_expectations.data_context.types.base import ProgressBarsConfig

            context = gx.get_context(mode="ephemeral")
            context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            self._context = context
        return self._context


def _great_expectations() -> ModuleType:
    """Import GE with usage analytics off (this machine must not phone home)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations

    return great_expectations


@functools.cache
def _expectation_classes() -> dict[str, type]:
    """GE's public expectation classes by their snake-case type, e.g. expect_column_to_exist."""
    gx = _great_expectations()
    base = gx.expectations.Expectation
    return {
        cls.expectation_type: cls
        for cls in vars(gx.expectations).values()
        if inspect.isclass(cls) and issubclass(cls, base) and cls.expectation_type
    }


def _expectation(spec: ExpectationSpec, index: int, suite_name: str) -> Any:
    """Build the GE expectation a spec names, with errors that say which spec is wrong."""
    classes = _expectation_classes()
    cls = classes.get(spec.type)
    if cls is None:
        close = difflib.get_close_matches(spec.type, classes, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown expectation type {spec.type!r} in suite {suite_name!r}{hint}")
    try:
        return cls(**spec.kwargs, meta={_INDEX_META: index})
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"invalid arguments for {spec.type} in suite {suite_name!r}: {error}") from error


def _frame_for_suite(frame: pl.DataFrame, specs: Sequence[ExpectationSpec]) -> pl.DataFrame:
    """The part of `frame` the suite reads: its named columns, or all columns for schema expectations."""
    needed: set[str] = set()
    for spec in specs:
        if spec.columns:
            needed.update(spec.columns)
        elif spec.type not in _ROW_COUNT_TYPES:
            return frame
    present = [column for column in frame.columns if column in needed]
    if present:
        return frame.select(present)
    return pl.DataFrame({_ROW_CARRIER: pl.int_range(frame.height, eager=True)})


def _report(suite_name: str, rows: int, specs: Sequence[ExpectationSpec], result: Any) -> QualityReport:
    """Turn GE's suite validation result into a report, outcomes in the order the suite declared them."""
    outcomes: list[tuple[int, ExpectationOutcome]] = []
    for item in result.results:
        index = item.expectation_config.meta[_INDEX_META]
        spec = specs[index]
        details = item.result or {}
        outcome = ExpectationOutcome(
            type=spec.type,
            column=", ".join(spec.columns) or None,
            arguments=spec.arguments,
            success=bool(item.success),
            observed_value=_plain(details.get("observed_value")),
            unexpected_count=details.get("unexpected_count"),
            unexpected_values=tuple(_plain(value) for value in details.get("partial_unexpected_list", [])),
            error=_error_message(item.exception_info or {}),
        )
        outcomes.append((index, outcome))
    statistics = result.statistics
    return QualityReport(
        suite_name=suite_name,
        rows=rows,
        success=bool(result.success),
        evaluated=int(statistics["evaluated_expectations"]),
        successful=int(statistics["successful_expectations"]),
        unsuccessful=int(statistics["unsuccessful_expectations"]),
        success_percent=float(statistics["success_percent"]),
        results=tuple(outcome for _, outcome in sorted(outcomes, key=lambda pair: pair[0])),
    )


def _error_message(exception_info: Mapping[str, Any]) -> str | None:
    """The message of the exception GE caught while evaluating an expectation, if any.

    GE reports it either flat or, when a metric failed (e.g. a missing column), nested under the
    metric's id.
    """
    candidates = [exception_info, *(info for info in exception_info.values() if isinstance(info, Mapping))]
    return next((info.get("exception_message") for info in candidates if info.get("raised_exception")), None)


def _plain(value: Any) -> Any:
    """A JSON-safe, short copy of a value GE reports: numpy scalars unwrapped, NaN as None, long text cut."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return _shorten(value, _SAMPLE_CHARS)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return _shorten(str(value), _SAMPLE_CHARS)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md_cell(text: str) -> str:
    """Escape a value so it stays inside one markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
