"""RESD's self-distillation on a tiny random Llama: the student moves toward the privileged-context teacher
(reverse KL on the student's own completions falls), teacher prompts are composed as TRL composes them and
are refused, not truncated, when they do not fit the window."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.rl_toy import tiny_policy
from training.rl.config import LoraSettings
from training.rl.policy import generate, load_policy
from training.rl.self_distillation import (
    SelfDistillationSettings,
    TeacherTooLong,
    check_teacher_fits,
    mean_reverse_kl,
    teacher_prompt,
    train_self_distillation,
)

CONTEXT = "Playbook: answer in lowercase letters only."
ROWS = [{"id": f"r{i}", "prompt": p, "privileged_context": CONTEXT} for i, p in enumerate(["write:", "say:", "go:"])]


def _settings(policy, steps: int) -> SelfDistillationSettings:
    lora = LoraSettings(r=8, alpha=32, target_modules=("q_proj", "v_proj", "o_proj", "down_proj"))
    return SelfDistillationSettings(
        policy, lora=lora, max_steps=steps, prompts_per_step=3, max_completion_length=12, learning_rate=5e-2
    )


def test_teacher_prompt_matches_trl_and_long_contexts_are_refused(tmp_path: Path):
    from trl.experimental.sdft.sdft_trainer import DemonstrationTeacherContextBuilder

    class _Args:
        teacher_prompt_template = "{prompt}\n\n{privileged_context}"

    builder = DemonstrationTeacherContextBuilder(type("T", (), {"args": _Args()})())
    chat = [{"role": "system", "content": "tools"}, {"role": "user", "content": "call it"}]
    assert teacher_prompt(chat, CONTEXT) == builder._compose_teacher_prompt(chat, CONTEXT)
    assert teacher_prompt("go:", CONTEXT) == builder._compose_teacher_prompt("go:", CONTEXT)
    policy = load_policy(tiny_policy(tmp_path))
    check_teacher_fits(ROWS, policy.tokenizer, window=4096, completion_tokens=12)
    long_row = [{"id": "long", "prompt": "go:", "privileged_context": "x" * 5000}]
    with pytest.raises(TeacherTooLong, match="row 'long'"):
        check_teacher_fits(long_row, policy.tokenizer, window=4096, completion_tokens=12)


@pytest.mark.slow
def test_distillation_moves_the_student_toward_the_teacher(tmp_path: Path):
    torch.set_num_threads(1)
    config = tiny_policy(tmp_path)
    base = load_policy(config)
    completions = generate(base, [row["prompt"] for row in ROWS], 12)
    before = mean_reverse_kl(base.model, base.tokenizer, ROWS, completions)
    result = train_self_distillation(ROWS, _settings(config, 6), tmp_path / "ckpt")
    assert [int(row["step"]) for row in result.steps] == list(range(1, 7))
    assert all(row["distillation_loss"] >= 0 for row in result.steps)
    student = load_policy(config, result.adapter_dir)
    after = mean_reverse_kl(student.model, student.tokenizer, ROWS, completions)
    assert before > 0.5
    assert after < 0.9 * before, (before, after)
    # The adapter is the student; with it disabled the model is the teacher again (KL as before).
    with student.model.disable_adapter():
        same = mean_reverse_kl(student.model, student.tokenizer, ROWS, completions)
    assert same == pytest.approx(before, rel=1e-4)
    # A rerun finds the finished checkpoints and trains nothing again.
    rerun = train_self_distillation(ROWS, _settings(config, 6), tmp_path / "ckpt")
    assert rerun.resumed_from_step == 6
