"""The tiny Mixtral-class MoE, its checkpoint files and the architecture checks that guard them.

A checkpoint is plain files: `config.json` (the transformers config), `model.safetensors` (the
state dict), `optimizer.safetensors` (Adam's moments keyed by parameter name) and `optimizer.json`
(step count and hyper-parameters). No pickles, and the optimizer state can be indexed per expert,
which the upcycling operator needs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import MixtralConfig, MixtralForCausalLM


MODEL_TYPE = "mixtral"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
OPTIMIZER_META_FILE = "optimizer.json"
CHECKPOINT_FILES = (CONFIG_FILE, WEIGHTS_FILE, OPTIMIZER_FILE, OPTIMIZER_META_FILE)


class ArchitectureError(ValueError):
    """A checkpoint or request that does not fit the Mixtral-class MoE the upcycling operator handles."""


@dataclass(frozen=True)
class MoEShape:
    """Sizes of the MoE; the local defaults keep a training step around ten milliseconds on one core."""

    vocab_size: int = 257
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 128
    experts: int = 4
    top_k: int = 2
    seq_len: int = 128
    router_aux_loss_coef: float = 0.01

    def __post_init__(self) -> None:
        if self.experts < 1 or self.top_k < 1:
            raise ArchitectureError(f"experts={self.experts} and top_k={self.top_k} must be >= 1")
        if self.top_k > self.experts:
            raise ArchitectureError(f"top_k={self.top_k} exceeds the number of experts E={self.experts}")

    def config(self) -> MixtralConfig:
        """The transformers config of this shape."""
        from transformers import MixtralConfig

        return MixtralConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden,
            intermediate_size=self.intermediate,
            num_hidden_layers=self.layers,
            num_attention_heads=self.heads,
            num_key_value_heads=self.kv_heads,
            max_position_embeddings=self.seq_len,
            num_local_experts=self.experts,
            num_experts_per_tok=self.top_k,
            router_aux_loss_coef=self.router_aux_loss_coef,
            tie_word_embeddings=True,
            bos_token_id=None,
            eos_token_id=self.vocab_size - 1,
            use_cache=False,
        )


def new_model(config: MixtralConfig, seed: int) -> MixtralForCausalLM:
    """A randomly initialised model of that config (seeded)."""
    import torch
    from transformers import MixtralForCausalLM

    torch.manual_seed(seed)
    model = MixtralForCausalLM(config)
    model.eval()
    return model


def expert_keys(layer: int) -> tuple[str, str, str]:
    """State-dict names of a layer's fused FC1 (gate+up), FC2 (down) and router weights."""
    prefix = f"model.layers.{layer}.mlp"
    return f"{prefix}.experts.gate_up_proj", f"{prefix}.experts.down_proj", f"{prefix}.gate.weight"


def check_architecture(config_dict: Mapping) -> MixtralConfig:
    """The Mixtral config of a checkpoint; any other architecture is refused with its name."""
    from transformers import MixtralConfig

    model_type = config_dict.get("model_type")
    if model_type != MODEL_TYPE:
        architectures = config_dict.get("architectures")
        raise ArchitectureError(
            f"checkpoint is model_type={model_type!r} (architectures={architectures}); "
            f"expert upcycling here needs a {MODEL_TYPE!r} MoE (MixtralForCausalLM)"
        )
    experts, top_k = config_dict.get("num_local_experts"), config_dict.get("num_experts_per_tok")
    if not isinstance(experts, int) or not isinstance(top_k, int) or top_k > experts:
        raise ArchitectureError(f"checkpoint has num_local_experts={experts}, num_experts_per_tok={top_k}")
    return MixtralConfig.from_dict(dict(config_dict))


@dataclass
class Checkpoint:
    """A model's config and weights with its Adam state (moments by parameter name, and the step)."""

    config: MixtralConfig
    weights: dict[str, torch.Tensor]
    exp_avg: dict[str, torch.Tensor]
    exp_avg_sq: dict[str, torch.Tensor]
    step: int
    optimizer_meta: dict

    def model(self) -> MixtralForCausalLM:
        """The model with these weights (eval mode)."""
        from transformers import MixtralForCausalLM

        model = MixtralForCausalLM(self.config)
        model.load_state_dict(self.weights, strict=True)
        model.eval()
        return model


def optimizer_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict, int]:
    """Adam's first and second moments keyed by parameter name, and its step count."""
    exp_avg, exp_avg_sq, step = {}, {}, 0
    for name, param in model.named_parameters():
        state = optimizer.state.get(param)
        if state:
            exp_avg[name] = state["exp_avg"].detach().clone()
            exp_avg_sq[name] = state["exp_avg_sq"].detach().clone()
            step = int(state["step"])
    return exp_avg, exp_avg_sq, step


def restore_optimizer(model: torch.nn.Module, optimizer: torch.optim.Optimizer, checkpoint: Checkpoint) -> None:
    """Put a checkpoint's Adam moments back on the optimizer of a model with the same parameter names."""
    import torch

    for name, param in model.named_parameters():
        if name in checkpoint.exp_avg:
            optimizer.state[param] = {
                "step": torch.tensor(float(checkpoint.step)),
                "exp_avg": checkpoint.exp_avg[name].clone(),
                "exp_avg_sq": checkpoint.exp_avg_sq[name].clone(),
            }


def capture(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, meta: Mapping | None = None) -> Checkpoint:
    """A detached checkpoint of a live model and its optimizer."""
    exp_avg, exp_avg_sq, step = optimizer_state(model, optimizer) if optimizer is not None else ({}, {}, 0)
    weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    return Checkpoint(model.config, weights, exp_avg, exp_avg_sq, step, dict(meta or {}))


def checkpoint_files(checkpoint: Checkpoint) -> dict[str, bytes]:
    """The checkpoint as the four files of `CHECKPOINT_FILES`."""
    from safetensors.torch import save as save_safetensors

    moments = {f"exp_avg.{k}": v.contiguous() for k, v in checkpoint.exp_avg.items()}
    moments |= {f"exp_avg_sq.{k}": v.contiguous() for k, v in checkpoint.exp_avg_sq.items()}
    meta = {**checkpoint.optimizer_meta, "step": checkpoint.step}
    return {
        CONFIG_FILE: checkpoint.config.to_json_string(use_diff=False).encode(),
        WEIGHTS_FILE: save_safetensors({k: v.contiguous() for k, v in checkpoint.weights.items()}),
        OPTIMIZER_FILE: save_safetensors(moments),
        OPTIMIZER_META_FILE: json.dumps(meta, sort_keys=True).encode(),
    }


def load_checkpoint(files: Mapping[str, bytes]) -> Checkpoint:
    """Read a checkpoint's files; refuses a missing file or another architecture with a clear error."""
    from safetensors.torch import load as load_safetensors

    missing = [name for name in CHECKPOINT_FILES if name not in files]
    if missing:
        raise ArchitectureError(f"checkpoint lacks {missing}; it has {sorted(files)}")
    config = check_architecture(json.loads(files[CONFIG_FILE]))
    moments = load_safetensors(files[OPTIMIZER_FILE])
    meta = json.loads(files[OPTIMIZER_META_FILE])
    return Checkpoint(
        config=config,
        weights=load_safetensors(files[WEIGHTS_FILE]),
        exp_avg={k.removeprefix("exp_avg."): v for k, v in moments.items() if k.startswith("exp_avg.")},
        exp_avg_sq={k.removeprefix("exp_avg_sq."): v for k, v in moments.items() if k.startswith("exp_avg_sq.")},
        step=int(meta.pop("step")),
        optimizer_meta=meta,
    )
