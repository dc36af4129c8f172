"""A toy RL problem for the trainer tests: a tiny random Llama over bytes, rewarded for lowercase letters.

Also runnable as `python -m tests.rl_toy <folder> <steps> <pause_s>` so that a test can kill -9 a real
training process after its first checkpoint and resume it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from training.rl.config import GRPOSettings, LoraSettings, PolicyConfig
from training.rl.trainer import TrainingResult, train_grpo
from training.webdocs.generative_student import byte_tokenizer, tiny_base

TARGET = set("abcdefghijklmnopqrstuvwxyz")
PROMPTS = ["write:", "say:", "go:", "now:"]


def tiny_policy(folder: Path) -> PolicyConfig:
    """A tiny random Llama with a byte tokenizer, written once into `folder/base`."""
    base = folder / "base"
    if not (base / "config.json").is_file():
        tiny_base(base, byte_tokenizer(), layers=2, hidden=64, seed=0)
    return PolicyConfig(base_model=str(base))


def target_share(completions: list[Any], **kwargs: Any) -> list[float]:
    """Toy reward: the share of the completion's characters that are lowercase ASCII letters."""
    del kwargs
    return [sum(char in TARGET for char in text) / max(len(text), 1) for text in completions]


def toy_rows(count: int = 4) -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "prompt": PROMPTS[i % len(PROMPTS)]} for i in range(count)]


def toy_settings(policy: PolicyConfig, steps: int, **changes: Any) -> GRPOSettings:
    values: dict[str, Any] = {
        "policy": policy,
        "lora": LoraSettings(r=8, alpha=32, target_modules=("q_proj", "v_proj", "o_proj", "down_proj")),
        "max_steps": steps,
        "prompts_per_step": 4,
        "num_generations": 4,
        "max_completion_length": 12,
        "learning_rate": 5e-2,
        "beta": 0.0,
        "save_steps": 1,
        "seed": 0,
    }
    values.update(changes)
    return GRPOSettings(**values)


class PauseAfterSave(TrainerCallback):
    """Sleeps after every checkpoint (gives a test time to kill the process between steps)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_save(self, *args: Any, **kwargs: Any) -> None:
        time.sleep(self.seconds)


def run(folder: Path, steps: int, pause_s: float = 0.0) -> TrainingResult:
    torch.set_num_threads(1)
    policy = tiny_policy(folder)
    callbacks = [PauseAfterSave(pause_s)] if pause_s else []
    return train_grpo(toy_rows(), [target_share], toy_settings(policy, steps), folder / "ckpt", callbacks=callbacks)


if __name__ == "__main__":
    run(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
