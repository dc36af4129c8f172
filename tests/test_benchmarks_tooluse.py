"""The tool-use benchmark's bookkeeping: reward cases and agreement, TRL oracles, similar tools, synthesis summary.

No timing here: the figures come from `python -m benchmarks.tooluse`.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmarks.tooluse import (
    _parse_args,
    agreement,
    cosine_top_k,
    reward_cases,
    similar_tools_function,
    summarize,
    synthesis_summary,
    trl_oracle,
    worker_specs,
)
from ops.tooluse.bfcl import KNOWN_ORACLE_ISSUES, BfclExample, load_single_turn
from ops.tooluse.perturbations import RewardCheck
from ops.tooluse.reward import ToolCall, score_example, tool_reward
from ops.tooluse.synthesis import STATS_SCHEMA

BFCL_DIR = Path(__file__).resolve().parent.parent / "samples" / "bfcl_v3"


@cache
def _examples() -> tuple[BfclExample, ...]:
    return tuple(load_single_turn(BFCL_DIR))


def test_reward_cases_cover_every_example_but_the_known_oracle_issues() -> None:
    cases, skipped = reward_cases(_examples())
    with_checks = {example.id for example, _ in cases}
    assert len(with_checks) == 1240 - len(KNOWN_ORACLE_ISSUES)
    assert with_checks.isdisjoint(KNOWN_ORACLE_ISSUES)
    assert len(cases) == 22885  # the count the reward tests assert kind by kind
    assert 0 < len(skipped) < 20


def test_every_check_agrees_when_scored_as_text_by_both_entry_points() -> None:
    """What the benchmark times: each check's rendered output, through score_example and tool_reward."""
    cases, _ = reward_cases(_examples())
    cases = cases[::7]  # every 7th check keeps the test fast and still spans every kind
    checks = [check for _, check in cases]
    assert set(Counter(check.kind for check in checks)) >= {"oracle_json", "wrong_type", "abstention", "no_call"}
    results = [score_example(check.output, example) for example, check in cases]
    report = agreement(checks, [r.score for r in results], [r.outcome for r in results])
    assert (report["checks"], report["disagreements"]) == (len(cases), 0)
    scores = tool_reward([check.output for check in checks], [trl_oracle(example) for example, _ in cases])
    assert agreement(checks, scores)["disagreements"] == 0


def test_agreement_counts_score_and_outcome_mismatches() -> None:
    checks = [
        RewardCheck("a", "oracle_json", 1.0, "match", text="f()"),
        RewardCheck("b", "wrong_type", 0.0, "wrong_type", calls=(ToolCall("f", {"x": 1}),)),
        RewardCheck("c", "wrong_type", 0.0, "wrong_type", text="f(x=1)"),
    ]
    report = agreement(checks, [1.0, 0.0, 1.0], ["match", "value_not_accepted", "match"])
    assert report["checks"] == 3 and report["disagreements"] == 2
    assert report["checks_by_kind"] == {"oracle_json": 1, "wrong_type": 2}
    assert report["first_disagreements"][0] == "b wrong_type: got 0.0 value_not_accepted, want 0.0 wrong_type"
    assert agreement(checks, [1.0, 0.0, 0.0])["disagreements"] == 0  # scores only: outcomes not compared
    assert checks[1].output == '[{"name": "f", "arguments": {"x": 1}}]'


def test_trl_oracle_round_trips_through_tool_reward() -> None:
    example = next(e for e in _examples() if e.category == "parallel_multiple" and e.id not in KNOWN_ORACLE_ISSUES)
    oracle = trl_oracle(example)
    assert len(oracle["ground_truth"]) == len(example.expected) > 1
    assert [f["name"] for f in oracle["functions"]] == [f.name for f in example.functions]
    right = next(c for _, c in reward_cases([example])[0] if c.kind == "oracle_json").output
    assert tool_reward([right, "[]"], [oracle, oracle]) == [1.0, 0.0]
    irrelevant = next(e for e in _examples() if e.expects_no_call)
    assert trl_oracle(irrelevant)["ground_truth"] == []


def test_cosine_top_k_excludes_self_and_orders_by_similarity() -> None:
    vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [0.6, 0.8]])
    assert cosine_top_k(vectors, 2).tolist() == [[1, 3], [3, 0], [3, 1], [1, 2]]
    assert cosine_top_k(vectors, 10).shape == (4, 3)


def test_similar_tools_looks_specs_up_by_canonical_json_and_counts_misses() -> None:
    pool = [{"name": n, "description": n, "parameters": {"type": "dict", "properties": {}}} for n in "abc"]
    similar, lookups = similar_tools_function(pool, np.array([[2, 1], [0, 2], [1, 0]]))
    reordered = {"parameters": {"properties": {}, "type": "dict"}, "description": "a", "name": "a"}
    assert [s["name"] for s in similar(reordered)] == ["c", "b"]
    assert similar({"name": "zz"}) == []
    assert lookups == {"found": 1, "missed": 1}


def _stats(rows: list[tuple[int, str, int, int]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=STATS_SCHEMA, orient="row")


def test_synthesis_summary_rates_per_round_and_level() -> None:
    stats = _stats(
        [
            (0, "format", 4, 2),
            (0, "execution", 2, 1),
            (0, "judge", 1, 1),
            (1, "format", 3, 1),
            (1, "execution", 1, 0),
            (1, "judge", 0, 0),
        ]
    )
    summary = synthesis_summary(stats, accepted=1, n_seeds=4, wall_s=30.0)
    assert summary["by_level"]["format"] == {"entered": 7, "passed": 3, "pass_rate": pytest.approx(3 / 7, abs=1e-3)}
    assert summary["by_level"]["judge"] == {"entered": 1, "passed": 1, "pass_rate": 1.0}
    assert summary["by_round_and_level"][4]["pass_rate"] == 0.0
    assert summary["by_round_and_level"][5]["pass_rate"] is None
    assert summary["accepted_by_round"] == {"0": 1, "1": 0}
    assert (summary["acceptance_rate"], summary["seconds_per_seed"]) == (0.25, 7.5)
    assert synthesis_summary(_stats([]), 0, 0, 1.0)["acceptance_rate"] == 0.0


def test_worker_specs_follow_the_parts_asked_for_and_summary_takes_what_ran() -> None:
    args = _parse_args(["--parts", "synthesis", "reward", "--seeds", "3"])
    specs = worker_specs(args)
    assert [s["part"] for s in specs] == ["reward", "synthesis"]
    assert specs[1]["seeds"] == 3 and specs[1]["rounds"] == 3 and specs[1]["judge_max_tokens"] == 256
    reward = {
        "record": "reward_run",
        "evals_per_s": {"score_example": 100, "tool_reward": 90},
        "agreement_score_example": {"checks": 10, "disagreements": 0},
        "agreement_tool_reward": {"checks": 10, "disagreements": 1},
    }
    summary = summarize([reward])
    assert summary["reward_disagreements"] == {"score_example": 0, "tool_reward": 1}
    assert "augment_rows_per_s" not in summary and "synthesis_note" not in summary
