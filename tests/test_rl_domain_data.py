"""Domain data for the RL trainer: the tool-use split and SFT/GRPO rows, the Customer Agent's SQL reward."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from ops.common.stats import bootstrap_interval
from ops.shopping.agent_rl import action_answer, customer_split, sql_agent_reward
from ops.shopping.sandbox import CustomerSandbox
from ops.tooluse.backends import SimulatedBackend
from ops.tooluse.bfcl import load_single_turn
from ops.tooluse.policy_eval import rl_environment_rows
from ops.tooluse.reward import tool_reward
from ops.tooluse.training_data import (
    HELDOUT,
    NO_CALL_REPLY,
    TRAIN,
    ToolSplit,
    all_trajectories,
    assign_split,
    grpo_rows,
    policy_comparison,
    sft_rows,
    shortest,
)
from ops.tooluse.trajectories import bfcl_trajectories
from tests.test_shopping_sandbox import ALL_EVENTS, CATALOG

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "bfcl_v3"


@pytest.fixture(scope="module")
def trajectories() -> pl.DataFrame:
    examples = [ex for ex in load_single_turn(SAMPLES) if int(ex.id.rsplit("_", 1)[1]) < 12]
    base, _ = bfcl_trajectories(examples, SimulatedBackend(f for ex in examples for f in ex.functions))
    augmented = base.head(6).with_columns(
        (pl.col("trajectory_id") + "~indirect_query").alias("trajectory_id"),
        pl.col("trajectory_id").alias("base_trajectory_id"),
        pl.lit("indirect_query").alias("augmentation"),
        pl.lit("call").alias("expected_behaviour"),
    )
    return all_trajectories(base, augmented)


def test_split_holds_out_whole_categories_and_ids_with_their_augmentations(trajectories: pl.DataFrame) -> None:
    split = assign_split(trajectories, ToolSplit(("parallel_multiple",), heldout_share=0.3, seed=1))
    train, heldout = split.filter(pl.col("split") == TRAIN), split.filter(pl.col("split") == HELDOUT)
    assert "parallel_multiple" not in set(train["category"])
    assert heldout.filter(pl.col("category") != "parallel_multiple").height > 0  # ids held out as well
    by_base = split.group_by(pl.coalesce("base_trajectory_id", "trajectory_id")).agg(pl.col("split").n_unique())
    assert (by_base["split"] == 1).all()  # an augmentation always follows its base
    again = assign_split(trajectories, ToolSplit(("parallel_multiple",), heldout_share=0.3, seed=1))
    assert again["split"].to_list() == split["split"].to_list()


def test_sft_targets_earn_the_full_ast_reward(trajectories: pl.DataFrame) -> None:
    rows = sft_rows(trajectories)
    oracles = {row["trajectory_id"]: row for row in trajectories.iter_rows(named=True)}
    for row in rows:
        source = oracles[row["id"]]
        oracle = {"ground_truth": json.loads(source["oracle_json"]), "functions": json.loads(source["tools_json"])}
        assert tool_reward([row["completion"][0]["content"]], [oracle]) == [1.0], row["id"]
    assert any(row["completion"][0]["content"] == NO_CALL_REPLY for row in rows)


def test_grpo_rows_come_from_the_environment_for_training_ids(trajectories: pl.DataFrame) -> None:
    environment = rl_environment_rows(trajectories)
    ids = set(trajectories["trajectory_id"].head(5))
    rows = grpo_rows(environment, ids)
    assert {row["id"] for row in rows} == ids
    assert all(isinstance(row["oracle"], str) and row["prompt"][0]["role"] == "system" for row in rows)
    short = shortest(trajectories, 3, 0)
    assert short.height == 3


def test_policy_comparison_matches_the_mean_and_brackets_it() -> None:
    scored = pl.DataFrame(
        {
            "policy": ["a"] * 6 + ["b"] * 6,
            "category": ["x", "x", "x", "y", "y", "y"] * 2,
            "reward": [1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0],
        }
    )
    table = policy_comparison(scored)
    overall = table.filter(pl.col("category") == "all")
    assert overall["accuracy"].to_list() == pytest.approx([2 / 6, 5 / 6])
    assert (overall["ci_low"] <= overall["accuracy"]).all() and (overall["accuracy"] <= overall["ci_high"]).all()
    assert table.filter((pl.col("policy") == "a") & (pl.col("category") == "y"))["ci_low"].item() == 0.0
    low, high = bootstrap_interval([0.0, 1.0] * 20)
    assert 0.3 < low < 0.5 < high < 0.7


def test_sql_agent_reward_runs_the_query_in_the_customers_sandbox() -> None:
    customer = "cohort-000-00001"
    with CustomerSandbox(ALL_EVENTS.filter(pl.col("customer_id") == customer), CATALOG) as sandbox:
        reward = sql_agent_reward({customer: sandbox})
        good = json.dumps({"action": "sql", "content": "SELECT sum(quantity) FROM events WHERE event_type='purchase'"})
        answer = json.dumps({"action": "answer", "content": "7"})
        many = json.dumps({"action": "sql", "content": "SELECT product_id FROM events"})
        attack = json.dumps({"action": "sql", "content": "DROP TABLE events"})
        completions = [good, answer, many, attack, "not json", [{"role": "assistant", "content": good}]]
        scores = reward(completions=completions, ground_truth=["7"] * 6, customer_id=[customer] * 6)
        assert scores == [1.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        assert action_answer(many, sandbox) is None
        assert sandbox.run_query("SELECT count(*) FROM events").ok  # the attack changed nothing


def test_customer_split_is_seeded_and_holds_out_about_the_share() -> None:
    customers = [f"cohort-000-{index:05d}" for index in range(400)]
    held = [customer_split(c, 0.3, seed=0) == "heldout" for c in customers]
    assert 0.2 < sum(held) / len(held) < 0.4
    assert held == [customer_split(c, 0.3, seed=0) == "heldout" for c in customers]
