"""CoMem report: per-condition summary, Pareto front and the queueing simulation's semantics."""

from __future__ import annotations

import polars as pl
import pytest

from ops.agents.comem.episodes import EPISODE_SCHEMA
from ops.agents.comem.report import QueueParams, condition_summary, pareto_png, queue_table, simulate


def _episodes() -> pl.DataFrame:
    rows = []
    for condition, k, wall, passed in [("full", -1, 10.0, 2), ("k0", 0, 12.0, 1), ("k1", 1, 8.0, 1), ("k2", 2, 7.0, 0)]:
        row = {name: 0 for name, dtype in EPISODE_SCHEMA.items() if dtype in (pl.Int64, pl.Float64)}
        row.update(condition=condition, k=k, task_id="t", valid=passed == 2, turns_passed=passed, turns=2, wall_s=wall)
        rows.append(row)
    return pl.DataFrame(rows, schema=EPISODE_SCHEMA)


def test_condition_summary_ratio_and_front() -> None:
    table = condition_summary(_episodes())
    by = {row["condition"]: row for row in table.iter_rows(named=True)}
    assert by["k1"]["latency_ratio_full"] == pytest.approx(1.25) and by["full"]["latency_ratio_full"] == 1.0
    assert {c for c, row in by.items() if row["pareto"]} == {"full", "k1", "k2"}  # k0 is slower and no better
    assert pareto_png(table, "t").startswith(b"\x89PNG")


def test_simulation_semantics() -> None:
    agent, memory = (1.0,), (0.5,)
    full = simulate(QueueParams("full", None, agent, memory), agents=1, servers=1, steps=4)
    sync = simulate(QueueParams("k0", 0, agent, memory), agents=1, servers=1, steps=4)
    async1 = simulate(QueueParams("k1", 1, agent, memory), agents=1, servers=1, steps=4)
    assert full["mean_latency_s"] == pytest.approx(4.0)
    assert sync["mean_latency_s"] == pytest.approx(4.0 + 3 * 0.5)  # S(1..3) on the critical path
    assert async1["mean_latency_s"] == pytest.approx(4.0)  # hidden behind the agent
    slow = simulate(QueueParams("k1", 1, agent, (1.5,)), agents=1, servers=1, steps=4)
    assert slow["mean_latency_s"] == pytest.approx(1 + 1 + 1.5 + 1.5)  # waits 0.5 for S(1) and S(2)
    crowded = simulate(QueueParams("full", None, agent, memory), agents=4, servers=1, steps=4)
    assert crowded["mean_latency_s"] > full["mean_latency_s"]
    assert crowded["throughput_actions_per_s"] == pytest.approx(1)


def test_queue_table_has_ratio_per_agent_count() -> None:
    params = [QueueParams("full", None, (2.0,), (0.0,)), QueueParams("k1", 1, (1.0,), (0.5,))]
    table = queue_table(params, [1, 2], servers=1, steps=3)
    assert table.height == 4 and table.filter(pl.col("condition") == "k1")["latency_ratio_full"].min() > 1.5
