"""The one kept-plus-quarantine pattern: the shared schema (extensible by a domain), reason vocabularies,
the rows-accounted invariant, its GE suite and the spelling every blocking check reports."""

from __future__ import annotations

import polars as pl
import pytest

from assets.quarantine import accounting
from ops.common.quarantine import (
    QUARANTINE_SCHEMA,
    ROWS_ACCOUNTED,
    Rejected,
    quarantine_frame,
    quarantine_suite,
    split,
)
from resources.quality import QualityResource

REASONS = ("too_short", "duplicate")
SHARD_SCHEMA = {**QUARANTINE_SCHEMA, "shard": pl.String, "line": pl.Int64}


def test_a_domain_extends_the_shared_columns_after_them() -> None:
    rejected = [Rejected("d1", "too_short", "3 characters", "abc", {"shard": "s0", "line": 4})]
    frame = quarantine_frame(rejected, REASONS, SHARD_SCHEMA)
    assert list(frame.schema) == ["record_id", "reason", "detail", "excerpt", "shard", "line"]
    assert frame.row(0) == ("d1", "too_short", "3 characters", "abc", "s0", 4)
    assert list(quarantine_frame(rejected[:0]).schema) == list(QUARANTINE_SCHEMA)


def test_an_unknown_reason_code_or_a_lost_row_raises() -> None:
    with pytest.raises(ValueError, match=r"\['vibes'\] are not in the step's vocabulary"):
        quarantine_frame([Rejected("d1", "vibes", "?")], REASONS)
    with pytest.raises(AssertionError, match="3 in, 1 kept, 1 quarantined"):
        split([{"doc_id": "d0"}], {"doc_id": pl.String}, [Rejected("d1", "duplicate", "of d0")], 3, REASONS)


def test_split_counts_rows_and_reasons_for_metadata() -> None:
    rejected = [Rejected("d1", "duplicate", "of d0"), Rejected("d2", "duplicate", "of d0")]
    result = split([{"doc_id": "d0"}], {"doc_id": pl.String}, rejected, 3, REASONS)
    assert result.accounted()
    assert result.metadata() == {"rows_in": 3, "rows_kept": 1, "rows_quarantined": 2, "quarantined_duplicate": 2}


def test_the_check_spelling_of_rows_accounted() -> None:
    assert accounting(5, 3, 2) == ({ROWS_ACCOUNTED: True}, {"rows_in": 5, "rows_kept": 3, "rows_quarantined": 2})
    assert accounting(-1, 3, 2)[0] == {ROWS_ACCOUNTED: False}  # no rows_in recorded never accounts


def test_the_quarantine_suite_refuses_unknown_reasons_missing_columns_and_empty_details() -> None:
    quality = QualityResource()
    rows = [Rejected("d1", "too_short", "3 characters", "abc", {"shard": "s0", "line": 4})]
    good = quarantine_frame(rows, REASONS, SHARD_SCHEMA)
    suite = quarantine_suite(REASONS, ["shard", "line"])
    assert quality.validate(good, "q", suite).success
    assert not quality.validate(good.with_columns(reason=pl.lit("vibes")), "q", suite).success
    assert not quality.validate(good.drop("line"), "q", suite).success
    assert not quality.validate(good.with_columns(detail=pl.lit(None, pl.String)), "q", suite).success
