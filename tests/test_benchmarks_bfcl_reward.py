"""Smoke test of `benchmarks.bfcl_reward` at a tiny size: records have their fields and add up (no timing)."""

from __future__ import annotations

import pytest

from benchmarks.bfcl_reward import _parse_args, measure_differential, measure_throughput, multi_turn_variants
from ops.tooluse.bfcl_reference import load_reference


@pytest.fixture(scope="module")
def reference():
    found = load_reference()
    if found is None:
        pytest.skip("bfcl-eval is not installed (make install adds it)")
    return found


def test_differential_record_at_a_tiny_size(reference) -> None:
    record = measure_differential(reference, stride=97)
    assert record["probes"] > 300 and record["undocumented"] == 0
    assert sum(record["strict_documented_by_category"].values()) == sum(
        record["strict_documented_by_deviation"].values()
    )


def test_throughput_record_has_both_ratios(reference) -> None:
    record = measure_throughput(reference, rounds=1, stride=200)
    assert record["outputs"] > 50
    assert record["ratio_strict_vs_bfcl"] > 0 and record["ratio_bfcl_exact_vs_bfcl"] > 0


def test_multi_turn_variants_keep_the_turn_count() -> None:
    pytest.importorskip("bfcl_eval")
    from benchmarks.bfcl_reward import BFCL_DIR
    from ops.tooluse.multi_turn import load_multi_turn

    task = load_multi_turn(BFCL_DIR)[0]
    variants = multi_turn_variants(task)
    assert [name for name, _ in variants] == ["truth", "drop_last_call", "extra_unknown_call"]
    assert all(len(steps) == len(task.ground_truth) for _, steps in variants)


def test_defaults_run_every_part() -> None:
    args = _parse_args([])
    assert args.parts == ["differential", "throughput", "multi_turn", "policy"] and args.rounds == 3
