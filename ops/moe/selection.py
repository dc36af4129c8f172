"""Utility scores of experts and the choice of which experts the upcycling operator duplicates.

Formulas of paper 8 (re-implemented from the papers notes): per expert and FC matrix W with
gradient g on a calibration batch and Adam second moment v,

    weight_norm = ||W||,   saliency = ||W|| * ||g||,   grad_sq = ||g||^2,
    fisher      = ||g||^2 / (||v|| + eps)        (approximate Fisher information)

FC1 (the fused gate+up projection) and FC2 (down) scores are combined by a rule: `fc1` alone (the
reference code's default), or, after normalizing each FC's scores to sum 1 over the layer's experts,
their `mean`, `product`, `max` or `min`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

METRICS = ("weight_norm", "saliency", "grad_sq", "fisher")
COMBINE_RULES = ("fc1", "mean", "product", "max", "min")
SELECTIONS = ("uniform", "greedy", "softmax")
FISHER_EPS = 1e-8
MAX_DUPLICATES = 3


def utility_scores(weight_norm: float, grad_norm: float, v_norm: float, eps: float = FISHER_EPS) -> dict[str, float]:
    """The four utilities of one FC matrix from its weight, gradient and second-moment norms."""
    return {
        "weight_norm": weight_norm,
        "saliency": weight_norm * grad_norm,
        "grad_sq": grad_norm**2,
        "fisher": grad_norm**2 / (v_norm + eps),
    }


def _normalized(scores: Sequence[float]) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else np.full(len(values), 1.0 / len(values))


def combine(fc1: Sequence[float], fc2: Sequence[float], rule: str) -> list[float]:
    """One score per expert from its FC1 and FC2 scores (see the module docstring)."""
    if rule not in COMBINE_RULES:
        raise ValueError(f"combine rule must be one of {COMBINE_RULES}, got {rule!r}")
    if len(fc1) != len(fc2):
        raise ValueError(f"FC1 has {len(fc1)} expert scores, FC2 {len(fc2)}")
    if rule == "fc1":
        return [float(value) for value in fc1]
    a, b = _normalized(fc1), _normalized(fc2)
    combined = {"mean": (a + b) / 2, "product": a * b, "max": np.maximum(a, b), "min": np.minimum(a, b)}[rule]
    return combined.tolist()


@dataclass(frozen=True)
class Strategy:
    """How to pick duplicates: `uniform`, or `greedy`/`softmax` over one utility metric."""

    selection: str
    metric: str | None = None

    @property
    def key(self) -> str:
        """The strategy's partition key, e.g. `greedy-fisher`."""
        return self.selection if self.metric is None else f"{self.selection}-{self.metric}"


def parse_strategy(key: str) -> Strategy:
    """A strategy from its key (`uniform`, `greedy-<metric>`, `softmax-<metric>`)."""
    selection, _, metric = key.partition("-")
    if selection == "uniform" and not metric:
        return Strategy("uniform")
    if selection in ("greedy", "softmax") and metric in METRICS:
        return Strategy(selection, metric)
    raise ValueError(
        f"unknown upcycling strategy {key!r}: use uniform, greedy-<metric> or softmax-<metric>, metrics {METRICS}"
    )


def check_expansion(experts: int, top_k: int, factor: object) -> int:
    """The expansion factor m as an int; refuses m that is not an integer >= 2 and top-K > E."""
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 2:
        raise ValueError(f"expansion factor m must be an integer >= 2, got m={factor!r}")
    if top_k > experts:
        raise ValueError(f"top-K={top_k} exceeds the number of experts E={experts}")
    return factor


def uniform_duplicates(experts: int, factor: int) -> list[int]:
    """Every expert copied m-1 times (E -> mE)."""
    return [factor - 1] * experts


def greedy_duplicates(scores: Sequence[float], factor: int, max_duplicates: int = MAX_DUPLICATES) -> list[int]:
    """(m-1)E duplicates given to the highest-scoring experts first, at most `max_duplicates` each."""
    experts = len(scores)
    _check_capacity(experts, factor, max_duplicates)
    counts = [0] * experts
    order = sorted(range(experts), key=lambda e: (-scores[e], e))
    remaining = (factor - 1) * experts
    for expert in order:
        counts[expert] = min(max_duplicates, remaining)
        remaining -= counts[expert]
    return counts


def softmax_duplicates(
    scores: Sequence[float], factor: int, temperature: float, seed: int, max_duplicates: int = MAX_DUPLICATES
) -> list[int]:
    """(m-1)E duplicates drawn one by one from softmax(score / T) (scores scaled to max 1) over the
    experts still under `max_duplicates`."""
    if temperature <= 0:
        raise ValueError(f"softmax temperature must be > 0, got {temperature}")
    experts = len(scores)
    _check_capacity(experts, factor, max_duplicates)
    values = np.asarray(scores, dtype=np.float64)
    scaled = values / values.max() if values.max() > 0 else values
    rng = np.random.default_rng(seed)
    counts = np.zeros(experts, dtype=int)
    for _ in range((factor - 1) * experts):
        logits = np.where(counts < max_duplicates, scaled / temperature, -np.inf)
        probs = np.exp(logits - logits.max())
        counts[rng.choice(experts, p=probs / probs.sum())] += 1
    return counts.tolist()


def _check_capacity(experts: int, factor: int, max_duplicates: int) -> None:
    if factor - 1 > max_duplicates:
        raise ValueError(
            f"m={factor} needs {(factor - 1) * experts} duplicates of E={experts} experts, more than "
            f"max_duplicates={max_duplicates} per expert allows"
        )


def expert_sources(duplicates: Sequence[int]) -> list[int]:
    """The source expert of each of the mE experts: the E originals keep their index, copies follow."""
    return list(range(len(duplicates))) + [e for e, count in enumerate(duplicates) for _ in range(count)]


def duplicates_for(
    strategy: Strategy, scores: Sequence[float] | None, experts: int, factor: int, temperature: float, seed: int
) -> list[int]:
    """Duplicates per expert of one layer for a strategy (scores are needed unless uniform)."""
    if strategy.selection == "uniform":
        return uniform_duplicates(experts, factor)
    if scores is None or len(scores) != experts or not all(math.isfinite(s) for s in scores):
        raise ValueError(f"strategy {strategy.key} needs {experts} finite expert scores, got {scores}")
    if strategy.selection == "greedy":
        return greedy_duplicates(scores, factor)
    return softmax_duplicates(scores, factor, temperature, seed)


def layer_scores(utilities: pl.DataFrame, metric: str, rule: str) -> list[list[float]]:
    """Per layer, one combined score per expert from the utilities table (layer, expert, fc, <metric>)."""
    if metric not in METRICS:
        raise ValueError(f"utility metric must be one of {METRICS}, got {metric!r}")
    scores = []
    for layer in sorted(utilities["layer"].unique().to_list()):
        rows = utilities.filter(pl.col("layer") == layer).sort("expert")
        fc1 = rows.filter(pl.col("fc") == "fc1")[metric].to_list()
        fc2 = rows.filter(pl.col("fc") == "fc2")[metric].to_list()
        scores.append(combine(fc1, fc2, rule))
    return scores


def plan_sources(
    strategy: Strategy,
    utilities: pl.DataFrame,
    factor: int,
    *,
    rule: str = "fc1",
    temperature: float = 0.5,
    seed: int = 0,
) -> list[list[int]]:
    """Per layer, the source expert of each of the mE experts under a strategy."""
    experts = utilities["expert"].n_unique()
    layers = utilities["layer"].n_unique()
    scores = layer_scores(utilities, strategy.metric, rule) if strategy.metric else [None] * layers
    return [
        expert_sources(duplicates_for(strategy, layer_score, experts, factor, temperature, seed + layer))
        for layer, layer_score in enumerate(scores)
    ]


def original_experts(layer_sources: Sequence[int]) -> int:
    """E, read from a layer's sources: the originals are the leading experts that are their own source."""
    return next((j for j, source in enumerate(layer_sources) if source != j), len(layer_sources))


def duplicate_counts(sources: Sequence[Sequence[int]]) -> list[list[int]]:
    """Per layer, how many duplicates each source expert received."""
    counts = []
    for layer_sources in sources:
        experts = original_experts(layer_sources)
        counts.append([list(layer_sources[experts:]).count(e) for e in range(experts)])
    return counts
