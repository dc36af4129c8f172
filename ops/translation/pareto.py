"""Translate-or-not policies evaluated on rollout statistics, and their reward-vs-cost Pareto front.

A policy is a call probability per task. From the per-task summary of `ops.translation.rollouts`
(accuracy directly, `p_direct`, and after a call, `p_translated`) its expected accuracy is
mean(q * p_translated + (1 - q) * p_direct) and its expected cost mean(q * call_cost). Policies:
- `never` / `always` translate, and `prompted` (the base model deciding by itself, free mode);
- `best_response` at each lambda, gated and ungated: per task, call iff that maximizes the (gated)
  reward; what GSPO converges to with perfect per-task knowledge (an upper bound, training languages);
- `confidence_threshold` at each lambda, gated and ungated: call iff the policy's confidence
  (self-consistency) is below a threshold fitted on the training languages; it transfers zero-shot to
  held-out languages, where it is evaluated.
The Pareto front holds the points no other point beats on both cost (lower) and accuracy (higher).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from ops.translation.reward import GateConfig

POINT_SCHEMA: dict[str, pl.DataType] = {
    "policy": pl.String(),
    "lam": pl.Float64(),
    "gated": pl.Boolean(),
    "split": pl.String(),
    "accuracy": pl.Float64(),
    "cost": pl.Float64(),
    "call_rate": pl.Float64(),
    "reward": pl.Float64(),
    "pareto": pl.Boolean(),
}
RATE_SCHEMA: dict[str, pl.DataType] = {
    "policy": pl.String(),
    "lam": pl.Float64(),
    "gated": pl.Boolean(),
    "dimension": pl.String(),
    "group": pl.String(),
    "call_rate": pl.Float64(),
}
TRAIN, HELD_OUT = "train", "held_out"


@dataclass(frozen=True)
class PolicyCalls:
    """A named policy's call probability per task of the summary frame it was made for."""

    policy: str
    lam: float
    gated: bool
    calls: np.ndarray


def call_value(summary: pl.DataFrame, config: GateConfig) -> np.ndarray:
    """Expected reward of calling on each task: p_translated - lambda * cost, the cost gated by
    the calling group's accuracy (p_translated) exceeding tau."""
    p_t = summary["p_translated"].to_numpy()
    gate = (p_t > config.tau) if config.gated else np.ones_like(p_t, dtype=bool)
    return p_t - config.lam * summary["call_cost"].to_numpy() * gate


def expected(summary: pl.DataFrame, calls: np.ndarray, config: GateConfig) -> dict[str, float]:
    """Accuracy, cost, call rate and (gated) reward of a call-probability vector on `summary`."""
    if summary.is_empty():
        return {"accuracy": 0.0, "cost": 0.0, "call_rate": 0.0, "reward": 0.0}
    p_d, p_t = summary["p_direct"].to_numpy(), summary["p_translated"].to_numpy()
    return {
        "accuracy": float(np.mean(calls * p_t + (1 - calls) * p_d)),
        "cost": float(np.mean(calls * summary["call_cost"].to_numpy())),
        "call_rate": float(np.mean(calls)),
        "reward": float(np.mean(calls * call_value(summary, config) + (1 - calls) * p_d)),
    }


def best_response(summary: pl.DataFrame, config: GateConfig) -> np.ndarray:
    """Call (1) exactly where calling has the higher expected reward; ties do not call."""
    return (call_value(summary, config) > summary["p_direct"].to_numpy()).astype(float)


def fit_confidence_threshold(summary: pl.DataFrame, config: GateConfig) -> float:
    """The threshold theta maximizing reward of "call iff confidence < theta" (ties: the lower theta)."""
    confidence = summary["confidence"].to_numpy()
    candidates = sorted({0.0, *confidence.tolist(), 1.01})
    best, best_reward = 0.0, -np.inf
    for theta in candidates:
        reward = expected(summary, (confidence < theta).astype(float), config)["reward"]
        if reward > best_reward + 1e-12:
            best, best_reward = theta, reward
    return best


def pareto_front(costs: Sequence[float], accuracies: Sequence[float]) -> list[bool]:
    """True for each point that no other point dominates (cost <= and accuracy >=, one strictly)."""
    points = list(zip(costs, accuracies, strict=True))
    return [not any(c2 <= c and a2 >= a and (c2 < c or a2 > a) for c2, a2 in points) for c, a in points]


def cost_share_at_full_reward(points: pl.DataFrame, tolerance: float = 1e-9) -> float | None:
    """Least cost, as a share of always-translate's, of a policy at least as accurate as always-translate.

    None when always-translate costs nothing (no calls were possible).
    """
    always = points.filter(pl.col("policy") == "always").row(0, named=True)
    if always["cost"] <= 0:
        return None
    good = points.filter(pl.col("accuracy") >= always["accuracy"] - tolerance)
    return float(good["cost"].min()) / always["cost"]  # type: ignore[arg-type]


def sweep_policies(
    summary: pl.DataFrame, lambdas: Sequence[float], tau: float
) -> tuple[list[PolicyCalls], list[PolicyCalls]]:
    """Policies on the training tasks and on the held-out tasks, for every lambda and gate setting.

    Best responses exist only on training tasks (they need per-task knowledge); confidence thresholds
    are fitted on the training tasks and applied to both.
    """
    train = summary.filter(~pl.col("held_out"))
    held = summary.filter(pl.col("held_out"))
    fixed = [("never", 0.0), ("always", 1.0)]
    on_train = [PolicyCalls(name, 0.0, False, np.full(train.height, q)) for name, q in fixed]
    on_held = [PolicyCalls(name, 0.0, False, np.full(held.height, q)) for name, q in fixed]
    on_train.append(PolicyCalls("prompted", 0.0, False, train["free_call_rate"].to_numpy()))
    on_held.append(PolicyCalls("prompted", 0.0, False, held["free_call_rate"].to_numpy()))
    for lam in lambdas:
        for gated in (True, False):
            config = GateConfig(lam, tau, gated)
            on_train.append(PolicyCalls("best_response", lam, gated, best_response(train, config)))
            theta = fit_confidence_threshold(train, config)
            for frame, out in ((train, on_train), (held, on_held)):
                calls = (frame["confidence"].to_numpy() < theta).astype(float)
                out.append(PolicyCalls("confidence_threshold", lam, gated, calls))
    return on_train, on_held


def points_frame(
    summary: pl.DataFrame,
    policies: Sequence[PolicyCalls],
    split: str,
    tau: float,
    measured: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """One `POINT_SCHEMA` row per policy on `summary`, reward at the policy's own lambda, Pareto marked.

    The prompted policy's accuracy is its measured free-mode accuracy, not the expectation. `measured`
    adds policies evaluated by their own greedy decisions (`measured_points`).
    """
    rows = []
    for policy in policies:
        figures = expected(summary, policy.calls, GateConfig(policy.lam, tau, policy.gated))
        if policy.policy == "prompted" and summary.height:
            figures["accuracy"] = float(summary["free_accuracy"].mean())  # type: ignore[arg-type]
        rows.append({"policy": policy.policy, "lam": policy.lam, "gated": policy.gated, "split": split, **figures})
    if measured is not None:
        rows += [{**row, "split": split} for row in measured_points(measured, tau)]
    frame = pl.DataFrame(rows, schema={k: v for k, v in POINT_SCHEMA.items() if k != "pareto"})
    return frame.with_columns(pl.Series("pareto", pareto_front(frame["cost"], frame["accuracy"]), pl.Boolean))


def measured_points(decisions: pl.DataFrame, tau: float) -> list[dict[str, float | str | bool]]:
    """Accuracy, cost, call rate and reward of each evaluated policy from its per-task decisions.

    `decisions` has `policy`, `lam`, `gated`, `called`, `correct` (after a call: the accuracy on the
    English text) and `cost`; the gate applies the cost where that accuracy exceeds tau, as in `expected`.
    """
    rows = []
    for (name, lam, gated), group in decisions.group_by("policy", "lam", "gated", maintain_order=True):
        correct, cost = group["correct"].to_numpy(), group["cost"].to_numpy()
        gate = (correct > tau) if gated else np.ones_like(correct, dtype=bool)
        rows.append(
            {
                "policy": str(name),
                "lam": float(lam),
                "gated": bool(gated),
                "accuracy": float(correct.mean()) if len(correct) else 0.0,
                "cost": float(cost.mean()) if len(cost) else 0.0,
                "call_rate": float(group["called"].cast(pl.Float64).mean() or 0.0),
                "reward": float((correct - lam * cost * gate).mean()) if len(correct) else 0.0,
            }
        )
    return rows


def call_rates(summary: pl.DataFrame, policies: Sequence[PolicyCalls]) -> pl.DataFrame:
    """Each policy's call rate per tier and per language (`RATE_SCHEMA`)."""
    frames = []
    for policy in policies:
        with_calls = summary.with_columns(pl.Series("q", policy.calls, pl.Float64))
        for dimension in ("tier", "language"):
            rates = with_calls.group_by(dimension).agg(pl.col("q").mean().alias("call_rate")).sort(dimension)
            frames.append(
                rates.select(
                    pl.lit(policy.policy).alias("policy"),
                    pl.lit(policy.lam, pl.Float64).alias("lam"),
                    pl.lit(policy.gated).alias("gated"),
                    pl.lit(dimension).alias("dimension"),
                    pl.col(dimension).alias("group"),
                    "call_rate",
                )
            )
    return pl.concat(frames) if frames else pl.DataFrame(schema=RATE_SCHEMA)
