"""Per-expert weight, gradient and Adam second-moment norms on a calibration batch, and their utilities."""

from __future__ import annotations

from typing import TYPE_CHECKING

import polars as pl

from ops.common.threads import torch_threads
from ops.moe.selection import FISHER_EPS, utility_scores
from training.moe.model import Checkpoint, expert_keys

if TYPE_CHECKING:
    import torch

UTILITY_SCHEMA: dict[str, pl.DataType] = {
    "layer": pl.Int64,
    "expert": pl.Int64,
    "fc": pl.String,
    "grad_norm": pl.Float64,
    "v_norm": pl.Float64,
    "weight_norm": pl.Float64,
    "saliency": pl.Float64,
    "grad_sq": pl.Float64,
    "fisher": pl.Float64,
}


def calibration_gradients(checkpoint: Checkpoint, batches: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Mean gradient of the language-modelling loss over the batches, by parameter name."""
    import torch.nn.functional as F

    if not batches:
        raise ValueError("expert utilities need at least one calibration batch")
    model = checkpoint.model()
    model.zero_grad(set_to_none=True)
    for batch in batches:
        logits = model(input_ids=batch).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        (loss / len(batches)).backward()
    return {name: param.grad.detach().clone() for name, param in model.named_parameters() if param.grad is not None}


def expert_utilities(checkpoint: Checkpoint, batches: list[torch.Tensor], eps: float = FISHER_EPS) -> pl.DataFrame:
    """One row per (layer, expert, FC matrix) with the norms and the four utilities.

    An expert no calibration token was routed to has a zero gradient (utility 0 except its weight norm).
    """
    import torch

    if not checkpoint.exp_avg_sq:
        raise ValueError("the checkpoint carries no Adam second moment: the Fisher utility needs it")
    with torch_threads(1):  # a tiny model: one thread beats two contending ones on a shared CPU
        grads = calibration_gradients(checkpoint, batches)
    rows = []
    for layer in range(checkpoint.config.num_hidden_layers):
        for fc, key in zip(("fc1", "fc2"), expert_keys(layer)[:2], strict=True):
            weight, v = checkpoint.weights[key], checkpoint.exp_avg_sq[key]
            grad = grads.get(key, torch.zeros_like(weight))
            for expert in range(weight.shape[0]):
                norms = [float(t[expert].double().norm()) for t in (weight, grad, v)]
                rows.append(
                    {
                        "layer": layer,
                        "expert": expert,
                        "fc": fc,
                        "grad_norm": norms[1],
                        "v_norm": norms[2],
                        **utility_scores(*norms, eps=eps),
                    }
                )
    return pl.DataFrame(rows, schema=UTILITY_SCHEMA)
