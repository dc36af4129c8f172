"""Group filters: which GRPO groups (one prompt's completions) carry a learning signal.

A group whose rewards are all equal has zero advantage everywhere: it adds no policy gradient, only
KL and noise (DAPO's "dynamic sampling" drops such groups; TRL has no such option, see its issues #3708
and #4764). A filter looks at the reward matrix of one generation batch, shape (groups, generations),
and returns which groups to keep. The trainer masks the dropped groups out of the loss and records how
many it dropped at every step.

Filters are small classes with one method, `keep`, so other domains extend them: QUBRIC's learnability
filter keeps groups whose mean reward is neither ~0 nor ~1 (`LearnabilityFilter`), Translate-R1's gate
can keep groups by any rule over their rewards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class GroupFilter(Protocol):
    """Decides, for a (groups, generations) reward matrix, which groups stay in the loss."""

    name: str

    def keep(self, rewards: np.ndarray) -> np.ndarray:
        """Boolean vector, one entry per group (row): True = the group is trained on."""
        ...


def _as_matrix(rewards: np.ndarray) -> np.ndarray:
    matrix = np.asarray(rewards, dtype=float)
    if matrix.ndim != 2 or matrix.shape[1] < 2:
        raise ValueError(f"rewards must be a (groups, generations>=2) matrix, got shape {matrix.shape}")
    return matrix


@dataclass(frozen=True)
class ZeroVarianceFilter:
    """Drop groups whose rewards are all equal (within `tolerance`): DAPO's dynamic sampling filter."""

    tolerance: float = 1e-6
    name: str = "zero_variance"

    def keep(self, rewards: np.ndarray) -> np.ndarray:
        matrix = _as_matrix(rewards)
        return (matrix.max(axis=1) - matrix.min(axis=1)) > self.tolerance


@dataclass(frozen=True)
class LearnabilityFilter:
    """Keep groups that vary and whose mean reward lies in [low, high]: neither solved nor hopeless."""

    low: float = 0.0
    high: float = 1.0
    tolerance: float = 1e-6
    name: str = "learnability"

    def keep(self, rewards: np.ndarray) -> np.ndarray:
        matrix = _as_matrix(rewards)
        mean = matrix.mean(axis=1)
        varies = ZeroVarianceFilter(self.tolerance).keep(matrix)
        return varies & (mean >= self.low) & (mean <= self.high)


def zero_variance_share(rewards: np.ndarray, tolerance: float = 1e-6) -> float:
    """Share of groups whose rewards are all equal (logged with and without a filter)."""
    matrix = _as_matrix(rewards)
    return float((~ZeroVarianceFilter(tolerance).keep(matrix)).mean()) if len(matrix) else 0.0
