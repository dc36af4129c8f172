"""The quality resource runs real Great Expectations suites and turns them into blocking checks."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from ops.common import expectations as ex
from resources.quality import QualityReport, QualityResource

SUITE = [
    *ex.columns_exist(["doc_id", "text", "label", "score"]),
    ex.not_null("doc_id"),
    ex.unique("doc_id"),
    ex.not_null("text"),
    ex.in_set("label", ["keep", "drop"]),
    ex.length_between("text", 1, 20),
    ex.between("score", 0.0, 1.0),
    ex.row_count_between(1, 100),
]


@pytest.fixture(scope="module")
def quality() -> QualityResource:
    return QualityResource()


def good_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "doc_id": ["a", "b", "c", "d"],
            "text": ["short", "a bit longer", "x", "twenty chars exactly"],
            "label": ["keep", "drop", "keep", "keep"],
            "score": [0.0, 0.5, 0.9, 1.0],
            "embedding": [[0.1, 0.2]] * 4,
        }
    )


def bad_frame() -> pl.DataFrame:
    return good_frame().with_columns(
        pl.Series("text", ["short", None, "x", "this text is far too long"]),
        pl.Series("label", ["keep", "drop", "maybe|not", "keep"]),
    )


def test_constructors_are_plain_specs() -> None:
    assert ex.not_null("a") == ex.ExpectationSpec("expect_column_values_to_not_be_null", {"column": "a"})
    assert ex.not_null("a", mostly=0.9).kwargs == {"column": "a", "mostly": 0.9}
    assert ex.in_set("a", ("x", "y")).kwargs["value_set"] == ["x", "y"]
    assert [spec.kwargs["column"] for spec in ex.columns_exist(["a", "b"])] == ["a", "b"]
    assert ex.between("a", 0, None).arguments == {"min_value": 0, "max_value": None}
    assert ex.row_count_between(1).columns == ()
    with pytest.raises(ValueError, match="not_null"):
        ex.ExpectationSpec("not_null", {"column": "a"})


def test_passing_frame_passes_with_ge_statistics(quality: QualityResource) -> None:
    report = quality.validate(good_frame(), "docs", SUITE)

    assert report.success
    assert (report.evaluated, report.successful, report.unsuccessful) == (len(SUITE), len(SUITE), 0)
    assert report.success_percent == 100.0
    assert report.rows == 4
    assert [outcome.type for outcome in report.results] == [spec.type for spec in SUITE]
    row_count = report.results[-1]
    assert row_count.observed_value == 4

    check = report.to_check_result(metadata={"rows_in": 4})
    assert check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["evaluated_expectations"] == dg.MetadataValue.int(len(SUITE))
    assert check.metadata["success_percent"] == dg.MetadataValue.float(100.0)
    assert check.metadata["failed_expectations"] == dg.MetadataValue.json([])
    assert check.metadata["rows_in"] == dg.MetadataValue.int(4)


def test_failing_frame_names_the_failed_expectations(quality: QualityResource) -> None:
    report = quality.validate(bad_frame(), "docs", SUITE)

    assert not report.success
    assert (report.evaluated, report.successful, report.unsuccessful) == (len(SUITE), len(SUITE) - 3, 3)
    failed = {outcome.label: outcome for outcome in report.failed}
    assert set(failed) == {
        "expect_column_values_to_not_be_null(text)",
        "expect_column_values_to_be_in_set(label)",
        "expect_column_value_lengths_to_be_between(text)",
    }
    assert failed["expect_column_values_to_not_be_null(text)"].unexpected_count == 1
    assert failed["expect_column_values_to_be_in_set(label)"].unexpected_values == ("maybe|not",)
    assert failed["expect_column_value_lengths_to_be_between(text)"].unexpected_values == ("this text is far too long",)

    check = report.to_check_result()
    assert not check.passed
    assert check.metadata["failed_expectations"] == dg.MetadataValue.json(list(failed))
    table = check.metadata["expectations"].value
    assert table.count("| FAIL |") == 3
    assert "maybe\\|not" in table  # a pipe in a value stays inside its cell
    assert "expect_column_values_to_be_in_set(label)" in (check.description or "")


def test_failed_invariant_fails_the_check_even_when_ge_passes(quality: QualityResource) -> None:
    report = quality.validate(good_frame(), "docs", SUITE)
    invariants = {"rows_in == rows_kept + rows_quarantined": False, "no duplicate ids": True}

    check = report.to_check_result(extra=invariants)

    assert report.success
    assert not check.passed
    assert check.metadata["failed_invariants"] == dg.MetadataValue.json(["rows_in == rows_kept + rows_quarantined"])
    assert report.to_check_result(extra={"no duplicate ids": True}).passed


def test_report_metadata_keys_cannot_be_shadowed(quality: QualityResource) -> None:
    report = quality.validate(good_frame(), "docs", [ex.not_null("doc_id")])
    with pytest.raises(ValueError, match="suite"):
        report.to_check_result(metadata={"suite": "mine"})


def test_unknown_expectation_type_is_named(quality: QualityResource) -> None:
    spec = ex.ExpectationSpec("expect_column_values_to_be_purple", {"column": "label"})
    with pytest.raises(ValueError, match=r"expect_column_values_to_be_purple.*docs"):
        quality.validate(good_frame(), "docs", [spec])


def test_invalid_arguments_are_named(quality: QualityResource) -> None:
    spec = ex.ExpectationSpec("expect_column_values_to_be_between", {"column": "score"})
    with pytest.raises(ValueError, match="invalid arguments for expect_column_values_to_be_between"):
        quality.validate(good_frame(), "docs", [spec])


def test_empty_suite_is_rejected(quality: QualityResource) -> None:
    with pytest.raises(ValueError, match="no expectations"):
        quality.validate(good_frame(), "docs", [])


def test_empty_frame_with_schema(quality: QualityResource) -> None:
    report = quality.validate(good_frame().clear(), "docs", SUITE)

    assert report.rows == 0
    assert [outcome.label for outcome in report.failed] == ["expect_table_row_count_to_be_between"]
    assert report.results[-1].observed_value == 0


def test_frame_without_columns_reports_missing_columns(quality: QualityResource) -> None:
    report = quality.validate(pl.DataFrame(), "docs", [*ex.columns_exist(["doc_id"]), ex.not_null("doc_id")])

    assert not report.success
    assert report.unsuccessful == 2
    missing = report.results[1]
    assert not missing.success
    assert missing.error is not None and "doc_id" in missing.error


def test_row_count_alone_and_schema_match(quality: QualityResource) -> None:
    assert quality.validate(good_frame(), "rows", [ex.row_count_between(4, 4)]).results[0].observed_value == 4

    columns = ["doc_id", "text", "label", "score"]
    assert not quality.validate(good_frame(), "schema", [ex.columns_match(columns)]).success
    assert quality.validate(good_frame(), "schema", [ex.columns_match(columns, exact=False)]).success
    assert quality.validate(good_frame(), "schema", [ex.columns_match([*columns, "embedding"])]).success


def test_context_is_reused_by_a_built_resource() -> None:
    with dg.build_resources({"quality": QualityResource(unexpected_sample_size=1)}) as resources:
        first = resources.quality.validate(bad_frame(), "docs", SUITE)
        context = resources.quality._context
        resources.quality.validate(good_frame(), "docs", SUITE)
        assert context is not None and resources.quality._context is context
        assert context.data_sources.all() == {}  # each validation removes its datasource
    too_long = next(o for o in first.failed if o.type == "expect_column_value_lengths_to_be_between")
    assert len(too_long.unexpected_values) == 1


def test_blocking_asset_check_in_a_run() -> None:
    @dg.asset
    def docs() -> pl.DataFrame:
        return bad_frame()

    @dg.asset_check(asset=docs, blocking=True)
    def docs_quality(docs: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
        report: QualityReport = quality.validate(docs, "docs", SUITE)
        return report.to_check_result(extra={"rows_in == rows_out": docs.height == 4})

    result = dg.materialize(
        [docs, docs_quality],
        resources={"quality": QualityResource(), "io_manager": dg.mem_io_manager},
        raise_on_error=False,
    )

    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["unsuccessful_expectations"] == dg.MetadataValue.int(3)
