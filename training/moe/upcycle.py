"""The upcycling operator E -> mE on a checkpoint, and how far its output moves from the source's.

Every new expert is a copy of a source expert's fused FC1 (gate+up) and FC2 (down) weights with their
Adam moments; the router gets one row per new expert, copied from the source's row. Hugging Face
routers have no bias, so the paper's "bias noise" is applied to the copied rows instead: replica
rows get Gaussian noise of `router_noise` times the source row's RMS (the original keeps its row).
Top-K is held. With top-1 routing (and Mixtral's renormalised top-K weights) the copy is exactly
function-preserving before the noise; with top-K > 1 it is not, because top-K can pick two copies of
one expert instead of two distinct experts; `preservation` measures both.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ops.common.threads import torch_threads
from ops.moe.selection import check_expansion
from training.moe.model import ArchitectureError, Checkpoint, expert_keys

if TYPE_CHECKING:
    import torch


def upcycle(checkpoint: Checkpoint, sources: Sequence[Sequence[int]], router_noise: float, seed: int) -> Checkpoint:
    """The mE-expert checkpoint whose expert j of layer l is a copy of source expert `sources[l][j]`."""
    import torch

    config = checkpoint.config
    experts, layers = config.num_local_experts, config.num_hidden_layers
    if len(sources) != layers:
        raise ArchitectureError(f"sources name {len(sources)} layers, the checkpoint has {layers}")
    total = len(sources[0])
    if total % experts:
        raise ValueError(f"mE={total} is not a multiple of E={experts}")
    check_expansion(experts, config.num_experts_per_tok, total // experts)
    generator = torch.Generator().manual_seed(seed)
    weights, exp_avg, exp_avg_sq = dict(checkpoint.weights), dict(checkpoint.exp_avg), dict(checkpoint.exp_avg_sq)
    for layer, layer_sources in enumerate(sources):
        _check_sources(layer, layer_sources, experts, total)
        index = torch.tensor(list(layer_sources))
        for key in expert_keys(layer):
            weights[key] = checkpoint.weights[key].index_select(0, index).clone()
            for moments in (exp_avg, exp_avg_sq):
                if key in moments:
                    moments[key] = moments[key].index_select(0, index).clone()
        router = weights[expert_keys(layer)[2]]
        rms = router[experts:].pow(2).mean(dim=1, keepdim=True).sqrt()
        noise = torch.randn(router[experts:].shape, generator=generator, dtype=router.dtype)
        router[experts:] += router_noise * rms * noise
    new_config = copy.deepcopy(config)
    new_config.num_local_experts = total
    meta = {**checkpoint.optimizer_meta, "upcycled_from_experts": experts, "router_noise": router_noise}
    return Checkpoint(new_config, weights, exp_avg, exp_avg_sq, checkpoint.step, meta)


def _check_sources(layer: int, layer_sources: Sequence[int], experts: int, total: int) -> None:
    if len(layer_sources) != total:
        raise ValueError(f"layer {layer} names {len(layer_sources)} experts, layer 0 names {total}")
    if list(layer_sources[:experts]) != list(range(experts)):
        raise ValueError(f"layer {layer}: the first E={experts} experts must be the originals in order")
    if any(not 0 <= source < experts for source in layer_sources):
        raise ValueError(f"layer {layer}: source experts must be in [0, {experts}), got {list(layer_sources)}")


def without_router_noise(upcycled: Checkpoint, sources: Sequence[Sequence[int]]) -> Checkpoint:
    """The upcycled checkpoint with every replica's router row reset to its source row exactly."""
    import torch

    weights = dict(upcycled.weights)
    for layer, layer_sources in enumerate(sources):
        key = expert_keys(layer)[2]
        weights[key] = weights[key].index_select(0, torch.tensor(list(layer_sources))).clone()
    return Checkpoint(
        upcycled.config, weights, upcycled.exp_avg, upcycled.exp_avg_sq, upcycled.step, upcycled.optimizer_meta
    )


@dataclass(frozen=True)
class Preservation:
    """How far the upcycled model's output is from the source's on one batch."""

    top1_exact_max_abs_diff: float  # top-1 routing, noise removed: must be ~0 (float round-off)
    top1_noisy_max_abs_diff: float  # top-1 routing, with the router noise
    topk_max_abs_diff: float  # the held top-K, with the noise
    source_loss: float
    upcycled_loss: float
    top1_source_loss: float
    top1_upcycled_loss: float


def _with_top_k(checkpoint: Checkpoint, top_k: int) -> torch.nn.Module:
    config = copy.deepcopy(checkpoint.config)
    config.num_experts_per_tok = top_k
    return Checkpoint(config, checkpoint.weights, {}, {}, 0, {}).model()


def _logits_and_loss(model: torch.nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, float]:
    import torch

    with torch.no_grad(), torch_threads(1):  # a tiny model: one thread beats two contending ones on a shared CPU
        output = model(input_ids=batch, labels=batch)
    return output.logits, float(output.loss)


def preservation(
    source: Checkpoint, upcycled: Checkpoint, sources: Sequence[Sequence[int]], batch: torch.Tensor
) -> Preservation:
    """Compare source and upcycled models on `batch` (token ids, shape batch x length)."""
    top_k = source.config.num_experts_per_tok
    logits, loss = _logits_and_loss(_with_top_k(source, top_k), batch)
    up_logits, up_loss = _logits_and_loss(_with_top_k(upcycled, top_k), batch)
    top1, top1_loss = _logits_and_loss(_with_top_k(source, 1), batch)
    exact, _ = _logits_and_loss(_with_top_k(without_router_noise(upcycled, sources), 1), batch)
    noisy, noisy_loss = _logits_and_loss(_with_top_k(upcycled, 1), batch)
    return Preservation(
        top1_exact_max_abs_diff=float((exact - top1).abs().max()),
        top1_noisy_max_abs_diff=float((noisy - top1).abs().max()),
        topk_max_abs_diff=float((up_logits - logits).abs().max()),
        source_loss=loss,
        upcycled_loss=up_loss,
        top1_source_loss=top1_loss,
        top1_upcycled_loss=noisy_loss,
    )


def copy_invariants(base: Checkpoint, upcycled: Checkpoint, sources: Sequence[Sequence[int]]) -> dict[str, bool]:
    """What the operator promises, checked tensor by tensor: mE experts in every expert tensor, top-K
    and the Adam step kept, each expert's weights and Adam moments equal to its source's, and each
    router row equal to its source's up to the noise (originals exactly)."""
    import torch

    experts, total = base.config.num_local_experts, len(sources[0])
    shapes, weights, moments, originals = True, True, True, True
    for layer, layer_sources in enumerate(sources):
        index = torch.tensor(list(layer_sources))
        fc1, fc2, router = expert_keys(layer)
        for key in (fc1, fc2, router):
            shapes &= upcycled.weights[key].shape[0] == total
            shapes &= upcycled.weights[key].shape[1:] == base.weights[key].shape[1:]
        for key in (fc1, fc2):
            weights &= torch.equal(upcycled.weights[key], base.weights[key].index_select(0, index))
        for key in (fc1, fc2, router):
            for ours, theirs in ((upcycled.exp_avg, base.exp_avg), (upcycled.exp_avg_sq, base.exp_avg_sq)):
                moments &= torch.equal(ours[key], theirs[key].index_select(0, index))
        originals &= torch.equal(upcycled.weights[router][:experts], base.weights[router])
    return {
        "every expert tensor has mE rows": bool(shapes) and upcycled.config.num_local_experts == total,
        "top-K held": upcycled.config.num_experts_per_tok == base.config.num_experts_per_tok,
        "expert weights equal their source's": bool(weights),
        "Adam moments copied with their expert (and router row)": bool(moments),
        "Adam step kept": upcycled.step == base.step,
        "original router rows unchanged": bool(originals),
    }
