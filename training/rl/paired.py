"""Greedy answers of a trained adapter and of its base from one model load (LoRA switched off = the base)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from training.rl.config import PolicyConfig
from training.rl.policy import Chat, generate, load_policy


def trained_and_base(
    config: PolicyConfig, adapter: Path | Mapping[str, bytes], prompts: Sequence[str | Chat], max_new_tokens: int
) -> tuple[list[str], list[str]]:
    """`(trained, base)` greedy completions of `prompts`: the base is the adapter's model with the adapter
    disabled, so a comparison loads the model once instead of twice."""
    policy = load_policy(config, adapter)
    trained = generate(policy, prompts, max_new_tokens)
    with policy.model.disable_adapter():
        base = generate(policy, prompts, max_new_tokens)
    return trained, base
