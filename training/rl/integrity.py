"""What a stored policy adapter must satisfy: its files are there, its weights load and are finite, and its
training record is sound (finite metrics, one row per step in order, no checkpoint step written twice)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping

from training.rl.card import CARD, TRAINING_RECORD
from training.rl.policy import ADAPTER_CONFIG, ADAPTER_WEIGHTS


def _weight_problems(weights: bytes) -> list[str]:
    import torch  # here, not at module level: loading the code location skips torch
    from safetensors.torch import load as load_safetensors

    try:
        tensors = load_safetensors(weights)
    except Exception as exc:  # any parse failure is the finding
        return [f"adapter weights do not load: {exc}"]
    if not tensors:
        return ["adapter has no tensors"]
    bad = sorted(name for name, tensor in tensors.items() if not bool(torch.isfinite(tensor).all()))
    return [f"non-finite adapter weights: {', '.join(bad[:3])}"] if bad else []


def _record_problems(record: Mapping) -> list[str]:
    problems = []
    steps = [row["step"] for row in record["steps"]]
    if steps != sorted(set(steps)):
        problems.append(f"steps not one per step in order: {steps}")
    if not all(math.isfinite(value) for row in record["steps"] for value in row.values()):
        problems.append("non-finite training metrics")
    checkpoints = record["checkpoints"]
    if len(checkpoints) != len(set(checkpoints)):
        problems.append(f"a checkpoint step was written twice: {checkpoints}")
    return problems


def adapter_problems(files: Mapping[str, bytes], expected_steps: int | None = None) -> list[str]:
    """Problems of stored adapter files (empty when sound); `expected_steps` = steps the run had to log."""
    missing = [name for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG, TRAINING_RECORD, CARD) if name not in files]
    if missing:
        return [f"missing files: {', '.join(missing)}"]
    problems = _weight_problems(files[ADAPTER_WEIGHTS])
    config = json.loads(files[ADAPTER_CONFIG])
    if config.get("peft_type") != "LORA":
        problems.append(f"adapter is not LoRA: {config.get('peft_type')}")
    record = json.loads(files[TRAINING_RECORD])
    problems += _record_problems(record)
    if expected_steps is not None and len(record["steps"]) != expected_steps:
        problems.append(f"{len(record['steps'])} logged steps, {expected_steps} configured")
    return problems


def stored_adapter_problems(files: Mapping[str, bytes]) -> list[str]:
    """`adapter_problems`, expecting the number of steps the run's own training record was configured for."""
    if TRAINING_RECORD not in files:
        return adapter_problems(files)
    return adapter_problems(files, expected_steps=json.loads(files[TRAINING_RECORD])["config"]["max_steps"])
