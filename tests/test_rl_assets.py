"""The tool-policy training assets in a real Dagster instance on a tiny random Llama: SFT, GRPO from the
SFT adapter on the RL environment, the held-out comparison, their blocking checks, and a rerun that finds
its finished checkpoints and writes no second version."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from assets.outputs import frame_output
from assets.tooluse import training
from assets.tooluse.evaluation import tool_rl_environment
from ops.tooluse.backends import SimulatedBackend
from ops.tooluse.bfcl import load_single_turn
from ops.tooluse.trajectories import bfcl_trajectories
from pipelines.profiles import build_resources
from resources.artifact_store import ArtifactStore
from resources.scale import ScaleResource
from training.webdocs.generative_student import byte_tokenizer, tiny_base

pytestmark = pytest.mark.slow
SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "bfcl_v3"


def _bfcl_base() -> pl.DataFrame:
    examples = [ex for ex in load_single_turn(SAMPLES) if int(ex.id.rsplit("_", 1)[1]) < 8]
    base, _ = bfcl_trajectories(examples, SimulatedBackend(f for ex in examples for f in ex.functions))
    return base


@dg.asset(name="base_tool_trajectories", group_name="tooluse")
def bfcl_base_stand_in() -> dg.Output:
    """Real BFCL trajectories (8 per category) in place of the LLM-backed synthesis asset."""
    return frame_output(_bfcl_base())


@dg.asset(name="augmented_tool_trajectories", group_name="tooluse")
def no_augmentations_stand_in() -> dg.Output:
    """No augmentations (they need the LLM); the training assets read base + augmented."""
    columns = {"base_trajectory_id": pl.String, "augmentation": pl.String, "expected_behaviour": pl.String}
    return frame_output(_bfcl_base().clear().with_columns([pl.lit(None, t).alias(c) for c, t in columns.items()]))


def test_tool_policy_training_chain(instance, assay_home, tmp_path):
    base_model = tiny_base(tmp_path / "tiny", byte_tokenizer(), layers=2, hidden=64)
    scale = ScaleResource(
        rl_base_model=str(base_model),
        rl_sft_steps=2,
        rl_sft_batch_size=2,
        rl_sft_examples=4,
        rl_grpo_steps=2,
        rl_prompts_per_step=2,
        rl_generations=2,
        rl_max_completion_tokens=8,
        rl_beta=0.02,
        rl_eval_examples=1,
        rl_work_dir=str(tmp_path / "work"),
    )
    resources = {**build_resources("local"), "scale": scale}
    selection = [
        bfcl_base_stand_in,
        no_augmentations_stand_in,
        tool_rl_environment,
        training.tool_policy_sft,
        training.tool_policy_grpo,
        training.tool_policy_checkpoint_eval,
        *training.adapter_checks,
        training.tool_policy_checkpoint_eval_valid,
    ]
    config = {"ops": {"tool_policy_checkpoint_eval": {"config": {"max_tokens": 8}}}}
    result = dg.materialize(selection, instance=instance, resources=resources, run_config=config)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert len(checks) == 3 and all(check.passed for check in checks)

    grpo = instance.get_latest_materialization_event(dg.AssetKey("tool_policy_grpo")).asset_materialization
    assert grpo.metadata["steps"].value == 2
    assert grpo.metadata["kl_last"].value >= 0.0
    scored = result.output_for_node("tool_policy_checkpoint_eval")
    assert set(scored["policy"]) == {"base", "sft", "sft_grpo"}
    assert "parallel_multiple" in set(scored["category"])  # the held-out category is evaluated

    rerun = dg.materialize(selection, instance=instance, resources=resources, selection=["tool_policy_grpo"])
    assert rerun.success
    again = instance.get_latest_materialization_event(dg.AssetKey("tool_policy_grpo")).asset_materialization
    assert again.metadata["resumed_from_step"].value == 2
    assert again.metadata["artifact_version"] == grpo.metadata["artifact_version"]
    store = ArtifactStore(assay_home / "store")
    assert len(store.versions(["tool_policy_grpo"])) == 1
