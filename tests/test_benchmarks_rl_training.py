"""The RL benchmark at a tiny size: the toy part runs both arms and reports per-step curves; specs per part."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.rl_training import _parse_args, measure_toy, worker_specs

pytestmark = pytest.mark.slow


def test_toy_part_reports_both_arms_per_step(tmp_path: Path) -> None:
    record = measure_toy({"part": "toy", "steps": 2, "workdir": str(tmp_path), "threads": 1})
    assert set(record["runs"]) == {"filtered", "unfiltered"}
    for name, run in record["runs"].items():
        assert len(run["reward_mean"]) == len(run["zero_variance_share"]) == 2
        assert all(0.0 <= share <= 1.0 for share in run["zero_variance_share"])
        if name == "unfiltered":
            assert run["dropped_groups"] == [0.0, 0.0]
    assert record["peak_rss_mib"] > 0


def test_worker_specs_follow_the_parts_asked_for(tmp_path: Path) -> None:
    specs = worker_specs(_parse_args(["--parts", "tool", "--grpo-steps", "5"]), tmp_path)
    assert [spec["part"] for spec in specs] == ["tool"] and specs[0]["grpo_steps"] == 5
