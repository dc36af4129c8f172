"""Adam training of the MoE to a fixed token budget, resumable from its last on-disk checkpoint.

Batches are a pure function of (seed, step): a run killed at any point and restarted from its last
checkpoint (weights, Adam moments, step, history) sees the same data and ends with the same weights
as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from ops.common.threads import torch_threads
from ops.moe.report import CURVE_SCHEMA
from ops.moe.selection import original_experts
from training.moe.model import (
    Checkpoint,
    capture,
    checkpoint_files,
    expert_keys,
    load_checkpoint,
    new_model,
    restore_optimizer,
)

if TYPE_CHECKING:
    import torch
    from transformers import MixtralConfig

HISTORY_FILE = "history.json"
_CHECKPOINT_PREFIX = "ckpt-"


@dataclass(frozen=True)
class TrainSettings:
    """Token budget and optimiser settings of one training run."""

    tokens: int
    batch_size: int = 8
    lr: float = 3e-3
    warmup_steps: int = 0
    eval_every: int = 20
    eval_windows: int = 16
    checkpoint_every: int = 25
    seed: int = 0
    # Torch threads while this run trains (restored afterwards): one thread is fastest for the tiny
    # local model on a shared, oversubscribed CPU, where spinning worker threads stall each other.
    threads: int = 1

    def steps(self, seq_len: int) -> int:
        """Optimizer steps that spend the token budget."""
        if self.tokens <= 0:
            raise ValueError(f"token budget must be > 0, got {self.tokens}")
        return math.ceil(self.tokens / (self.batch_size * seq_len))


@dataclass(frozen=True)
class EvalPoint:
    """Validation figures at one point of training (tokens counted from the run's `token_offset`)."""

    step: int
    tokens: int
    train_loss: float
    val_loss: float
    load_entropy: float
    duplicate_cosine: float


@dataclass
class TrainResult:
    """The final checkpoint, the curve, the last expert loads and how the run started."""

    checkpoint: Checkpoint
    history: list[EvalPoint]
    expert_load: list[list[float]]
    resumed_from_step: int
    tokens_per_second: float
    extra: dict = field(default_factory=dict)


def batch_at(stream: np.ndarray, step: int, batch_size: int, seq_len: int, seed: int) -> torch.Tensor:
    """The training batch of a step: random windows of the stream, fixed by (seed, step)."""
    import torch

    if len(stream) <= seq_len:
        raise ValueError(f"training stream has {len(stream)} tokens, fewer than one window of {seq_len + 1}")
    starts = np.random.default_rng([seed, step]).integers(0, len(stream) - seq_len, size=batch_size)
    return torch.from_numpy(np.stack([stream[s : s + seq_len] for s in starts]).astype(np.int64))


def validation_windows(stream: np.ndarray, seq_len: int, count: int) -> torch.Tensor:
    """Up to `count` consecutive non-overlapping windows from the start of the validation stream."""
    import torch

    available = len(stream) // seq_len
    if available == 0:
        raise ValueError(f"validation stream has {len(stream)} tokens, fewer than one window of {seq_len}")
    n = min(count, available)
    return torch.from_numpy(np.asarray(stream[: n * seq_len], dtype=np.int64).reshape(n, seq_len))


def duplicate_cosine(model: torch.nn.Module, sources: Sequence[Sequence[int]] | None) -> float:
    """Mean cosine between each duplicated expert's weights and its source's (1.0 right after copying)."""
    import torch
    import torch.nn.functional as F

    if not sources:
        return float("nan")
    state, values = model.state_dict(), []
    experts = original_experts(sources[0])
    for layer, layer_sources in enumerate(sources):
        fc1, fc2, _ = expert_keys(layer)
        flat = torch.cat([state[fc1].flatten(1), state[fc2].flatten(1)], dim=1)
        for replica in range(experts, len(layer_sources)):
            values.append(float(F.cosine_similarity(flat[replica], flat[layer_sources[replica]], dim=0)))
    return float(np.mean(values)) if values else float("nan")


def evaluate(model: torch.nn.Module, windows: torch.Tensor) -> tuple[float, list[list[float]]]:
    """Validation cross-entropy and, per layer, the share of top-K assignments each expert received."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad():  # the outputs carry no graph, so nothing below builds one either
        output = model(input_ids=windows, output_router_logits=True)
    logits = output.logits[:, :-1].reshape(-1, output.logits.shape[-1])
    loss = float(F.cross_entropy(logits.float(), windows[:, 1:].reshape(-1)))
    top_k, experts = model.config.num_experts_per_tok, model.config.num_local_experts
    loads = []
    for router_logits in output.router_logits:
        chosen = torch.topk(router_logits.float().softmax(-1), top_k, dim=-1).indices.flatten()
        counts = torch.bincount(chosen, minlength=experts).double()
        loads.append((counts / counts.sum()).tolist())
    return loss, loads


def load_entropy(loads: Sequence[Sequence[float]]) -> float:
    """Mean over layers of the entropy of the expert load, normalised by log(experts) (1 = balanced)."""
    values = []
    for load in loads:
        p = np.asarray(load, dtype=np.float64)
        p = p[p > 0]
        values.append(float(-(p * np.log(p)).sum() / math.log(len(load))) if len(load) > 1 else 1.0)
    return float(np.mean(values))


def _latest_checkpoint(work_dir: Path) -> Path | None:
    done = sorted(p for p in work_dir.glob(f"{_CHECKPOINT_PREFIX}*") if (p / HISTORY_FILE).exists())
    return done[-1] if done else None


def _save_progress(work_dir: Path, checkpoint: Checkpoint, history: list[EvalPoint], step: int) -> None:
    """Write a checkpoint folder atomically (hidden folder renamed into place), keep only the newest."""
    final = work_dir / f"{_CHECKPOINT_PREFIX}{step:08d}"
    staging = work_dir / f".{final.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name, payload in checkpoint_files(checkpoint).items():
        (staging / name).write_bytes(payload)
    (staging / HISTORY_FILE).write_text(json.dumps({"step": step, "history": [asdict(p) for p in history]}))
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    for older in work_dir.glob(f"{_CHECKPOINT_PREFIX}*"):
        if older != final:
            shutil.rmtree(older, ignore_errors=True)


def _resume(work_dir: Path | None) -> tuple[Checkpoint, list[EvalPoint], int] | None:
    latest = _latest_checkpoint(work_dir) if work_dir is not None and work_dir.exists() else None
    if latest is None:
        return None
    files = {p.name: p.read_bytes() for p in latest.iterdir() if p.is_file()}
    progress = json.loads(files.pop(HISTORY_FILE))
    return load_checkpoint(files), [EvalPoint(**p) for p in progress["history"]], int(progress["step"])


def train(
    start: Checkpoint,
    train_stream: np.ndarray,
    val_stream: np.ndarray,
    settings: TrainSettings,
    work_dir: Path | None = None,
    *,
    token_offset: int = 0,
    sources: Sequence[Sequence[int]] | None = None,
    on_eval: Callable[[EvalPoint], None] | None = None,
) -> TrainResult:
    """Train `start` (with its Adam moments, if any) for the budget; resume from `work_dir` if it holds progress."""
    with torch_threads(settings.threads):
        return _train(start, train_stream, val_stream, settings, work_dir, token_offset, sources, on_eval)


def _train(
    start: Checkpoint,
    train_stream: np.ndarray,
    val_stream: np.ndarray,
    settings: TrainSettings,
    work_dir: Path | None,
    token_offset: int,
    sources: Sequence[Sequence[int]] | None,
    on_eval: Callable[[EvalPoint], None] | None,
) -> TrainResult:
    import torch
    import torch.nn.functional as F

    seq_len = start.config.max_position_embeddings
    steps = settings.steps(seq_len)
    resumed = _resume(work_dir)
    checkpoint, history, first_step = resumed if resumed is not None else (start, [], 0)
    model = checkpoint.model()
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, betas=(0.9, 0.95))
    restore_optimizer(model, optimizer, checkpoint)
    windows = validation_windows(val_stream, seq_len, settings.eval_windows)
    tokens_per_step = settings.batch_size * seq_len

    def progress_meta(step: int) -> dict:
        return {**start.optimizer_meta, "tokens": token_offset + step * tokens_per_step}

    def record(step: int, train_loss: float) -> None:
        val_loss, loads = evaluate(model.eval(), windows)
        point = EvalPoint(
            step,
            token_offset + step * tokens_per_step,
            train_loss,
            val_loss,
            load_entropy(loads),
            duplicate_cosine(model, sources),
        )
        history.append(point)
        if on_eval is not None:
            on_eval(point)

    if not history:
        record(0, float("nan"))
    started = time.perf_counter()
    for step in range(first_step, steps):
        model.train()
        warmup = min(1.0, (step + 1) / settings.warmup_steps) if settings.warmup_steps else 1.0
        for group in optimizer.param_groups:
            group["lr"] = settings.lr * warmup
        batch = batch_at(train_stream, step, settings.batch_size, seq_len, settings.seed)
        output = model(input_ids=batch, output_router_logits=True)
        ce = F.cross_entropy(output.logits[:, :-1].reshape(-1, output.logits.shape[-1]), batch[:, 1:].reshape(-1))
        loss = ce + model.config.router_aux_loss_coef * output.aux_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done = step + 1
        if done % settings.eval_every == 0 or done == steps:
            record(done, float(ce.detach()))
        if work_dir is not None and (done % settings.checkpoint_every == 0 or done == steps):
            _save_progress(work_dir, capture(model, optimizer, progress_meta(done)), history, done)
    elapsed = time.perf_counter() - started
    _, loads = evaluate(model.eval(), windows)
    return TrainResult(
        checkpoint=capture(model, optimizer, progress_meta(steps)),
        history=history,
        expert_load=loads,
        resumed_from_step=first_step,
        tokens_per_second=(steps - first_step) * tokens_per_step / elapsed
        if elapsed > 0 and steps > first_step
        else 0.0,
    )


def fresh_checkpoint(config: MixtralConfig, seed: int) -> Checkpoint:
    """A randomly initialised model of a config, with no optimizer state yet."""
    return capture(new_model(config, seed), None, {"tokens": 0})


def curve_frame(history: Sequence[EvalPoint], run: str) -> pl.DataFrame:
    """A run's evaluations as a frame of `CURVE_SCHEMA`."""
    return pl.DataFrame([{"run": run, **asdict(point)} for point in history], schema=CURVE_SCHEMA)
