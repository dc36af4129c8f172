"""CoMem's assets in a real Dagster instance with the packaged SmolLM2 (two llama.cpp processes), tiny sizes."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

pytest.importorskip("bfcl_eval", reason="bfcl-eval (BFCL's API classes) is not installed; make install adds it")
pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")


@pytest.mark.slow
def test_comem_chain_materializes_with_blocking_checks(instance, assay_home) -> None:
    from assets.agents import comem, comem_checks
    from assets.tooluse import multi_turn
    from pipelines.profiles import build_resources
    from resources.scale import ScaleResource

    scale = ScaleResource(
        comem_tasks=1,
        comem_max_steps=1,
        comem_agent_max_tokens=8,
        comem_memory_max_tokens=8,
        comem_training_rows=1,
        comem_grpo_steps=1,
        comem_generations=2,
        rl_work_dir=str(assay_home / "training"),
    )
    checks = [getattr(comem_checks, name) for name in dir(comem_checks) if name.endswith(("_valid", "_sound"))]
    defs = dg.Definitions(
        assets=[
            multi_turn.bfcl_multi_turn_tasks,
            comem.agent_episodes,
            comem.memory_training_data,
            comem.memory_model,
            comem.comem_report,
        ],
        asset_checks=checks,
        resources={**build_resources("local"), "scale": scale},
    )
    config = {"ops": {"agent_episodes": {"config": {"conditions": ["full", "k0", "k1"]}}}}
    run = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance, run_config=config)
    assert run.success
    evaluations = run.get_asset_check_evaluations()
    assert len(evaluations) == 5 and all(e.passed for e in evaluations)
    episodes = run.output_for_node("agent_episodes", "agent_episodes")
    assert sorted(episodes["condition"].to_list()) == ["full", "k0", "k1"]
    assert episodes.filter(pl.col("condition") == "k0")["memory_tokens_on_path"].sum() > 0  # S(1) waited for
    again = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=instance,
        run_config=config,
        asset_selection=[dg.AssetKey("agent_episodes"), dg.AssetKey("agent_episode_steps")],
    )
    assert again.success
    resumed = instance.get_latest_materialization_event(dg.AssetKey("agent_episodes"))
    assert resumed.asset_materialization.metadata["resumed"].value == 3  # every finished episode read back
