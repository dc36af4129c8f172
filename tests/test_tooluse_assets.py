"""The tooluse chain as Dagster runs it on a few BFCL examples per category: specs (plus a user tool
file with a bad spec), the LanceDB tool index, backends, BFCL import and synthesis rounds, augmentations
with the blocking oracle check, the policy evaluation and the RL environment export. A scripted fake
LLM plays synthesizer, rewriter, judge and policy; everything else is real."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ops.common.llm import ChatRequest
from pipelines.definitions import build_definitions
from pipelines.profiles import REPO_ROOT, build_resources
from resources.inputs import InputFoldersResource
from resources.scale import ScaleResource
from tests.fakes import Answer, FakeLLMResource, schema_properties

pytestmark = pytest.mark.slow
EXAMPLES_PER_CATEGORY = 6


class FakeToolLLM(FakeLLMResource):
    """Synthesis answers are not JSON (so every seed is rejected at the format level, round after
    round); rewrites and consistency checks succeed; the judge always says "met"; the policy abstains."""

    model_id: str = "fake-tools"

    def answer(self, request: ChatRequest) -> Answer:
        properties = schema_properties(request)
        if "calls" in properties:
            return "not json"
        if "query" in properties:
            return {"query": "Could you take care of what I asked about earlier?"}
        if "criteria_met" in properties:
            return {"explanation": "shown", "criteria_met": True}
        if properties:
            return {name: True for name in properties}
        return "[]"


def small_bfcl(folder: Path) -> Path:
    """The first examples of every bundled BFCL category, with their possible answers."""
    source = REPO_ROOT / "samples" / "bfcl_v3"
    (folder / "possible_answer").mkdir(parents=True)
    for path in source.glob("BFCL_v3_*.json"):
        for relative in (Path(path.name), Path("possible_answer") / path.name):
            if (source / relative).exists():
                lines = (source / relative).read_text(encoding="utf-8").splitlines()[:EXAMPLES_PER_CATEGORY]
                (folder / relative).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def user_tools(folder: Path) -> Path:
    folder.mkdir()
    parameters = {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}
    good = {
        "type": "function",
        "function": {"name": "get_stock", "description": "Stock level", "parameters": parameters},
    }
    unknown_type = {"type": "object", "properties": {"when": {"type": "datetime"}}, "required": []}
    bad = {"name": "broken", "description": "uses an unknown type", "parameters": unknown_type}
    (folder / "tools.json").write_text(json.dumps([good, bad]), encoding="utf-8")
    return folder


def test_tooluse_chain_end_to_end(instance, assay_home, tmp_path):
    resources = {
        **build_resources("local"),
        "llm": FakeToolLLM(),
        "inputs": InputFoldersResource(
            bfcl=str(small_bfcl(tmp_path / "bfcl")), tool_files=str(user_tools(tmp_path / "tools"))
        ),
        "scale": ScaleResource(
            tool_synthesis_seeds=2, tool_synthesis_rounds=2, tool_rewrite_bases=2, tool_eval_per_group=2
        ),
    }
    defs = build_definitions(resources)
    run = defs.resolve_job_def("tooluse").execute_in_process(instance=instance)
    assert run.success
    checks = run.get_asset_check_evaluations()
    assert checks and all(check.passed for check in checks)

    specs = run.output_for_node("tool_specs", "tool_specs")
    quarantine = run.output_for_node("tool_specs", "tool_specs_quarantine")
    assert "user:tools.json:get_stock" in set(specs["tool_id"])
    assert quarantine.select("record_id", "reason").rows() == [("user:tools.json#2", "unknown_type")]
    assert "datetime" in quarantine["detail"][0]

    base = run.output_for_node("base_tool_trajectories", "base_tool_trajectories")
    rejects = run.output_for_node("base_tool_trajectories", "base_tool_trajectory_rejects")
    assert set(base["origin"]) == {"bfcl"} and base.height >= 5 * EXAMPLES_PER_CATEGORY - 2
    synthesized = rejects.filter(pl.col("origin") == "synthesized")
    assert synthesized.height == 4 and set(synthesized["level"]) == {"format"}  # 2 seeds x 2 rounds

    augmented = run.output_for_node("augmented_tool_trajectories", "augmented_tool_trajectories")
    assert {"distractor_similar", "format_xml", "erroneous_output", "indirect_query"} <= set(augmented["augmentation"])
    oracles = dict(zip(base["trajectory_id"], base["oracle_json"], strict=True))
    assert all(oracles[b] == o for b, o in zip(augmented["base_trajectory_id"], augmented["oracle_json"], strict=True))

    scored = run.output_for_node("tool_policy_eval")
    irrelevance = scored.filter(pl.col("category") == "irrelevance")
    assert irrelevance.height > 0 and (irrelevance["reward"] == 1.0).all()  # "[]" is the right abstention
    assert set(irrelevance["expected_behaviour"]) == {"no_call"}
    judged = scored.filter(~pl.col("expected_behaviour").is_in(["call", "no_call"]))
    assert judged.height > 0 and (judged["reward"] == 1.0).all()  # the fake judge says "met"

    event = instance.get_latest_materialization_event(dg.AssetKey("tool_rl_environment")).asset_materialization
    lines = (Path(event.metadata["artifact_path"].value) / "environment.jsonl").read_text().splitlines()
    assert len(lines) == base.height + augmented.height
    assert {"prompt", "tools", "oracle", "reward"} <= set(json.loads(lines[0]))
