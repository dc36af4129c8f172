"""PaCE-style sparse coding of activations over the concept dictionary, and removal of unsafe concepts.

The paper's objective per activation y (hidden size d) over the dictionary D ([d, concepts], columns
are unit-norm directions) is

    1/2 ||y - D c||^2 + alpha * (tau * ||c||_1 + (1 - tau)/2 * ||c||^2).

scikit-learn's `ElasticNet` minimises, over n_samples rows,

    1/(2 n_samples) ||y - X w||^2 + a * r * ||w||_1 + a * (1 - r)/2 * ||w||^2.

With X = D the rows are the d hidden dimensions (n_samples = d). Dividing the paper's objective by d
gives sklearn's form with a = alpha / d and r = tau: same minimiser. `sklearn_penalty` writes that
mapping down; the tests check it against a closed-form case. (PaCE's released code solves plain least
squares instead; the elastic net is the paper's stated objective, and the one used here.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_ALPHA, DEFAULT_TAU = 0.1, 0.9


@dataclass(frozen=True)
class ElasticNetSpec:
    """The paper's alpha (overall penalty) and tau (share of it on the L1 term)."""

    alpha: float = DEFAULT_ALPHA
    tau: float = DEFAULT_TAU
    max_iter: int = 2000
    tol: float = 1e-4

    def __post_init__(self) -> None:
        if self.alpha <= 0 or not 0 <= self.tau <= 1:
            raise ValueError(f"need alpha > 0 and 0 <= tau <= 1, got alpha={self.alpha}, tau={self.tau}")


def sklearn_penalty(spec: ElasticNetSpec, hidden: int) -> tuple[float, float]:
    """(sklearn alpha, l1_ratio) that minimise the paper's objective for activations of size `hidden`."""
    return spec.alpha / hidden, spec.tau


def paper_objective(y: np.ndarray, dictionary: np.ndarray, codes: np.ndarray, spec: ElasticNetSpec) -> float:
    """The paper's objective for one activation y, dictionary rows [concepts, d] and codes [concepts]."""
    residual = y - codes @ dictionary
    penalty = spec.tau * np.abs(codes).sum() + 0.5 * (1 - spec.tau) * float(codes @ codes)
    return 0.5 * float(residual @ residual) + spec.alpha * penalty


def decompose(activations: np.ndarray, dictionary: np.ndarray, spec: ElasticNetSpec) -> np.ndarray:
    """Codes [n, concepts] of activations [n, d] over dictionary rows [concepts, d], one elastic net per row."""
    from sklearn.linear_model import ElasticNet  # here: loading the code location skips sklearn

    activations = np.atleast_2d(activations)
    alpha, l1_ratio = sklearn_penalty(spec, dictionary.shape[1])
    model = ElasticNet(
        alpha=alpha,
        l1_ratio=l1_ratio,
        fit_intercept=False,
        max_iter=spec.max_iter,
        tol=spec.tol,
        precompute=True,  # Gram-matrix coordinate descent: [concepts, concepts] instead of [d, concepts] per sweep
    )
    # X = D ([d, concepts]); each activation is one target column, solved independently.
    model.fit(dictionary.T.astype(np.float64), activations.T.astype(np.float64))
    return np.atleast_2d(model.coef_).reshape(activations.shape[0], dictionary.shape[0])


def remove_concepts(
    activations: np.ndarray,
    dictionary: np.ndarray,
    unsafe: Sequence[int],
    spec: ElasticNetSpec,
    strength: float = 1.0,
    center: np.ndarray | None = None,
) -> np.ndarray:
    """Activations minus `strength` x the reconstruction of their unsafe atoms' components.

    The code is computed on the activation minus `center` (the dictionary's centering mean), and only the
    unsafe atoms' part of the reconstruction, sum_i c_i d_i over i in `unsafe`, is subtracted.
    """
    if not len(unsafe):
        return activations
    shift = center if center is not None else 0.0
    codes = decompose(activations - shift, dictionary, spec)
    index = np.asarray(unsafe)
    return activations - strength * codes[:, index] @ dictionary[index]


def mean_difference_direction(dictionary: np.ndarray, unsafe: Sequence[int]) -> np.ndarray:
    """Unit vector from the mean of the safe atoms to the mean of the unsafe atoms."""
    mask = np.zeros(len(dictionary), dtype=bool)
    mask[np.asarray(unsafe)] = True
    if mask.all() or not mask.any():
        raise ValueError("mean-difference steering needs both unsafe and safe concepts in the dictionary")
    direction = dictionary[mask].mean(axis=0) - dictionary[~mask].mean(axis=0)
    return direction / np.linalg.norm(direction)


def project_out(activations: np.ndarray, direction: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Activations minus `strength` x their component along the unit `direction`."""
    return activations - strength * np.outer(activations @ direction, direction)


METHODS = ("none", "mean_difference", "elastic_net")
Steerer = Callable[[np.ndarray], np.ndarray]


def steerers(
    dictionary: np.ndarray, center: np.ndarray, unsafe: Sequence[int], spec: ElasticNetSpec, strength: float
) -> dict[str, Steerer | None]:
    """The compared methods as functions on hidden states [tokens, d]: no steering, projecting out the
    mean-difference direction of unsafe vs safe concepts, and removing the unsafe elastic-net components."""
    direction = mean_difference_direction(dictionary, unsafe)
    return {
        "none": None,
        "mean_difference": lambda hidden: project_out(hidden, direction, strength),
        "elastic_net": lambda hidden: remove_concepts(hidden, dictionary, unsafe, spec, strength, center),
    }
