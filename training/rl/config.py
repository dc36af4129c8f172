"""Plain dataclass configs of the RL trainer: the policy, its LoRA adapter, SFT and GRPO/GSPO settings.

Nothing here imports TRL: configs are built and hashed in assets and tests without loading it, and
`grpo_arguments` / `sft_arguments` turn them into TRL's own config objects when training starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

GRPO_MODES = ("grpo", "gspo")


@dataclass(frozen=True)
class PolicyConfig:
    """The causal LM being trained: a folder, a hub id (gpu profile) or a `.gguf` file (dequantized by transformers).

    `gguf_file` names the GGUF inside a `base_model` folder. `use_vllm` switches GRPO generation to TRL's
    colocated vLLM engine (gpu profile; vLLM is imported by TRL only then).
    """

    base_model: str
    gguf_file: str | None = None
    device: str = "cpu"
    dtype: str = "float32"
    use_vllm: bool = False


@dataclass(frozen=True)
class LoraSettings:
    """The LoRA adapter that is trained (the base stays frozen)."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class SFTSettings:
    """Supervised fine-tuning on prompt/completion pairs (loss on the completion only)."""

    policy: PolicyConfig
    lora: LoraSettings = field(default_factory=LoraSettings)
    max_steps: int = 20
    batch_size: int = 4
    learning_rate: float = 2e-4
    max_length: int = 1024
    save_steps: int = 10
    seed: int = 0


@dataclass(frozen=True)
class GRPOSettings:
    """GRPO, or GSPO as configuration: mode "gspo" = sequence-level importance sampling with loss_type "grpo".

    One optimizer step = `prompts_per_step` prompts x `num_generations` completions. `beta` > 0 keeps a KL
    term to the reference (the base, or the initial adapter when training starts from one) and logs KL.
    """

    policy: PolicyConfig
    lora: LoraSettings = field(default_factory=LoraSettings)
    mode: Literal["grpo", "gspo"] = "grpo"
    max_steps: int = 3
    prompts_per_step: int = 4
    num_generations: int = 4
    max_completion_length: int = 48
    learning_rate: float = 1e-5
    beta: float = 0.02
    temperature: float = 1.0
    epsilon: float = 0.2
    save_steps: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in GRPO_MODES:
            raise ValueError(f"mode must be one of {GRPO_MODES}, got {self.mode!r}")
        if self.num_generations < 2:
            raise ValueError("num_generations must be >= 2: a group of one has no advantage")


def as_dict(config: Any) -> dict[str, Any]:
    """A config as a JSON-ready dict (for model cards and content versions)."""
    return asdict(config)


def importance_sampling_level(settings: GRPOSettings) -> str:
    """TRL's `importance_sampling_level` for a mode: GSPO is sequence-level, GRPO token-level."""
    return "sequence" if settings.mode == "gspo" else "token"
