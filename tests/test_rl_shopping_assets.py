"""The Customer Agent's RLVR assets in a real Dagster instance on a tiny random Llama: GRPO on the agent
questions of the training customers (SQL run in real sandboxes), then base vs trained on held-out customers."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from assets.outputs import frame_output
from assets.shopping import agent_training
from ops.shopping.agent_rl import customer_split
from ops.shopping.evaluation import RL_DATA_SOURCE, RL_SCHEMA
from pipelines.partitions import customer_cohorts
from pipelines.profiles import build_resources
from resources.inputs import InputFoldersResource
from resources.scale import ScaleResource
from tests.test_shopping_sandbox import CATALOG, make_events
from training.webdocs.generative_student import byte_tokenizer, tiny_base

pytestmark = pytest.mark.slow
CUSTOMERS = [f"cohort-000-{index:05d}" for index in range(1, 7)]
COHORT = "cohort-000"


def _question(customer: str, index: int) -> dict:
    sql = "SELECT sum(quantity) FROM events WHERE event_type = 'purchase'"
    info = {
        "question_id": f"{customer}-q{index}",
        "customer_id": customer,
        "kind": "total_items",
        "difficulty": "easy",
        "mode": "agent",
        "budget_tokens": None,
        "sql": sql,
        "evaluated_reward": 0.0,
    }
    return {
        "data_source": RL_DATA_SOURCE,
        "prompt": [{"role": "user", "content": "How many items did I buy in total?"}],
        "ability": "tool_use_sql",
        "reward_model": {"style": "rule", "ground_truth": "3"},
        "extra_info": info,
        "ground_truth": "3",
    }


@dg.asset(name="shoptrajqa_rl_dataset", group_name="shopping", partitions_def=customer_cohorts)
def rl_dataset_stand_in() -> dg.Output:
    """Two agent questions per customer in the RL dataset's own schema."""
    return frame_output(pl.DataFrame([_question(c, i) for c in CUSTOMERS for i in range(2)], schema=RL_SCHEMA))


@dg.asset(name="shopping_trajectories", group_name="shopping", partitions_def=customer_cohorts)
def trajectories_stand_in() -> dg.Output:
    """Each customer bought three items."""
    return frame_output(pl.concat([make_events(c, [("t:lego", 49.99, 1), ("t:train", 120.0, 2)]) for c in CUSTOMERS]))


@dg.asset(name="product_catalog", group_name="shopping")
def catalog_stand_in() -> dg.Output:
    return frame_output(CATALOG)


def test_customer_agent_rl_chain(instance, assay_home, tmp_path):
    seed = next(s for s in range(50) if len({customer_split(c, 0.5, s) for c in CUSTOMERS}) == 2)
    base_model = tiny_base(tmp_path / "tiny", byte_tokenizer(), layers=2, hidden=64)
    scale = ScaleResource(
        rl_base_model=str(base_model),
        rl_grpo_steps=1,
        rl_prompts_per_step=2,
        rl_generations=2,
        rl_max_completion_tokens=8,
        rl_eval_examples=2,
        customer_agent_max_steps=2,
        rl_work_dir=str(tmp_path / "w"),
    )
    resources = {**build_resources("local"), "scale": scale, "inputs": InputFoldersResource(simulated_shop="t")}
    upstream = [rl_dataset_stand_in, trajectories_stand_in]
    assert dg.materialize(upstream, instance=instance, resources=resources, partition_key=COHORT).success
    training_config = {"heldout_share": 0.5, "seed": seed, "eval_max_tokens": 8}
    run_config = {
        "ops": {name: {"config": training_config} for name in ("customer_agent_grpo", "customer_agent_rl_eval")}
    }
    selection = [
        *upstream,
        catalog_stand_in,
        agent_training.customer_agent_grpo,
        agent_training.customer_agent_rl_eval,
        agent_training.customer_agent_grpo_sound,
        agent_training.customer_agent_rl_eval_valid,
    ]
    result = dg.materialize(
        selection,
        instance=instance,
        resources=resources,
        run_config=run_config,
        selection=["product_catalog", "customer_agent_grpo", "customer_agent_rl_eval"],
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 2 and all(check.passed for check in checks)
    evals = result.output_for_node("customer_agent_rl_eval")
    assert set(evals["policy"]) == {"base", "trained"}
    heldout = {c for c in CUSTOMERS if customer_split(c, 0.5, seed) == "heldout"}
    assert set(evals["customer_id"]) <= heldout
