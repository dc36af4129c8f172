"""The RL trainer on a tiny random Llama: reward goes up, the group filter drops flat groups, failing
rewards are counted, a NaN loss stops the run naming the step, and a killed run resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from ops.common.llm import ChatRequest
from tests.rl_toy import run, target_share, tiny_policy, toy_rows, toy_settings
from training.rl.card import CARD, TRAINING_RECORD, adapter_files
from training.rl.config import LoraSettings, SFTSettings
from training.rl.group_filter import ZeroVarianceFilter
from training.rl.policy import ADAPTER_WEIGHTS, PolicyClient, generate, load_policy
from training.rl.trainer import NonFiniteLossError, checkpoint_steps, train_grpo, train_sft

REPO_ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_grpo_raises_the_toy_reward(tmp_path: Path) -> None:
    result = run(tmp_path, steps=12)
    rewards = [row["reward_mean"] for row in result.steps]
    assert len(rewards) == 12
    assert _mean(rewards[-3:]) > _mean(rewards[:3]) + 0.3, rewards
    assert result.checkpoints == list(range(1, 13))
    assert (result.adapter_dir / ADAPTER_WEIGHTS).is_file()
    files = adapter_files(result, {"reward": "target_share"})
    record = json.loads(files[TRAINING_RECORD])
    assert [row["step"] for row in record["steps"]] == [float(s) for s in range(1, 13)]
    assert "reward: target_share" in files[CARD].decode()
    trained = load_policy(tiny_policy(tmp_path), files)
    assert len(generate(trained, ["write:"], max_new_tokens=4)) == 1


def _constant_for_say(completions: list[str], prompts: list[str], **kwargs: Any) -> list[float]:
    """The toy reward, except that every completion of the "say:" prompt scores 0.5 (a flat group)."""
    scores = target_share(completions)
    return [0.5 if prompt == "say:" else score for prompt, score in zip(prompts, scores, strict=True)]


def test_group_filter_drops_flat_groups_records_them_and_reweights_the_rest(tmp_path: Path) -> None:
    policy = tiny_policy(tmp_path)
    settings = toy_settings(policy, 2, learning_rate=1e-3)
    runs = {
        name: train_grpo(toy_rows(), [_constant_for_say], settings, tmp_path / name, group_filter=group_filter)
        for name, group_filter in (("filtered", ZeroVarianceFilter()), ("unfiltered", None))
    }
    for name, result in runs.items():
        for row in result.steps:
            assert row["zero_variance_share"] >= 0.25  # the "say:" group is always flat
            assert row["dropped_groups"] == (4 * row["zero_variance_share"] if name == "filtered" else 0.0)
    # Same first batch; the filtered step averages the policy loss over the 3 kept groups, not all 4.
    assert runs["filtered"].steps[0]["reward_mean"] == runs["unfiltered"].steps[0]["reward_mean"]
    weights = {name: load_file(str(r.adapter_dir / ADAPTER_WEIGHTS)) for name, r in runs.items()}
    assert any(not torch.equal(weights["filtered"][k], weights["unfiltered"][k]) for k in weights["filtered"])


def _raise_on_odd(completions: list[str], **kwargs: Any) -> list[float | None]:
    """Raises for a batch with any completion of odd length; None for empty ones."""
    if any(len(c) % 2 for c in completions):
        raise RuntimeError("odd")
    return [None if not c else 1.0 for c in completions]


def test_failing_rewards_score_zero_and_are_counted(tmp_path: Path) -> None:
    policy = tiny_policy(tmp_path)
    result = train_grpo(toy_rows(), [_raise_on_odd, target_share], toy_settings(policy, 2), tmp_path / "ckpt")
    failures = result.reward_failures["_raise_on_odd"]
    assert failures["raised"] + failures["invalid"] > 0
    assert failures["scored"] + failures["raised"] + failures["invalid"] == 2 * 16
    assert sum(row["reward_failures"] for row in result.steps) == failures["raised"] + failures["invalid"]
    assert result.reward_failures["target_share"] == {"scored": 32, "raised": 0, "invalid": 0}


class _PoisonAtStep(TrainerCallback):
    """From step `step` on, the training forward pass (with gradients) returns NaN logits: a numerical
    blow-up of the loss; generation (no gradients) is left alone."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.global_step + 1 == self.step:
            embeddings = model.get_input_embeddings()  # TRL's fused head never calls the output layer
            embeddings.register_forward_hook(
                lambda module, inputs, out: out * float("nan") if torch.is_grad_enabled() else out
            )


def test_nan_loss_stops_the_run_naming_the_step(tmp_path: Path) -> None:
    policy = tiny_policy(tmp_path)
    with pytest.raises(NonFiniteLossError, match="non-finite loss at step 3") as error:
        train_grpo(toy_rows(), [target_share], toy_settings(policy, 5), tmp_path / "ckpt", callbacks=[_PoisonAtStep(3)])
    assert error.value.step == 3
    assert error.value.last_checkpoint == tmp_path / "ckpt" / "checkpoint-2"
    weights = load_file(str(error.value.last_checkpoint / ADAPTER_WEIGHTS))
    assert all(torch.isfinite(tensor).all() for tensor in weights.values())
    assert load_policy(policy, error.value.last_checkpoint).model is not None


def test_killed_run_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    tiny_policy(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "tests.rl_toy", str(tmp_path), "4", "30"], cwd=REPO_ROOT, env=env)
    try:
        deadline = time.monotonic() + 240
        while not checkpoint_steps(tmp_path / "ckpt") and time.monotonic() < deadline:
            assert process.poll() is None, "training exited before its first checkpoint"
            time.sleep(0.5)
        assert checkpoint_steps(tmp_path / "ckpt") == [1]
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    result = run(tmp_path, steps=4)
    assert result.resumed_from_step == 1
    assert result.checkpoints == [1, 2, 3, 4]
    assert [row["step"] for row in result.steps] == [1.0, 2.0, 3.0, 4.0]


def test_a_folder_of_another_run_is_refused(tmp_path: Path) -> None:
    run(tmp_path, steps=1)
    policy = tiny_policy(tmp_path)
    with pytest.raises(ValueError, match="another run"):
        train_grpo(toy_rows(2), [target_share], toy_settings(policy, 1), tmp_path / "ckpt")


def test_sft_learns_a_completion_and_serves_it_as_a_client(tmp_path: Path) -> None:
    policy = tiny_policy(tmp_path)
    rows = [
        {"prompt": [{"role": "user", "content": p}], "completion": [{"role": "assistant", "content": "aaa"}]}
        for p in ("one", "two", "three", "four")
    ]
    settings = SFTSettings(
        policy, LoraSettings(r=8, alpha=32), max_steps=30, batch_size=4, learning_rate=2e-2, save_steps=10
    )
    result = train_sft(rows, settings, tmp_path / "sft")
    losses = [row["loss"] for row in result.steps]
    assert losses[-1] < losses[0] / 2, losses
    client = PolicyClient(load_policy(policy, result.adapter_dir), name="toy-sft")
    (answer,) = client.chat([ChatRequest(messages=({"role": "user", "content": "two"},), max_tokens=3)])
    assert answer.ok and answer.text == "aaa"


def test_requests_of_different_budgets_share_a_batch_and_each_is_cut_to_its_own(tmp_path: Path) -> None:
    policy = load_policy(tiny_policy(tmp_path))
    prompts = [[{"role": "user", "content": text}] for text in ("one", "two two", "three three three")]
    budgets = [9, 2, 5]
    alone = [generate(policy, prompts, max_new_tokens=budget)[i] for i, budget in enumerate(budgets)]
    assert generate(policy, prompts, budgets=budgets) == alone
    assert len({len(text) for text in alone}) > 1  # the budgets did cut (the random model never stops early)
    requests = [
        ChatRequest(tuple(p), max_tokens=b, request_id=f"r{i}")
        for i, (p, b) in enumerate(zip(prompts, budgets, strict=True))
    ]
    answers = PolicyClient(policy, name="toy").chat(requests)
    assert [a.request_id for a in answers] == ["r0", "r1", "r2"]
    assert [a.text for a in answers] == alone
    with pytest.raises(ValueError, match="2 budgets for 3 prompts"):
        generate(policy, prompts, budgets=[1, 2])


def test_rerun_of_a_finished_run_trains_nothing(tmp_path: Path) -> None:
    """3 prompts do not divide into steps of 2: a rerun of the finished run must not train a step past the end."""
    policy = tiny_policy(tmp_path)
    settings = toy_settings(policy, 3, prompts_per_step=2, num_generations=2)
    first = train_grpo(toy_rows(3), [target_share], settings, tmp_path / "ckpt")
    again = train_grpo(toy_rows(3), [target_share], settings, tmp_path / "ckpt")
    assert first.checkpoints == again.checkpoints == [1, 2, 3]
    assert again.resumed_from_step == 3
    assert [row["step"] for row in again.steps] == [row["step"] for row in first.steps] == [1.0, 2.0, 3.0]
    before, after = (load_file(str(r.adapter_dir / ADAPTER_WEIGHTS)) for r in (first, again))
    assert all(torch.equal(before[key], after[key]) for key in before)
