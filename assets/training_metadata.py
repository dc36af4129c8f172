"""What a training asset reports: headline numbers, the per-step curves as a table and a chart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl

from assets.outputs import markdown_table, png_metadata
from ops.common.plots import line_png
from resources.scale import ScaleResource
from training.rl.config import PolicyConfig
from training.rl.trainer import TrainingResult

_CURVES = ("reward_mean", "reward_std", "zero_variance_share", "kl", "loss")


def work_dir(configured: str, asset: str) -> Path:
    """Local folder for an asset's training checkpoints (`ScaleResource.rl_work_dir`, else ASSAY_HOME/training)."""
    root = configured or str(Path(os.environ.get("ASSAY_HOME", ".assay")) / "training")
    return Path(root) / asset


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _mean(steps: list[dict[str, float]], key: str) -> float | None:
    values = [row[key] for row in steps if key in row]
    return sum(values) / len(values) if values else None


def training_metadata(result: TrainingResult, title: str) -> dict[str, Any]:
    """Numeric headline metadata (first/last reward, loss, zero-variance share, drops, failures, tokens/s),
    the per-step table and a chart of the curves."""
    steps = result.steps
    first, last = (steps[0], steps[-1]) if steps else ({}, {})
    numbers = {
        "steps": len(steps),
        "resumed_from_step": result.resumed_from_step if result.resumed_from_step is not None else -1,
        "final_loss": _rounded(last.get("loss")),
        "reward_mean_first": _rounded(first.get("reward_mean")),
        "reward_mean_last": _rounded(last.get("reward_mean")),
        "zero_variance_share_mean": _rounded(_mean(steps, "zero_variance_share")),
        "dropped_groups_total": _rounded(sum(row.get("dropped_groups", 0.0) for row in steps)),
        "reward_failures_total": _rounded(sum(row.get("reward_failures", 0.0) for row in steps)),
        "kl_last": _rounded(last.get("kl")),
        "tokens_per_second_mean": _rounded(_mean(steps, "tokens_per_second")),
        "step_seconds_mean": _rounded(_mean(steps, "step_seconds")),
        "train_seconds": _rounded(result.seconds),
    }
    metadata: dict[str, Any] = {key: value for key, value in numbers.items() if value is not None}
    if steps:
        frame = pl.DataFrame(steps).select(pl.all().round(4))
        metadata["curves"] = markdown_table(frame)
        series = {key: [row.get(key, float("nan")) for row in steps] for key in _CURVES if key in steps[0]}
        chart = line_png([str(int(row["step"])) for row in steps], series, title, "value")
        metadata["curves_chart"] = png_metadata(chart, f"{title}: per-step curves")
    return metadata


def policy_base(configured: str) -> str:
    """The policy's base model: the configured model id/folder, else the packaged SmolLM2-135M GGUF."""
    from ops.common.packaged_models import smollm2_model_path

    return configured or str(smollm2_model_path())


def policy_config(scale: ScaleResource) -> PolicyConfig:
    """The profile's policy for the shared trainer: its base, device, dtype (bfloat16 on CUDA) and vLLM switch."""
    on_gpu = scale.training_device.startswith("cuda")
    return PolicyConfig(
        base_model=policy_base(scale.rl_base_model),
        device=scale.training_device,
        dtype="bfloat16" if on_gpu else "float32",
        use_vllm=scale.rl_use_vllm,
    )
