"""The reward-versus-cost chart with its Pareto front (the common plots have no scatter)."""

from __future__ import annotations

import io

import polars as pl

from ops.common.plots import pyplot


def pareto_png(points: pl.DataFrame, title: str) -> bytes:
    """Accuracy against cost, one marker style per policy family, the Pareto front as a line."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    for (policy, gated), group in points.group_by("policy", "gated", maintain_order=True):
        label = (
            f"{policy} ({'gated' if gated else 'ungated'})" if policy not in ("never", "always", "prompted") else policy
        )
        axes.scatter(group["cost"], group["accuracy"], label=label, s=22, alpha=0.8)
    front = points.filter(pl.col("pareto")).sort("cost")
    axes.plot(front["cost"], front["accuracy"], color="black", linewidth=1.0, label="Pareto front")
    axes.set_xlabel("translation cost per task")
    axes.set_ylabel("accuracy (reward without cost)")
    axes.set_title(title)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()
