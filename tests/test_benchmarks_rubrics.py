"""The rubric grading benchmark's bookkeeping: configs, item order, shared prefixes, counts, the summary.

No timing here: the figures come from `python -m benchmarks.rubric_grading`.
"""

from __future__ import annotations

import polars as pl
import pytest

from benchmarks.rubric_grading import (
    CountingClient,
    judge_prompt_text,
    ordered,
    parse_config,
    run_record,
    shared_prefix,
    statuses_agree,
    summarize,
)
from ops.rubrics.criteria import Criterion
from ops.rubrics.grading import GradingItem, grade
from tests.fakes import FakeJudge


def _items() -> list[GradingItem]:
    """Two responses with three criteria each, listed interleaved (r0, r1, r0, r1, ...)."""
    items = []
    for index in range(3):
        for response in ("r0", "r1"):
            criterion = Criterion(f"{response}-c{index}", f"m-{response}", 0, f"Criterion number {index}", 1.0)
            conversation = ({"role": "user", "content": f"Question {response}"}, {"role": "assistant", "content": "A"})
            items.append(GradingItem(response, "model", f"m-{response}", 0, conversation, criterion))
    return items


def test_parse_config_accepts_order_and_positive_batch_only() -> None:
    assert parse_config("grouped:16") == ("grouped", 16)
    assert parse_config("shuffled:1") == ("shuffled", 1)
    for bad in ("grouped", "grouped:0", "random:4", "shuffled:x"):
        with pytest.raises(ValueError, match="order"):
            parse_config(bad)


def test_grouped_order_keeps_each_response_together_and_shuffled_is_a_fixed_permutation() -> None:
    items = _items()
    grouped = ordered(items, "grouped")
    assert [i.criterion.criterion_id for i in grouped] == ["r0-c0", "r0-c1", "r0-c2", "r1-c0", "r1-c1", "r1-c2"]
    shuffled = ordered(items, "shuffled", seed=3)
    assert sorted(i.criterion.criterion_id for i in shuffled) == sorted(i.criterion.criterion_id for i in items)
    assert shuffled == ordered(items, "shuffled", seed=3) and shuffled != grouped
    with pytest.raises(ValueError, match="unknown order"):
        ordered(items, "sorted")


def test_shared_prefix_counts_characters_equal_to_the_previous_prompt_start() -> None:
    # "abcd" shares nothing (first), "abxy" shares "ab" with it, "abxz" shares "abx": 5 of 12 characters
    assert shared_prefix(["abcd", "abxy", "abxz"]) == pytest.approx(5 / 12)
    assert shared_prefix([]) == 0.0 and shared_prefix(["same", "same"]) == pytest.approx(4 / 8)
    # grouped judge prompts share the conversation, so more of each prompt than in an interleaved order
    items = _items()
    grouped = shared_prefix([judge_prompt_text(i) for i in ordered(items, "grouped")])
    assert grouped > shared_prefix([judge_prompt_text(i) for i in items]) > 0


def test_counting_client_sees_one_chat_call_per_batch_and_the_run_record_sums_the_cost() -> None:
    items = _items()
    for batch_size, calls in ((1, 6), (4, 2), (64, 1)):
        counter = CountingClient(FakeJudge(prompt_tokens=100, completion_tokens=10, latency_s=0.5))
        grades = grade(counter, items, batch_size=batch_size)
        assert (counter.chat_calls, counter.requests) == (calls, 6)
    record = run_record("grouped:64", grades, counter, wall_s=4.0, prefix=0.25)
    assert (record["responses"], record["judge_calls"], record["client_chat_calls"]) == (2, 6, 1)
    assert record["tokens_per_response"] == (6 * 110) / 2
    assert record["seconds_per_response"] == pytest.approx(6 * 0.5 / 2)
    assert record["wall_s_per_response"] == 2.0 and record["statuses"] == {"met": 6}


def _run(config: str, seconds: float) -> dict:
    order, batch = parse_config(config)
    return {
        "config": config,
        "order": order,
        "batch_size": batch,
        "responses": 2,
        "criteria_judged": 6,
        "calls_per_response": 3.0,
        "tokens_per_response": 330.0,
        "seconds_per_response": seconds,
    }


def test_summary_ratios_against_the_first_run_and_shuffled_against_grouped_at_the_same_batch() -> None:
    runs = [_run("grouped:1", 2.0), _run("grouped:64", 2.2), _run("shuffled:64", 3.3)]
    summary = summarize(runs, {"grouped:1": 1.0})
    assert summary["seconds_ratio_vs_baseline"] == {
        "grouped:64_over_grouped:1": 1.1,
        "shuffled:64_over_grouped:1": 1.65,
    }
    assert summary["shuffled_over_grouped_seconds"] == {"batch_64": 1.5}
    assert summary["seconds_per_response"]["shuffled:64"] == 3.3


def test_statuses_agree_joins_on_response_and_criterion() -> None:
    keys = {"response_id": ["r0", "r0", "r1"], "criterion_id": ["a", "b", "a"]}
    first = pl.DataFrame({**keys, "status": ["met", "not_met", "met"]})
    other = pl.DataFrame({**keys, "status": ["met", "met", "met"]}).reverse()
    assert statuses_agree(first, other) == pytest.approx(2 / 3)
    assert statuses_agree(first, first.head(0)) == 0.0
