"""A reward function that never breaks training and never hides a failure.

TRL calls a reward as `fn(prompts=..., completions=..., completion_ids=..., **dataset_columns)` and
expects one float per completion. `SafeReward` wraps such a callable (e.g.
`ops.tooluse.reward.tool_reward`): when the batch call raises, each completion is scored alone, so one
bad sample costs only itself; a sample whose call raises, or whose score is None, NaN or infinite, scores
0.0 and is counted in `stats` (per step, with the first error messages) instead of being passed on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

RewardFn = Callable[..., Sequence[float | None]]
_MAX_MESSAGES = 5


@dataclass
class RewardStats:
    """Counts of one reward's samples: scored, raised, returned None/NaN/inf; and the first messages."""

    scored: int = 0
    raised: int = 0
    invalid: int = 0
    messages: list[str] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.raised + self.invalid

    def note(self, message: str) -> None:
        if len(self.messages) < _MAX_MESSAGES:
            self.messages.append(message)


def _valid(value: Any) -> float | None:
    """The score as a finite float, or None when it is None, NaN, infinite or not a number."""
    if value is None:
        return None
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if math.isfinite(score) else None


def _sample_kwargs(kwargs: dict[str, Any], index: int, size: int) -> dict[str, Any]:
    """The keyword arguments of one sample: list columns of the batch's length are cut to that sample."""
    return {
        key: [value[index]] if isinstance(value, list) and len(value) == size else value
        for key, value in kwargs.items()
    }


class SafeReward:
    """Wrap a TRL-style reward callable: failures score 0.0 and are counted in `stats`, never silent.

    `__name__` is the wrapped function's name, which TRL uses for its `rewards/<name>/mean` metric.
    """

    def __init__(self, fn: RewardFn, name: str | None = None) -> None:
        self.fn = fn
        self.__name__ = name or getattr(fn, "__name__", type(fn).__name__)
        self.stats = RewardStats()

    def _score_one(self, kwargs: dict[str, Any], index: int, size: int) -> float:
        try:
            values = list(self.fn(**_sample_kwargs(kwargs, index, size)))
        except Exception as exc:  # a reward bug must cost one sample, not the run
            self.stats.raised += 1
            self.stats.note(f"sample {index}: {type(exc).__name__}: {exc}")
            return 0.0
        return self._checked(values[0] if len(values) == 1 else None, index)

    def _checked(self, value: Any, index: int) -> float:
        score = _valid(value)
        if score is None:
            self.stats.invalid += 1
            self.stats.note(f"sample {index}: reward returned {value!r}")
            return 0.0
        self.stats.scored += 1
        return score

    def __call__(self, **kwargs: Any) -> list[float]:
        size = len(kwargs["completions"])
        try:
            values = list(self.fn(**kwargs))
        except Exception:
            return [self._score_one(kwargs, index, size) for index in range(size)]
        if len(values) != size:
            raise ValueError(f"reward {self.__name__} returned {len(values)} scores for {size} completions")
        return [self._checked(value, index) for index, value in enumerate(values)]
