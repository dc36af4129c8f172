"""Proxy language models for filter search: a tiny byte-level Llama trained from scratch on a token budget.

The paper scores a filter by training a small model on what it keeps and measuring it on target tasks.
Here the model is a `transformers` Llama with a byte vocabulary (256 bytes + a document separator), so
no tokenizer is needed and bits per byte is exact: the summed negative log2-likelihood of every predicted
byte divided by their count. Training is deterministic (seeded init, windows drawn per step from the
seed) and resumable: a checkpoint (weights, AdamW moments, step, curve) is written as safetensors bytes
through a caller's callables, and a rerun continues from it to the very same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

SEPARATOR = 256  # between documents of the training stream
VOCAB_SIZE = 257
CHECKPOINT_META = "proxy_checkpoint"


@dataclass(frozen=True)
class ProxyConfig:
    """Model shape and training budget. `token_budget` fixes the compute whatever the filter keeps: a
    small selection is repeated, a large one is subsampled. `eval_points` evaluations form the curve."""

    hidden: int = 64
    layers: int = 2
    heads: int = 4
    seq_len: int = 128
    batch_size: int = 8
    token_budget: int = 32_768
    learning_rate: float = 3e-3
    warmup_steps: int = 4
    eval_points: int = 3
    checkpoint_every: int = 20
    seed: int = 0

    @property
    def steps(self) -> int:
        """Optimizer steps that spend the token budget."""
        return max(1, math.ceil(self.token_budget / (self.batch_size * self.seq_len)))


@dataclass
class ProxyResult:
    """A trained proxy: the model, its final bits per byte per target, the curve and the compute spent."""

    model: torch.nn.Module
    config: ProxyConfig
    bits_per_byte: dict[str, float]
    curve: list[dict[str, float]] = field(default_factory=list)
    tokens_trained: int = 0
    train_seconds: float = 0.0
    resumed_from_step: int = 0

    @property
    def parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.model.parameters())


def encode_documents(texts: Sequence[str]) -> np.ndarray:
    """UTF-8 bytes of each text followed by the separator token, as one int64 stream."""
    parts = [np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64) for text in texts]
    with_separators = [np.append(part, SEPARATOR) for part in parts]
    return np.concatenate(with_separators) if with_separators else np.zeros(0, dtype=np.int64)


def encode_text(text: str) -> np.ndarray:
    """UTF-8 bytes of one target text (no separators: every token is a byte)."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)


def build_model(config: ProxyConfig) -> torch.nn.Module:
    """A freshly initialised tiny Llama (seeded), tied input/output embeddings."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    llama = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=config.hidden,
        intermediate_size=2 * config.hidden,
        num_hidden_layers=config.layers,
        num_attention_heads=config.heads,
        num_key_value_heads=config.heads,
        max_position_embeddings=config.seq_len,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )
    return LlamaForCausalLM(llama)


def window_starts(stream_length: int, config: ProxyConfig) -> np.ndarray:
    """Start offsets of every training window, (steps, batch_size), drawn from the seed alone."""
    span = stream_length - config.seq_len - 1
    if span < 0:
        raise ValueError(f"training stream of {stream_length} tokens is shorter than one window ({config.seq_len + 1})")
    rng = np.random.default_rng(config.seed)
    return rng.integers(0, span + 1, size=(config.steps, config.batch_size))


def bits_per_byte(model: torch.nn.Module, ids: np.ndarray, seq_len: int, batch_size: int = 16) -> float:
    """Negative log2-likelihood per predicted byte over consecutive windows of `seq_len + 1` bytes.

    Each window predicts its last `seq_len` bytes from the ones before it inside the window; the bytes
    predicted are counted exactly once (the first byte of each window is context only).
    """
    import torch

    windows = [ids[start : start + seq_len + 1] for start in range(0, len(ids) - 1, seq_len)]
    windows = [window for window in windows if len(window) > 1]
    if not windows:
        raise ValueError("a target needs at least two bytes")
    model.eval()
    nats, predicted = 0.0, 0
    with torch.no_grad():
        for length in sorted({len(window) for window in windows}):
            same = [window for window in windows if len(window) == length]
            for start in range(0, len(same), batch_size):
                batch = torch.as_tensor(np.stack(same[start : start + batch_size]))
                logits = model(input_ids=batch[:, :-1]).logits.float()
                nats += float(
                    torch.nn.functional.cross_entropy(
                        logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1), reduction="sum"
                    )
                )
                predicted += batch[:, 1:].numel()
    return nats / math.log(2) / predicted


def _learning_rate(step: int, config: ProxyConfig) -> float:
    """Linear warm-up then cosine decay to a tenth, as a function of the step alone (resumable)."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return config.learning_rate * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def _eval_steps(config: ProxyConfig) -> set[int]:
    return {round(config.steps * (i + 1) / config.eval_points) for i in range(config.eval_points)}


def checkpoint_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer, step: int, curve: list) -> bytes:
    """Weights, AdamW moments and step counters as safetensors bytes; the step and curve in its metadata."""
    import torch
    from safetensors.torch import save as save_tensors

    tensors = {f"model.{name}": value.detach().clone() for name, value in model.state_dict().items()}
    names = dict(model.named_parameters())
    for name, param in names.items():
        state = optimizer.state.get(param)
        if state:
            tensors[f"adam_m.{name}"] = state["exp_avg"]
            tensors[f"adam_v.{name}"] = state["exp_avg_sq"]
            tensors[f"adam_step.{name}"] = torch.as_tensor(state["step"], dtype=torch.float32).reshape(1)
    meta = {CHECKPOINT_META: json.dumps({"step": step, "curve": curve})}
    return save_tensors(tensors, metadata=meta)


def restore_checkpoint(payload: bytes, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> tuple[int, list]:
    """Load `checkpoint_bytes` into the model and optimizer; the step reached and the curve so far."""
    from safetensors.torch import load as load_tensors

    tensors = load_tensors(payload)
    model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")})
    for name, param in model.named_parameters():
        if f"adam_m.{name}" in tensors:
            optimizer.state[param] = {
                "step": tensors[f"adam_step.{name}"].reshape(()).clone(),
                "exp_avg": tensors[f"adam_m.{name}"].clone(),
                "exp_avg_sq": tensors[f"adam_v.{name}"].clone(),
            }
    meta = _metadata(payload)
    return int(meta["step"]), list(meta["curve"])


def _metadata(payload: bytes) -> dict:
    """The JSON metadata of safetensors bytes (header: 8-byte length, then JSON)."""
    length = int.from_bytes(payload[:8], "little")
    header = json.loads(payload[8 : 8 + length])
    return json.loads(header["__metadata__"][CHECKPOINT_META])


def evaluate(model: torch.nn.Module, targets: Mapping[str, np.ndarray], seq_len: int) -> dict[str, float]:
    """Bits per byte of the model on each target set."""
    return {name: bits_per_byte(model, ids, seq_len) for name, ids in targets.items()}


def train_proxy(
    stream: np.ndarray,
    targets: Mapping[str, np.ndarray],
    config: ProxyConfig,
    *,
    load_checkpoint: Callable[[], bytes | None] = lambda: None,
    save_checkpoint: Callable[[bytes], None] = lambda payload: None,
    log: Callable[[str], None] | None = None,
) -> ProxyResult:
    """Train a proxy from scratch on `stream` (`encode_documents`) for `config.steps` steps, resuming from
    `load_checkpoint()` when it returns one; evaluated on `targets` along the way and at the end."""
    import torch

    if len(stream) < config.seq_len + 1:
        stream = np.resize(stream, config.seq_len + 1)  # a tiny selection is repeated to fill one window
    starts = window_starts(len(stream), config)
    tokens = torch.as_tensor(stream)
    offsets = torch.arange(config.seq_len + 1)
    model = build_model(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.0)
    payload = load_checkpoint()
    step, curve = restore_checkpoint(payload, model, optimizer) if payload else (0, [])
    resumed_from, started, evals = step, time.perf_counter(), _eval_steps(config)
    model.train()
    while step < config.steps:
        batch = tokens[torch.as_tensor(starts[step])[:, None] + offsets]
        for group in optimizer.param_groups:
            group["lr"] = _learning_rate(step, config)
        loss = _loss(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step in evals:
            point = {
                "step": step,
                "tokens": step * config.batch_size * config.seq_len,
                "train_loss": float(loss.detach()),
            }
            point.update({f"bpb_{name}": value for name, value in evaluate(model, targets, config.seq_len).items()})
            curve.append(point)
            model.train()
            if log:
                log(
                    f"step {step}/{config.steps}: " + ", ".join(f"{k} {v:.4f}" for k, v in point.items() if k != "step")
                )
        if step % config.checkpoint_every == 0 or step == config.steps:
            save_checkpoint(checkpoint_bytes(model, optimizer, step, curve))
    final = {name: curve[-1][f"bpb_{name}"] for name in targets} if curve else evaluate(model, targets, config.seq_len)
    model.eval()
    trained_steps = config.steps - resumed_from
    return ProxyResult(
        model=model,
        config=config,
        bits_per_byte=final,
        curve=curve,
        tokens_trained=config.steps * config.batch_size * config.seq_len,
        train_seconds=time.perf_counter() - started if trained_steps else 0.0,
        resumed_from_step=resumed_from,
    )


def _loss(model: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-byte cross-entropy (nats) of a batch of windows."""
    import torch

    logits = model(input_ids=batch[:, :-1]).logits
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1))


def model_files(result: ProxyResult) -> dict[str, bytes]:
    """The trained proxy as store files: weights (safetensors), config and curve (JSON)."""
    from safetensors.torch import save as save_tensors

    weights = save_tensors({name: value.detach().clone() for name, value in result.model.state_dict().items()})
    summary = {"config": asdict(result.config), "bits_per_byte": result.bits_per_byte, "curve": result.curve}
    return {"model.safetensors": weights, "proxy.json": json.dumps(summary, indent=2, sort_keys=True).encode()}


def load_proxy(files: Mapping[str, bytes]) -> torch.nn.Module:
    """Rebuild a proxy from `model_files` (strict: every weight must match the stored config)."""
    from safetensors.torch import load as load_tensors

    summary = json.loads(files["proxy.json"])
    model = build_model(ProxyConfig(**summary["config"]))
    model.load_state_dict(load_tensors(files["model.safetensors"]), strict=True)
    model.eval()
    return model


@dataclass(frozen=True)
class CheckpointIO:
    """Where one proxy run keeps its resumable checkpoint: read (None if none) and write callables."""

    load: Callable[[], bytes | None]
    save: Callable[[bytes], None]


def train_seeds(
    texts: Sequence[str],
    targets: Mapping[str, str],
    config: ProxyConfig,
    seeds: Sequence[int],
    checkpoints: Callable[[int], CheckpointIO],
    log: Callable[[str], None] | None = None,
) -> list[ProxyResult]:
    """One proxy per seed on the same documents (init and windows differ by seed), each resumable."""
    stream, encoded = encode_documents(texts), {name: encode_text(text) for name, text in targets.items()}
    results = []
    for seed in seeds:
        io = checkpoints(seed)
        seeded = ProxyConfig(**{**asdict(config), "seed": seed})
        results.append(train_proxy(stream, encoded, seeded, load_checkpoint=io.load, save_checkpoint=io.save, log=log))
    return results
