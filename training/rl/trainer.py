"""SFT and GRPO/GSPO training on TRL with a LoRA adapter: checkpoints, resume, group filter, NaN stop.

`train_sft` and `train_grpo` take plain rows and configs (`training.rl.config`) and a checkpoint folder.
TRL's trainer writes `checkpoint-<step>/` folders there (LoRA safetensors, optimizer, RNG and trainer
state); a rerun with the same config and data resumes from the last complete one, so a run killed with
SIGKILL continues at the next step and never writes a step twice. The folder records a fingerprint of
config and data (`run.json`): resuming someone else's run is an error, not a silent mix.

Every step logs reward mean/std, the share of zero-variance groups (before filtering), the groups the
filter dropped, KL (when `beta` > 0), mean completion length, seconds and generated tokens/s, and how
many reward calls failed (`SafeReward`). A non-finite loss raises `NonFiniteLossError` naming the step,
before the optimizer applies it, so the last checkpoint stays the last good one.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ops.common.text import sha256_hex
from training.rl.config import GRPOSettings, SFTSettings, as_dict, importance_sampling_level
from training.rl.data import require_valid
from training.rl.group_filter import GroupFilter, ZeroVarianceFilter, zero_variance_share
from training.rl.policy import ADAPTER_WEIGHTS, load_base, lora_config, with_adapter
from training.rl.rewards import RewardFn, SafeReward

if TYPE_CHECKING:
    import torch

DEFAULT_FILTER = ZeroVarianceFilter()
RUN_FILE = "run.json"
FINAL_DIR = "final"
TRAINER_STATE = "trainer_state.json"
CHECKPOINT_PREFIX = "checkpoint-"
# TRL's logged names -> ours (per step).
_METRIC_NAMES = {
    "loss": "loss",
    "reward": "reward_mean",
    "reward_std": "reward_std",
    "group_filter/zero_variance_share": "zero_variance_share",
    "group_filter/dropped_groups": "dropped_groups",
    "rewards/failed": "reward_failures",
    "kl": "kl",
    "completions/mean_length": "completion_length",
    "step_time": "step_seconds",
    "grad_norm": "grad_norm",
    "entropy": "entropy",
}


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""

    def __init__(self, step: int, last_checkpoint: Path | None) -> None:
        where = f"last good checkpoint: {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
        super().__init__(f"non-finite loss at step {step}; training stopped before applying it ({where})")
        self.step = step
        self.last_checkpoint = last_checkpoint


@dataclass
class TrainingResult:
    """A finished run: the final adapter folder, per-step metrics, and what resume and the rewards did."""

    kind: str
    adapter_dir: Path
    steps: list[dict[str, float]]
    checkpoints: list[int]
    resumed_from_step: int | None
    seconds: float
    config: dict[str, Any]
    reward_failures: dict[str, dict[str, int]] = field(default_factory=dict)


def checkpoint_steps(checkpoint_dir: Path) -> list[int]:
    """Steps of the complete checkpoints in `checkpoint_dir` (adapter and trainer state written), sorted."""
    steps = []
    for folder in checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*"):
        suffix = folder.name.removeprefix(CHECKPOINT_PREFIX)
        if suffix.isdigit() and (folder / TRAINER_STATE).is_file() and (folder / ADAPTER_WEIGHTS).is_file():
            steps.append(int(suffix))
    return sorted(steps)


def last_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint folder, or None."""
    steps = checkpoint_steps(checkpoint_dir)
    return checkpoint_dir / f"{CHECKPOINT_PREFIX}{steps[-1]}" if steps else None


def _drop_incomplete(checkpoint_dir: Path) -> None:
    """Remove checkpoint folders a kill left half-written (no trainer state), so they are rewritten once."""
    complete = set(checkpoint_steps(checkpoint_dir))
    for folder in checkpoint_dir.glob(f"{CHECKPOINT_PREFIX}*"):
        suffix = folder.name.removeprefix(CHECKPOINT_PREFIX)
        if folder.is_dir() and (not suffix.isdigit() or int(suffix) not in complete):
            shutil.rmtree(folder)


def fingerprint(kind: str, config: Any, rows: Sequence[Mapping[str, Any]], extra: Mapping[str, Any]) -> str:
    """Hash of what a run trains on: kind, config, rows and extras (reward names, initial adapter)."""
    payload = {"kind": kind, "config": as_dict(config), "rows": list(rows), "extra": dict(extra)}
    return sha256_hex(json.dumps(payload, sort_keys=True, default=str))[:16]


def _claim(checkpoint_dir: Path, run_fingerprint: str) -> None:
    """Record the run's fingerprint in the folder; a different run's folder is refused."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    path = checkpoint_dir / RUN_FILE
    if path.is_file():
        recorded = json.loads(path.read_text())["fingerprint"]
        if recorded != run_fingerprint:
            raise ValueError(
                f"{checkpoint_dir} holds checkpoints of another run ({recorded}, this run is {run_fingerprint}): "
                "use one folder per config and data version"
            )
        return
    path.write_text(json.dumps({"fingerprint": run_fingerprint}))


def _log_callback(log: Callable[[str], None] | None) -> Any:
    """A trainer callback that sends each step's logged metrics to `log` (e.g. Dagster's logger)."""
    from transformers import TrainerCallback

    class _Forward(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
            if log and logs and "train_runtime" not in logs:
                shown = ", ".join(f"{key}={value:.4g}" for key, value in logs.items() if isinstance(value, float))
                log(f"step {state.global_step}: {shown}")

    return _Forward()


def _quiet(trainer: Any) -> Any:
    """Replace the trainer's stdout printer by our logger (one line per step, through `log`)."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


class _StopOnNonFiniteLoss:
    """Mixin for TRL trainers: a NaN/inf loss raises before the optimizer step (weights stay good)."""

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> torch.Tensor:
        import torch

        loss = super().training_step(model, inputs, num_items_in_batch)  # type: ignore[misc]
        if not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteLossError(self.state.global_step + 1, last_checkpoint(Path(self.args.output_dir)))  # type: ignore[attr-defined]
        return loss


def _grpo_trainer_class() -> type:
    """GRPOTrainer with the group filter, reward-failure counts and the NaN stop (TRL and torch imported lazily)."""
    import torch
    from trl import GRPOTrainer

    class FilteredGRPOTrainer(_StopOnNonFiniteLoss, GRPOTrainer):
        """Drops the groups the filter rejects from the loss (no policy gradient, no KL), reweights the kept
        ones so the policy loss averages over them alone, and logs the counts."""

        def __init__(self, *args: Any, group_filter: GroupFilter | None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.group_filter = group_filter
            self._last_rewards: torch.Tensor | None = None

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):  # type: ignore[no-untyped-def]
            self._last_rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            return self._last_rewards

        def _generate_and_score_completions(self, inputs):  # type: ignore[no-untyped-def]
            failed_before = _failures(self.reward_funcs)
            output = super()._generate_and_score_completions(inputs)
            if not self.model.training or self._last_rewards is None:
                return output
            self._metrics["train"]["rewards/failed"].append(float(_failures(self.reward_funcs) - failed_before))
            weights = self.reward_weights.to(self._last_rewards.device)
            rewards = (torch.nan_to_num(self._last_rewards, nan=0.0) * weights).sum(dim=1)
            groups = rewards.view(-1, self.num_generations).float().cpu().numpy()
            self._metrics["train"]["group_filter/zero_variance_share"].append(zero_variance_share(groups))
            keep = np.ones(len(groups), dtype=bool) if self.group_filter is None else self.group_filter.keep(groups)
            self._metrics["train"]["group_filter/dropped_groups"].append(float((~keep).sum()))
            local = len(output["advantages"])
            start = self.accelerator.process_index * local
            rows = torch.from_numpy(np.repeat(keep, self.num_generations)[start : start + local])
            rows = rows.to(output["advantages"].device)
            # Kept groups' advantages x (groups / kept): the policy loss then averages over the kept rows only,
            # as if the dropped rows had been removed from the batch (the loss is linear in the advantage).
            output["advantages"] = output["advantages"] * rows * (len(keep) / max(int(keep.sum()), 1))
            output["completion_mask"] = output["completion_mask"] * rows.unsqueeze(1).to(
                output["completion_mask"].dtype
            )
            return output

    return FilteredGRPOTrainer


def _failures(reward_funcs: Sequence[Any]) -> int:
    return sum(fn.stats.failed for fn in reward_funcs if isinstance(fn, SafeReward))


def step_metrics(log_history: Sequence[Mapping[str, Any]], completions_per_step: int = 0) -> list[dict[str, float]]:
    """Per-step metrics from the trainer's log history (our names; tokens/s from length x count / seconds)."""
    rows = []
    for entry in log_history:
        if "step" not in entry or "loss" not in entry or "train_runtime" in entry:
            continue
        row = {"step": float(entry["step"])}
        row.update({ours: float(entry[theirs]) for theirs, ours in _METRIC_NAMES.items() if theirs in entry})
        seconds, length = row.get("step_seconds"), row.get("completion_length")
        if completions_per_step and seconds and length is not None:
            row["tokens_per_second"] = length * completions_per_step / seconds
        rows.append(row)
    return rows


def _training_args_common(settings: SFTSettings | GRPOSettings, checkpoint_dir: Path) -> dict[str, Any]:
    return {
        "output_dir": str(checkpoint_dir),
        "max_steps": settings.max_steps,
        "learning_rate": settings.learning_rate,
        "save_strategy": "steps",
        "save_steps": settings.save_steps,
        "logging_steps": 1,
        "report_to": "none",
        "seed": settings.seed,
        "data_seed": settings.seed,
        "use_cpu": settings.policy.device == "cpu",
        "bf16": settings.policy.dtype == "bfloat16",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "gradient_accumulation_steps": 1,
    }


def grpo_arguments(settings: GRPOSettings, checkpoint_dir: Path) -> Any:
    """TRL's GRPOConfig for our settings; GSPO = sequence-level importance sampling with loss_type "grpo"."""
    from trl import GRPOConfig

    return GRPOConfig(
        **_training_args_common(settings, checkpoint_dir),
        per_device_train_batch_size=settings.prompts_per_step * settings.num_generations,
        num_generations=settings.num_generations,
        steps_per_generation=1,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        beta=settings.beta,
        epsilon=settings.epsilon,
        importance_sampling_level=importance_sampling_level(settings),
        loss_type="grpo",
        use_vllm=settings.policy.use_vllm,
        vllm_mode="colocate",
    )


def sft_arguments(settings: SFTSettings, checkpoint_dir: Path) -> Any:
    """TRL's SFTConfig: prompt/completion rows, loss on the completion only, no packing."""
    from trl import SFTConfig

    return SFTConfig(
        **_training_args_common(settings, checkpoint_dir),
        per_device_train_batch_size=settings.batch_size,
        max_length=settings.max_length,
        completion_only_loss=True,
        packing=False,
    )


def _policy_model(settings: SFTSettings | GRPOSettings, init_adapter: Path | None) -> tuple[Any, Any, Any]:
    """(model, tokenizer, peft_config): a trainable copy of `init_adapter`, or a fresh LoRA config."""
    model, tokenizer = load_base(settings.policy)
    if init_adapter is not None:
        return with_adapter(model, init_adapter, trainable=True), tokenizer, None
    return model, tokenizer, lora_config(settings.lora)


def _finish(
    trainer: Any, kind: str, settings: Any, checkpoint_dir: Path, resumed: Path | None, started: float, per_step: int
) -> TrainingResult:
    final = checkpoint_dir / FINAL_DIR
    if final.exists():
        shutil.rmtree(final)
    trainer.model.save_pretrained(str(final), selected_adapters=["default"], safe_serialization=True)
    failures = {
        fn.__name__: {"scored": fn.stats.scored, "raised": fn.stats.raised, "invalid": fn.stats.invalid}
        for fn in getattr(trainer, "reward_funcs", [])
        if isinstance(fn, SafeReward)
    }
    return TrainingResult(
        kind=kind,
        adapter_dir=final,
        steps=step_metrics(trainer.state.log_history, per_step),
        checkpoints=checkpoint_steps(checkpoint_dir),
        resumed_from_step=int(resumed.name.removeprefix(CHECKPOINT_PREFIX)) if resumed else None,
        seconds=time.perf_counter() - started,
        config=as_dict(settings),
        reward_failures=failures,
    )


def _prepare(kind: str, settings: Any, rows: list[dict[str, Any]], checkpoint_dir: Path, extra: dict) -> Path | None:
    """Claim the folder for this run and return the checkpoint to resume from (None: start fresh)."""
    import torch

    torch.manual_seed(settings.seed)
    _claim(checkpoint_dir, fingerprint(kind, settings, rows, extra))
    _drop_incomplete(checkpoint_dir)
    return last_checkpoint(checkpoint_dir)


def train_sft(
    rows: Sequence[Mapping[str, Any]],
    settings: SFTSettings,
    checkpoint_dir: Path,
    *,
    init_adapter: Path | None = None,
    callbacks: Sequence[Any] = (),
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Fine-tune a LoRA adapter on prompt/completion rows (strings or chats); loss on the completion only.

    Resumes from the last complete checkpoint in `checkpoint_dir`; the final adapter is written to
    `checkpoint_dir/final`.
    """
    from datasets import Dataset

    checked = require_valid(rows)
    if any("completion" not in row for row in checked):
        raise ValueError("SFT rows need a `completion`")
    sft_rows = [{"prompt": row["prompt"], "completion": row["completion"]} for row in checked]
    started = time.perf_counter()
    resume = _prepare("sft", settings, sft_rows, checkpoint_dir, {"init_adapter": _adapter_hash(init_adapter)})
    if log:
        log(f"SFT: {len(sft_rows)} rows, {settings.max_steps} steps" + (f", resuming from {resume}" if resume else ""))
    from trl import SFTTrainer

    class _SFT(_StopOnNonFiniteLoss, SFTTrainer):
        pass

    model, tokenizer, peft = _policy_model(settings, init_adapter)
    trainer = _SFT(
        model=model,
        args=sft_arguments(settings, checkpoint_dir),
        train_dataset=Dataset.from_list(sft_rows),
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[*callbacks, _log_callback(log)],
    )
    _quiet(trainer).train(resume_from_checkpoint=str(resume) if resume else None)
    return _finish(trainer, "sft", settings, checkpoint_dir, resume, started, 0)


def _adapter_hash(adapter: Path | None) -> str | None:
    return sha256_hex((adapter / ADAPTER_WEIGHTS).read_bytes()) if adapter is not None else None


def train_grpo(
    rows: Sequence[Mapping[str, Any]],
    reward_funcs: Sequence[RewardFn],
    settings: GRPOSettings,
    checkpoint_dir: Path,
    *,
    init_adapter: Path | None = None,
    group_filter: GroupFilter | None = DEFAULT_FILTER,
    reward_columns: Sequence[str] = (),
    callbacks: Sequence[Any] = (),
    log: Callable[[str], None] | None = None,
) -> TrainingResult:
    """GRPO (or GSPO: `settings.mode="gspo"`) of a LoRA adapter on prompt rows scored by `reward_funcs`.

    `rows` hold a `prompt` (string or chat) plus the columns the rewards read (named in `reward_columns`,
    checked present; keep them strings or numbers, e.g. JSON text). Each reward is wrapped in
    `SafeReward`. `init_adapter` continues an adapter (e.g. the SFT checkpoint; it is also the KL
    reference); `group_filter=None` keeps every group.
    """
    from datasets import Dataset

    checked = require_valid(rows, reward_columns)
    started = time.perf_counter()
    names = [getattr(fn, "__name__", type(fn).__name__) for fn in reward_funcs]
    extra = {"rewards": names, "filter": repr(group_filter), "init_adapter": _adapter_hash(init_adapter)}
    resume = _prepare("grpo", settings, checked, checkpoint_dir, extra)
    if log:
        log(
            f"{settings.mode.upper()}: {len(checked)} prompts, {settings.max_steps} steps, rewards {names}"
            + (f", resuming from {resume}" if resume else "")
        )
    model, tokenizer, peft = _policy_model(settings, init_adapter)
    trainer = _grpo_trainer_class()(
        model=model,
        reward_funcs=[fn if isinstance(fn, SafeReward) else SafeReward(fn) for fn in reward_funcs],
        args=grpo_arguments(settings, checkpoint_dir),
        train_dataset=Dataset.from_list(checked),
        processing_class=tokenizer,
        peft_config=peft,
        callbacks=[*callbacks, _log_callback(log)],
        group_filter=group_filter,
    )
    _quiet(trainer).train(resume_from_checkpoint=str(resume) if resume else None)
    per_step = settings.prompts_per_step * settings.num_generations
    return _finish(trainer, "grpo", settings, checkpoint_dir, resume, started, per_step)


def finite_metrics(steps: Sequence[Mapping[str, float]]) -> bool:
    """True when every logged value is finite (the asset checks' invariant)."""
    return all(math.isfinite(value) for row in steps for value in row.values())
