"""A tiny-size run of the upcycling benchmark: every record present and the summary consistent with it."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.moe_upcycling import main


def test_benchmark_smoke(tmp_path: Path):
    out = tmp_path / "moe.json"
    records = main([
        "--seeds", "0", "1", "--strategies", "uniform", "greedy-fisher", "--base-tokens", "256", "--cpt-tokens", "128",
        "--layers", "1", "--hidden", "16", "--seq", "32", "--batch", "4", "--eval-every", "2", "--eval-windows", "2",
        "--out", str(out),
    ])  # fmt: skip
    assert out.read_text() == json.dumps(records, indent=1)  # NaN-safe: compare as text
    strategies = [r for r in records if r["record"] == "strategy"]
    assert {(r["seed"], r["strategy"]) for r in strategies} == {
        (s, k) for s in (0, 1) for k in ("uniform", "greedy-fisher")
    }
    assert all(r["top1_exact_max_abs_diff"] <= 1e-4 for r in strategies)
    summary = {r["strategy"]: r for r in records if r["record"] == "summary"}
    fisher = [r["gap_closure"] for r in strategies if r["strategy"] == "greedy-fisher"]
    assert summary["greedy-fisher"]["gap_closure_values"] == fisher
    # the mean is over the seeds where gap closure is defined (NaN where the scratch model lost), NaN if none
    defined = [value for value in fisher if not math.isnan(value)]
    assert summary["greedy-fisher"]["seeds_defined"] == len(defined)
    mean = summary["greedy-fisher"]["gap_closure_mean"]
    if defined:
        assert math.isclose(mean, sum(defined) / len(defined), abs_tol=1e-4)
    else:
        assert math.isnan(mean)
    assert summary["all"]["peak_rss_mib"] > 0
