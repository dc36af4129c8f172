"""CoMem's report: latency against success per memory condition, success against staleness k, and a queueing
SIMULATION that projects the measured service times to several agents sharing model servers."""

from __future__ import annotations

import heapq
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from ops.agents.comem.scheduler import Condition
from ops.common.plots import _figure, _png


def condition_summary(episodes: pl.DataFrame) -> pl.DataFrame:
    """Per condition: episodes, actions per episode, agent prompt tokens per action, success (BFCL valid), turn
    pass rate, mean end-to-end and critical-path seconds, memory tokens on and off the critical path, memory
    faults, and the full-history / condition latency ratio."""
    table = (
        episodes.group_by("condition", "k")
        .agg(
            pl.len().alias("episodes"),
            pl.col("steps").mean().alias("actions"),
            (pl.col("agent_prompt_tokens").sum() / pl.col("steps").sum()).alias("agent_prompt_tokens_per_action"),
            pl.col("valid").mean().alias("success"),
            (pl.col("turns_passed").sum() / pl.col("turns").sum()).alias("turn_pass_rate"),
            pl.col("wall_s").mean().alias("latency_s"),
            pl.col("critical_s").mean().alias("critical_s"),
            pl.col("memory_wait_s").mean().alias("memory_wait_s"),
            pl.col("memory_hidden_s").mean().alias("memory_hidden_s"),
            pl.col("memory_tokens_on_path").sum().alias("memory_tokens_on_path"),
            pl.col("memory_tokens_off_path").sum().alias("memory_tokens_off_path"),
            (pl.col("memory_timeout") + pl.col("memory_error") + pl.col("memory_empty")).sum().alias("memory_faults"),
        )
        .sort("k")
    )
    full = table.filter(pl.col("k") == -1)["latency_s"]
    ratio = pl.lit(full[0]) / pl.col("latency_s") if full.len() else pl.lit(None, pl.Float64)
    return table.with_columns(latency_ratio_full=ratio).with_columns(pareto=pareto_front(table))


def pareto_front(table: pl.DataFrame) -> pl.Series:
    """True for a condition no other beats on both latency (lower) and turn pass rate (higher)."""
    points = list(zip(table["latency_s"].to_list(), table["turn_pass_rate"].to_list(), strict=True))
    flags = [not any(o[0] <= p[0] and o[1] >= p[1] and o != p for o in points) for p in points]
    return pl.Series("pareto", flags, dtype=pl.Boolean)


def pareto_png(table: pl.DataFrame, title: str) -> bytes:
    """Scatter of mean end-to-end latency against turn pass rate, one labelled point per condition."""
    figure, axes = _figure(7.0, 3.6)
    for row in table.iter_rows(named=True):
        marker = "o" if row["pareto"] else "x"
        axes.scatter(row["latency_s"], row["turn_pass_rate"], marker=marker, s=40)
        axes.annotate(
            row["condition"],
            (row["latency_s"], row["turn_pass_rate"]),
            fontsize=8,
            xytext=(4, 4),
            textcoords="offset points",
        )
    axes.set_xlabel("mean end-to-end latency per episode (s)")
    axes.set_ylabel("turn pass rate")
    axes.set_title(title)
    return _png(figure)


@dataclass(frozen=True)
class QueueParams:
    """Service-time samples (s) per agent action and per summary, the staleness k (None: full history)."""

    condition: str
    k: int | None
    agent_s: tuple[float, ...]
    memory_s: tuple[float, ...]


def queue_params(episodes: pl.DataFrame, steps: pl.DataFrame) -> list[QueueParams]:
    """Measured service times per condition: agent seconds per action; memory seconds per summary computed."""
    params = []
    for condition in sorted(set(episodes["condition"].to_list())):
        parsed = Condition.parse(condition)
        agent = tuple(steps.filter(pl.col("condition") == condition)["agent_s"].to_list())
        rows = episodes.filter((pl.col("condition") == condition) & (pl.col("memory_s") > 0))
        per_summary = [m / max(n, 1) for m, n in zip(rows["memory_s"], rows["summaries_computed"], strict=True)]
        if agent:
            params.append(QueueParams(condition, parsed.k, agent, tuple(per_summary) or (0.0,)))
    return params


@dataclass
class _Pool:
    free: list[float]

    def serve(self, now: float, seconds: float) -> float:
        """FCFS on the earliest free server: the job's finish time."""
        heapq.heapify(self.free)
        start = max(now, heapq.heappop(self.free))
        heapq.heappush(self.free, start + seconds)
        return start + seconds


def simulate(params: QueueParams, agents: int, servers: int, steps: int, seed: int = 0) -> dict[str, float]:
    """SIMULATION: `agents` concurrent episodes of `steps` actions on `servers` agent-model servers and as many
    memory-model servers, service times drawn from the measured samples; k-step-off semantics as the scheduler's.
    Returns mean episode latency (s) and throughput (actions/s)."""
    rng = random.Random(seed)
    agent_pool, memory_pool = _Pool([0.0] * servers), _Pool([0.0] * servers)
    done = [0] * agents
    ready: list[dict[int, float]] = [{0: 0.0} for _ in range(agents)]
    finish = [0.0] * agents
    events = [(0.0, a, "step") for a in range(agents)]
    while events:
        now, a, kind = heapq.heappop(events)
        if kind == "done":
            done[a] += 1
            if done[a] < steps:
                heapq.heappush(events, (now, a, "step"))
            else:
                finish[a] = now
            continue
        k, t = params.k, done[a]
        if k is not None:
            need = max(0, t - k)
            if need not in ready[a]:
                ready[a][need] = memory_pool.serve(now, rng.choice(params.memory_s))
            if ready[a][need] > now:
                heapq.heappush(events, (ready[a][need], a, "step"))
                continue
            if k >= 1 and t - k + 1 >= 1:
                ready[a][t - k + 1] = memory_pool.serve(now, rng.choice(params.memory_s))
        heapq.heappush(events, (agent_pool.serve(now, rng.choice(params.agent_s)), a, "done"))
    makespan = max(finish)
    return {"mean_latency_s": sum(finish) / agents, "throughput_actions_per_s": agents * steps / makespan}


def queue_table(params: Sequence[QueueParams], agent_counts: Sequence[int], servers: int, steps: int) -> pl.DataFrame:
    """SIMULATION rows per condition and number of concurrent agents, with the full-history latency ratio."""
    rows = [
        {"condition": p.condition, "agents": n, "servers": servers, "steps": steps, **simulate(p, n, servers, steps)}
        for p in params
        for n in agent_counts
    ]
    frame = pl.DataFrame(rows)
    full = frame.filter(pl.col("condition") == "full").select("agents", full_latency="mean_latency_s")
    return (
        frame.join(full, on="agents", how="left")
        .with_columns(latency_ratio_full=pl.col("full_latency") / pl.col("mean_latency_s"))
        .drop("full_latency")
        .sort("condition", "agents")
    )


def staleness_series(table: pl.DataFrame) -> Mapping[str, list[float]]:
    """Turn pass rate and success per k (synchronous and asynchronous conditions only), for a line chart."""
    rows = table.filter(pl.col("k") >= 0).sort("k")
    return {"turn pass rate": rows["turn_pass_rate"].to_list(), "success": rows["success"].to_list()}
