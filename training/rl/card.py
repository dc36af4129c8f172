"""A trained adapter as store files: LoRA safetensors + config, the run's record (JSON) and a model card."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from training.rl.policy import ADAPTER_FILES
from training.rl.trainer import TrainingResult

TRAINING_RECORD = "training.json"
CARD = "card.md"
_TIMING = ("step_seconds", "tokens_per_second")
_CURVE_COLUMNS = ("step", "loss", "reward_mean", "reward_std", "zero_variance_share", "dropped_groups", "kl")


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def model_card(result: TrainingResult, fields: Mapping[str, Any]) -> str:
    """Markdown card: caller's fields (data version, reward, split...), base model, config, curves, how to load."""
    lines = [f"# {result.kind.upper()} policy adapter (LoRA)", ""]
    lines += [f"- {key}: {value}" for key, value in fields.items()]
    policy = result.config["policy"]
    lines += [
        "",
        "## Base model",
        "",
        f"- base_model: {policy['base_model']}",
        f"- gguf_file: {policy['gguf_file']}",
        "",
        "Only the LoRA adapter is stored. Load with `training.rl.policy.load_policy(PolicyConfig(...), files)`; the",
        "base weights come from the installed package (GGUF) or the hub id.",
        "",
        "## Config",
        "",
        "```json",
        json.dumps(result.config, indent=1, sort_keys=True),
        "```",
        "",
        f"## Curves ({len(result.steps)} steps)",
        "",
    ]
    columns = [c for c in _CURVE_COLUMNS if any(c in row for row in result.steps)]
    lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row.get(c, "")) for c in columns) + " |" for row in result.steps]
    return "\n".join(lines) + "\n"


def training_record(result: TrainingResult, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The run as JSON-ready data: config, per-step metrics, checkpoints, reward failures, caller's fields."""
    return {
        "kind": result.kind,
        "fields": dict(fields),
        "config": result.config,
        "steps": result.steps,
        "checkpoints": result.checkpoints,
        "reward_failures": sum(row.get("reward_failures", 0.0) for row in result.steps),
    }


def adapter_files(result: TrainingResult, fields: Mapping[str, Any]) -> dict[str, bytes]:
    """Files for the artifact store. Wall times and where a run resumed are left out (asset metadata has them),
    so a rerun that finds its finished checkpoints gives the same files and so the same version."""
    files = {name: (result.adapter_dir / name).read_bytes() for name in ADAPTER_FILES}
    record = training_record(result, fields)
    record["steps"] = [{k: v for k, v in row.items() if k not in _TIMING} for row in record["steps"]]
    files[TRAINING_RECORD] = json.dumps(record, indent=1, sort_keys=True, default=str).encode()
    files[CARD] = model_card(result, fields).encode()
    return files
