"""The trainer's small parts without a model: group filters, the safe reward wrapper, RL row checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.rl.config import GRPOSettings, PolicyConfig, importance_sampling_level
from training.rl.data import EMPTY_PROMPT, MALFORMED_PROMPT, MISSING_COLUMN, check_rows, require_valid
from training.rl.group_filter import LearnabilityFilter, ZeroVarianceFilter, zero_variance_share
from training.rl.rewards import SafeReward
from training.rl.trainer import step_metrics

POLICY = PolicyConfig(base_model="unused")


def test_zero_variance_filter_drops_groups_with_equal_rewards() -> None:
    rewards = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5000001]])
    assert ZeroVarianceFilter().keep(rewards).tolist() == [False, True, False, False]
    assert ZeroVarianceFilter(tolerance=0.0).keep(rewards).tolist() == [False, True, False, True]
    assert zero_variance_share(rewards) == 0.75


def test_learnability_filter_keeps_varied_groups_in_the_band() -> None:
    rewards = np.array([[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    assert LearnabilityFilter(low=0.3, high=0.7).keep(rewards).tolist() == [False, False, True, False]
    assert LearnabilityFilter().keep(rewards).tolist() == [True, True, True, False]


@pytest.mark.parametrize("shape", [(3,), (2, 1), (1, 2, 2)])
def test_filters_refuse_reward_arrays_that_are_not_groups(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="groups, generations"):
        ZeroVarianceFilter().keep(np.zeros(shape))


def _flaky(completions: list[str], **kwargs: object) -> list[float | None]:
    """Raises on "boom" anywhere in the batch; returns None for "none", NaN for "nan", else 1.0."""
    if "boom" in completions:
        raise RuntimeError("reward backend down")
    return [None if c == "none" else math.nan if c == "nan" else 1.0 for c in completions]


def test_safe_reward_scores_failures_zero_and_counts_them() -> None:
    reward = SafeReward(_flaky)
    scores = reward(prompts=["p"] * 5, completions=["ok", "boom", "none", "nan", "ok"], oracle=list("abcde"))
    assert scores == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert (reward.stats.scored, reward.stats.raised, reward.stats.invalid) == (2, 1, 2)
    assert reward.stats.failed == 3
    assert any("reward backend down" in message for message in reward.stats.messages)
    assert reward.__name__ == "_flaky"


def test_safe_reward_passes_a_good_batch_through_unchanged() -> None:
    reward = SafeReward(lambda completions, **kw: [0.25 * len(c) for c in completions], name="length")
    assert reward(prompts=["p", "q"], completions=["a", "bb"]) == [0.25, 0.5]
    assert reward.stats.failed == 0 and reward.__name__ == "length"


def test_safe_reward_refuses_a_wrong_number_of_scores() -> None:
    reward = SafeReward(lambda completions, **kw: [1.0])
    with pytest.raises(ValueError, match="returned 1 scores for 2 completions"):
        reward(prompts=["p", "q"], completions=["a", "b"])


def test_malformed_rl_rows_are_named_with_a_reason() -> None:
    rows = [
        {"id": "good", "prompt": [{"role": "user", "content": "hi"}], "oracle": "{}"},
        {"id": "empty", "prompt": "  ", "oracle": "{}"},
        {"id": "chat", "prompt": [{"role": "user"}], "oracle": "{}"},
        {"id": "nocol", "prompt": "hello"},
        "not a row",
    ]
    kept, rejected = check_rows(rows, ["oracle"])
    assert [row["id"] for row in kept] == ["good"]
    assert [(r.record_id, r.reason) for r in rejected] == [
        ("empty", EMPTY_PROMPT),
        ("chat", MALFORMED_PROMPT),
        ("nocol", MISSING_COLUMN),
        ("row 4", MALFORMED_PROMPT),
    ]
    with pytest.raises(ValueError, match="RL row 'empty': empty_prompt"):
        require_valid(rows, ["oracle"])
    with pytest.raises(ValueError, match="dataset is empty"):
        require_valid([])


def test_gspo_is_sequence_level_importance_sampling() -> None:
    assert importance_sampling_level(GRPOSettings(POLICY, mode="gspo")) == "sequence"
    assert importance_sampling_level(GRPOSettings(POLICY)) == "token"
    with pytest.raises(ValueError, match="mode"):
        GRPOSettings(POLICY, mode="ppo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_generations"):
        GRPOSettings(POLICY, num_generations=1)


def test_step_metrics_rename_and_derive_tokens_per_second() -> None:
    history = [
        {
            "step": 1,
            "loss": 0.1,
            "reward": 0.5,
            "completions/mean_length": 10.0,
            "step_time": 2.0,
            "group_filter/dropped_groups": 1.0,
        },
        {"step": 1, "train_runtime": 3.0, "loss": 0.1},
    ]
    (row,) = step_metrics(history, completions_per_step=8)
    assert row["reward_mean"] == 0.5 and row["dropped_groups"] == 1.0
    assert row["tokens_per_second"] == pytest.approx(40.0)


def test_stored_adapter_problems_expect_the_records_own_steps() -> None:
    import json

    from training.rl.card import TRAINING_RECORD
    from training.rl.integrity import adapter_problems, stored_adapter_problems

    assert stored_adapter_problems({}) == adapter_problems({}) and "missing files" in stored_adapter_problems({})[0]
    record = {"config": {"max_steps": 3}, "steps": [{"step": 1.0, "loss": 0.1}]}
    files = {TRAINING_RECORD: json.dumps(record).encode()}
    assert stored_adapter_problems(files) == adapter_problems(files, expected_steps=3)
