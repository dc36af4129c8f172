"""Smoke test of `benchmarks.step_launch` at a tiny size: the load part's records and the summary's ratios."""

from pathlib import Path

import pytest

from benchmarks.step_launch import FORMERLY_AT_LOAD, _parse_args, load_command, main, summary


def test_the_baseline_imports_what_the_definitions_no_longer_do() -> None:
    assert "import torch; " in load_command(baseline=True)[-1]
    assert "torch" not in load_command(baseline=False)[-1]
    assert "torch" in FORMERLY_AT_LOAD and _parse_args(["--rounds", "1"]).rounds == 1


def test_summary_ratios_compare_against_the_same_run() -> None:
    rows = [
        {"record": "load", "variant": "definitions", "cpu_s": 2.0, "wall_s": 3.0, "max_rss_mb": 100.0},
        {"record": "load", "variant": "definitions_cold_digest_cache", "cpu_s": 4.0, "wall_s": 5.0}
        | {"max_rss_mb": 110.0},
        {"record": "load", "variant": "definitions_with_former_imports", "cpu_s": 8.0, "wall_s": 6.0}
        | {"max_rss_mb": 400.0},
        {"record": "launch", "executor": "multiprocess", "cpu_s": 9.0, "wall_s": 12.0},
        {"record": "launch", "executor": "in_process", "cpu_s": 3.0, "wall_s": 4.0},
    ]
    out = summary(rows)
    assert out["load_cpu_s_ratio"] == 0.25 and out["load_max_rss_mb_ratio"] == 0.25
    assert out["load_cpu_s_ratio_over_cold_digest_cache"] == 0.5
    assert out["launch_wall_s_ratio_in_process_over_multiprocess"] == round(4.0 / 12.0, 4)


@pytest.mark.slow  # two fresh interpreters, one of them importing torch and transformers
def test_load_part_runs_once(tmp_path: Path) -> None:
    out = tmp_path / "step_launch.json"
    assert main(["--parts", "load", "--rounds", "1", "--out", str(out)]) == 0
    text = out.read_text()
    assert '"variant": "definitions"' in text and '"load_cpu_s_ratio"' in text
    assert '"load_cpu_s_ratio_over_cold_digest_cache"' in text
