"""On-policy self-distillation (RESD, SDFT): the same model with privileged context teaches the student.

The student samples its own completion for a prompt; the teacher is the same base model (LoRA adapter
disabled) reading the prompt plus privileged context (a playbook and a reflection); the loss is the
token-level reverse KL(student || teacher) at every position of the student's sampled completion, trained
into a LoRA adapter. This wraps TRL's experimental `SDFTTrainer` (TRL >= 1.x, `trl.experimental.sdft`):
`distillation_mode="full_logits"` with `distillation_alpha=1.0` is the exact per-token reverse KL over the
vocabulary, `"sampled_token"` its single-sample estimate on the sampled token only.

Teacher prompts are never truncated: TRL cuts prompts from the left at `max_prompt_length`, so that limit is
switched off and every teacher prompt plus `max_completion_length` is checked against the model's window
before training (`TeacherTooLong` names the row). Checkpoints, resume after a kill and the NaN stop are the
shared trainer's (`training.rl.trainer`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from training.rl.config import LoraSettings, PolicyConfig
from training.rl.data import require_valid
from training.rl.policy import Chat, prompt_text
from training.rl.trainer import (
    TrainingResult,
    _adapter_hash,
    _finish,
    _log_callback,
    _policy_model,
    _prepare,
    _quiet,
    _StopOnNonFiniteLoss,
    _training_args_common,
)

CONTEXT_COLUMN = "privileged_context"
TEACHER_TEMPLATE = "{prompt}\n\n{privileged_context}"
DISTILLATION_MODES = ("full_logits", "sampled_token")


class TeacherTooLong(ValueError):
    """A teacher prompt (prompt + privileged context) plus the completion budget exceeds the model's window."""


@dataclass(frozen=True)
class SelfDistillationSettings:
    """One optimizer step = `prompts_per_step` prompts x `num_generations` student samples (RESD: one each)."""

    policy: PolicyConfig
    lora: LoraSettings = field(default_factory=LoraSettings)
    max_steps: int = 2
    prompts_per_step: int = 2
    num_generations: int = 1
    max_completion_length: int = 32
    learning_rate: float = 1e-4
    temperature: float = 1.0
    mode: Literal["full_logits", "sampled_token"] = "full_logits"
    save_steps: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in DISTILLATION_MODES:
            raise ValueError(f"mode must be one of {DISTILLATION_MODES}, got {self.mode!r}")


def teacher_prompt(prompt: str | Chat, privileged_context: str) -> str | Chat:
    """The teacher's prompt as TRL's `SDFTTrainer` builds it: the context after the text of a plain prompt, or
    after the last user message of a chat (earlier messages unchanged)."""
    if isinstance(prompt, str):
        return TEACHER_TEMPLATE.format(prompt=prompt, privileged_context=privileged_context)
    *earlier, last = [dict(message) for message in prompt]
    if last.get("role") != "user":
        raise ValueError("a chat prompt for self-distillation must end with a user message")
    content = TEACHER_TEMPLATE.format(prompt=last["content"], privileged_context=privileged_context)
    return [*earlier, {"role": "user", "content": content}]


def context_window(model: Any) -> int:
    """The model's maximum sequence length (positions)."""
    return int(model.config.get_text_config().max_position_embeddings)


def check_teacher_fits(rows: Sequence[Mapping[str, Any]], tokenizer: Any, window: int, completion_tokens: int) -> None:
    """Raise `TeacherTooLong` naming the first row whose teacher prompt + completion budget exceeds `window`."""
    for row in rows:
        text = prompt_text(tokenizer, teacher_prompt(row["prompt"], row[CONTEXT_COLUMN]))
        used = len(tokenizer(text, add_special_tokens=False)["input_ids"]) + completion_tokens
        if used > window:
            raise TeacherTooLong(
                f"row '{row.get('id', '?')}': teacher prompt + {completion_tokens} completion tokens = {used} tokens "
                f"> window {window}; shorten the privileged context upstream (it is never truncated here)"
            )


def teacher_budget(policy: PolicyConfig, completion_tokens: int) -> tuple[Callable[[str | Chat, str], int], int]:
    """`(count, budget)`: `count(prompt, context)` = tokens of the rendered teacher prompt, `budget` = the model's
    window minus `completion_tokens`. Loads only the tokenizer and the config, not the weights."""
    from transformers import AutoConfig

    from training.webdocs.generative_student import _pretrained_source, load_tokenizer

    tokenizer = load_tokenizer(policy.base_model, policy.gguf_file)
    source, extra = _pretrained_source(policy.base_model, policy.gguf_file)
    window = int(AutoConfig.from_pretrained(source, **extra).get_text_config().max_position_embeddings)

    def count(prompt: str | Chat, context: str) -> int:
        text = prompt_text(tokenizer, teacher_prompt(prompt, context))
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count, window - completion_tokens


def sdft_arguments(settings: SelfDistillationSettings, checkpoint_dir: Path) -> Any:
    """TRL's SDFTConfig: base-weights teacher, reverse KL (alpha 1), no prompt truncation."""
    from trl.experimental.sdft import SDFTConfig

    return SDFTConfig(
        **_training_args_common(settings, checkpoint_dir),  # type: ignore[arg-type]
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
        num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length,
        max_prompt_length=None,
        temperature=settings.temperature,
        distillation_mode=settings.mode,
        distillation_alpha=1.0,
        teacher_model_kind="base",
        teacher_prompt_template=TEACHER_TEMPLATE,
        shuffle_dataset=False,
        gradient_checkpointing=settings.policy.device != "cpu",  # recomputing activations pays off on GPUs only
        use_vllm=settings.policy.use_vllm,
    )


def train_self_distillation(
    rows: Sequence[Mapping[str, Any]],
    settings: SelfDistillationSettings,
    checkpoint_dir: Path,
    *,
    init_adapter: Path | None = None,
    callbacks: Sequence[Any] = (),
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Distil the privileged-context teacher into a LoRA student on rows `{"prompt", "privileged_context"}`.

    The teacher is the base weights (adapter disabled), so with `init_adapter` the student continues that
    adapter while the teacher stays the base model with the context. Resumes like `train_grpo`; per-step
    metrics add `distillation_loss` (the mean per-token reverse KL in "full_logits" mode).
    """
    from datasets import Dataset
    from trl.experimental.sdft import SDFTTrainer

    checked = require_valid(rows, [CONTEXT_COLUMN])
    data = [{"prompt": row["prompt"], CONTEXT_COLUMN: row[CONTEXT_COLUMN]} for row in checked]
    started = time.perf_counter()
    extra = {"init_adapter": _adapter_hash(init_adapter)}
    resume = _prepare("self_distillation", settings, data, checkpoint_dir, extra)
    model, tokenizer, peft = _policy_model(settings, init_adapter)  # type: ignore[arg-type]
    check_teacher_fits(checked, tokenizer, context_window(model), settings.max_completion_length)
    if log:
        log(f"self-distillation: {len(data)} prompts, {settings.max_steps} steps, {settings.mode} reverse KL")

    class _SDFT(_StopOnNonFiniteLoss, SDFTTrainer):
        pass

    trainer = _SDFT(
        model=model,
        args=sdft_arguments(settings, checkpoint_dir),
        train_dataset=Dataset.from_list(data),
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[*callbacks, _log_callback(log)],
    )
    _quiet(trainer).train(resume_from_checkpoint=str(resume) if resume else None)
    result = _finish(trainer, "self_distillation", settings, checkpoint_dir, resume, started, 0)
    for row, entry in zip(result.steps, _distillation_losses(trainer.state.log_history), strict=False):
        row["distillation_loss"] = entry
    return result


def _distillation_losses(log_history: Sequence[Mapping[str, Any]]) -> list[float]:
    return [
        float(entry["self_distillation/distillation_loss"])
        for entry in log_history
        if "self_distillation/distillation_loss" in entry and "train_runtime" not in entry
    ]


def mean_reverse_kl(model: Any, tokenizer: Any, rows: Sequence[Mapping[str, Any]], completions: Sequence[str]) -> float:
    """Mean per-token KL(student || teacher) over the given completions: the student reads the prompt, the
    teacher (the same model with any LoRA adapter disabled) reads prompt + privileged context."""
    import contextlib

    import torch

    disable = getattr(model, "disable_adapter", None)
    totals, tokens = 0.0, 0
    for row, completion in zip(rows, completions, strict=True):
        prompt = prompt_text(tokenizer, row["prompt"])
        teacher = prompt_text(tokenizer, teacher_prompt(row["prompt"], row[CONTEXT_COLUMN]))
        ids = tokenizer(completion, add_special_tokens=False, return_tensors="pt")["input_ids"]
        if ids.shape[1] == 0:
            continue
        with torch.no_grad():
            student = _completion_log_probs(model, tokenizer, prompt, ids)
            with disable() if disable else contextlib.nullcontext():
                teacher_logps = _completion_log_probs(model, tokenizer, teacher, ids)
        totals += float((student.exp() * (student - teacher_logps)).sum())
        tokens += ids.shape[1]
    return totals / max(tokens, 1)


def _completion_log_probs(model: Any, tokenizer: Any, prompt: str, completion_ids: Any) -> Any:
    import torch

    prompt_ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    logits = model(input_ids=torch.cat([prompt_ids, completion_ids], dim=1)).logits[0]
    return torch.log_softmax(logits[prompt_ids.shape[1] - 1 : -1].float(), dim=-1)
