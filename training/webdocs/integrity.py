"""Is a stored student usable? It loads from its files, and its weights and training metrics are finite.

Each function returns the problems it found (empty = sound), so a blocking asset check can list them.
The generative student is checked without its base model: its adapter weights and metrics are
read, the base (the packaged SmolLM2, referenced, not stored) is not loaded again in a check.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from training.webdocs.generative_student import ADAPTER_CONFIG, ADAPTER_WEIGHTS, STUDENT_CONFIG

if TYPE_CHECKING:
    import torch

    from training.webdocs.mlp_filter import TrainedClassifier

STUDENT_KINDS = ("mlp_filter", "encoder_classifier", "distilled_classifier")


def non_finite_numbers(value: Any, path: str = "") -> list[str]:
    """Paths of every NaN or infinite number inside nested dicts and lists."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [] if math.isfinite(value) else [path or "value"]
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in non_finite_numbers(item, f"{path}.{key}".lstrip("."))]
    if isinstance(value, list | tuple):
        return [p for index, item in enumerate(value) for p in non_finite_numbers(item, f"{path}[{index}]")]
    return []


def non_finite_tensors(tensors: Iterable[tuple[str, torch.Tensor]]) -> list[str]:
    """Names of the tensors holding a NaN or an infinity."""
    import torch

    return [name for name, tensor in tensors if tensor.is_floating_point() and not torch.isfinite(tensor).all()]


def _classifier_problems(trained: TrainedClassifier) -> list[str]:
    problems = [f"weight {name} is not finite" for name in non_finite_tensors(trained.model.state_dict().items())]
    history = [asdict(metrics) for metrics in trained.history]
    problems += [f"training metric {path} is not finite" for path in non_finite_numbers(history, "history")]
    if not history:
        problems.append("no training epoch recorded")
    return problems


def _generative_problems(files: Mapping[str, bytes]) -> list[str]:
    from safetensors.torch import load as load_safetensors

    student = json.loads(files[STUDENT_CONFIG])
    json.loads(files[ADAPTER_CONFIG])
    weights = load_safetensors(files[ADAPTER_WEIGHTS])
    problems = [f"adapter weight {name} is not finite" for name in non_finite_tensors(weights.items())]
    if not weights:
        problems.append("the adapter has no weights")
    problems += [f"training metric {p} is not finite" for p in non_finite_numbers(student["metrics"], "metrics")]
    if not student["metrics"]:
        problems.append("no training epoch recorded")
    return problems


def _mlp_problems(files: Mapping[str, bytes]) -> list[str]:
    # the torch student modules are imported here, not at module level: loading the code location skips torch
    from training.webdocs.mlp_filter import load_mlp

    return _classifier_problems(load_mlp(files))


def _encoder_problems(files: Mapping[str, bytes]) -> list[str]:
    from training.webdocs.encoder_student import load_encoder

    return _classifier_problems(load_encoder(files))


_CHECKERS: dict[str, Callable[[Mapping[str, bytes]], list[str]]] = {
    "mlp_filter": _mlp_problems,
    "encoder_classifier": _encoder_problems,
    "distilled_classifier": _generative_problems,
}


def student_problems(kind: str, files: Mapping[str, bytes]) -> list[str]:
    """What is wrong with a stored student of `kind` (one of `STUDENT_KINDS`); a load failure is one problem."""
    if kind not in _CHECKERS:
        raise ValueError(f"unknown student kind {kind!r}; expected one of {STUDENT_KINDS}")
    try:
        return _CHECKERS[kind](files)
    except KeyError as error:
        return [f"does not load: file {error} is missing"]
    except Exception as error:
        return [f"does not load: {type(error).__name__}: {error}"]
