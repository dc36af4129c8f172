"""`benchmarks.sample_run` without the ten-minute runs: its environment, its parsing of the sample's report, and
the ratio against the baseline of the same run."""

from pathlib import Path

import pytest

from benchmarks.sample_run import run_outcomes, sample_environment, summary


def test_each_variant_gets_a_fresh_home_and_its_worker_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSAY_SAMPLE_WORKERS", "7")
    monkeypatch.setenv("ASSAY_HOME", "/somewhere/else")
    env = sample_environment(tmp_path / "home", workers=2)
    assert env["ASSAY_SAMPLE_WORKERS"] == "2" and env["ASSAY_HOME"] == str(tmp_path / "home")
    assert (tmp_path / "home" / "dagster" / "dagster.yaml").is_file()


def test_summary_compares_against_the_baseline_of_the_same_run() -> None:
    rows = [
        {"workers": 1, "wall_s": 800.0, "returncode": 0, "runs": 37, "succeeded": 37},
        {"workers": 2, "wall_s": 600.0, "returncode": 0, "runs": 37, "succeeded": 36},
    ]
    out = summary(rows, workers=2)
    assert out["ratio_wall"] == 0.75 and out["wall_s_2_workers"] == 600.0
    assert out["all_runs_succeeded"] is False


def test_it_reads_the_lines_the_sample_prints(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_sample_schedule import (
        test_schedule_runs_side_by_side_within_the_limit_and_skips_what_reads_a_failure,
    )

    test_schedule_runs_side_by_side_within_the_limit_and_skips_what_reads_a_failure()
    assert sorted(run_outcomes(capsys.readouterr().out)) == ["FAILED"] + ["succeeded"] * 4
