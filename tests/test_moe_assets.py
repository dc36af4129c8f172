"""The moe chain materialized in a real Dagster instance at a tiny size, with every blocking check."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pytest

from assets.moe import checks, corpus, report, training, upcycling
from ops.common.versioning import frame_version
from pipelines.partitions import upcycling_strategies, web_doc_shards
from pipelines.profiles import build_resources
from resources.io_manager import ARTIFACT_VERSION
from resources.scale import ScaleResource
from tests.conftest import sample_records

TRAINING = {"batch_size": 4, "eval_every": 5, "eval_windows": 4, "warmup_steps": 2}
RUN_CONFIG = {
    "ops": {
        "moe_base_checkpoint": {"config": {**TRAINING, "hidden": 16, "intermediate": 24, "seq_len": 32}},
        "upcycling_baselines": {"config": TRAINING},
        "upcycling_cpt": {"config": TRAINING},
        "expert_utilities": {"config": {"calibration_batches": 2, "batch_size": 4}},
        "upcycled_checkpoints": {"config": {"check_windows": 4}},
    }
}
SHARDS = {"shard-a.jsonl": range(0, 40), "shard-b.jsonl": range(40, 80)}


def _web_docs(instance: dg.DagsterInstance, resources: dict) -> None:
    """Two shards of sample documents recorded as `web_docs` partitions (as the webdocs chain would)."""
    records = sample_records("c4_en_sample_1000.jsonl", 80)
    store = resources["artifact_store"].get_store()
    instance.add_dynamic_partitions(web_doc_shards.name, list(SHARDS))
    for shard, rows in SHARDS.items():
        frame = pl.DataFrame({"doc_id": [f"{shard}:{i}" for i in rows], "text": [records[i]["text"] for i in rows]})
        version = frame_version(frame)
        store.write_frame(["web_docs"], shard, frame, version=version)
        instance.report_runless_asset_event(
            dg.AssetMaterialization("web_docs", partition=shard, metadata={ARTIFACT_VERSION: version})
        )


def _materialize(instance, resources, keys: list[str], partition: str | None = None) -> dg.ExecuteInProcessResult:
    assets = [
        dg.AssetSpec("web_docs", partitions_def=web_doc_shards),
        *dg.load_assets_from_modules([corpus, training, upcycling, report]),
    ]
    result = dg.materialize(
        [*assets, *dg.load_asset_checks_from_modules([checks])],
        selection=keys,
        instance=instance,
        resources=resources,
        run_config={"ops": {k: v for k, v in RUN_CONFIG["ops"].items() if k in keys}},
        partition_key=partition,
    )
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert result.success and not failed, [(e.check_name, e.metadata.get("failed_invariants")) for e in failed]
    return result


@pytest.mark.timeout(900)
def test_moe_chain_materializes_with_passing_checks(instance, assay_home):
    resources = {**build_resources("local"), "scale": ScaleResource(moe_base_tokens=20 * 128, moe_cpt_tokens=6 * 128)}
    _web_docs(instance, resources)
    first = [
        "moe_pretraining_corpus",
        "moe_corpus_quarantine",
        "moe_base_checkpoint",
        "expert_utilities",
        "upcycling_baselines",
    ]
    _materialize(instance, resources, first)
    for strategy in upcycling_strategies.get_partition_keys():
        result = _materialize(instance, resources, ["upcycled_checkpoints", "upcycling_cpt"], strategy)
        evaluation = next(
            e for e in result.get_asset_check_evaluations() if e.check_name == "upcycled_checkpoints_valid"
        )
        assert evaluation.metadata["top1_exact_max_abs_diff"].value <= checks.TOP1_EXACT_TOLERANCE
    result = _materialize(instance, resources, ["upcycling_report"])
    table = result.output_for_node("upcycling_report")
    assert table.height == len(upcycling_strategies.get_partition_keys()) + 2
    metadata = result.get_asset_materialization_events()[0].materialization.metadata
    assert "val_loss_chart" in metadata and metadata["upcycling_point_tokens"].value == 20 * 128


def test_sample_stage_planner_runs_strategies_as_their_own_stage(assay_home):
    from pipelines.partitions import customer_cohorts
    from pipelines.sample import stages

    @dg.asset(partitions_def=customer_cohorts)
    def fake_cohort_asset() -> None:
        """Another static partitioning next to the strategies."""

    assets = [
        dg.AssetSpec("web_docs", partitions_def=web_doc_shards),
        fake_cohort_asset,
        *dg.load_assets_from_modules([corpus, training, upcycling, report]),
    ]
    planned = stages(dg.Definitions(assets=assets, resources=build_resources("local")).resolve_asset_graph())
    by_asset = {key.to_user_string(): partitions_def for partitions_def, keys in planned for key in keys}
    assert by_asset["upcycled_checkpoints"] == upcycling_strategies == by_asset["upcycling_cpt"]
    assert by_asset["fake_cohort_asset"] == customer_cohorts
    order = [key.to_user_string() for _, keys in planned for key in keys]
    assert order.index("moe_base_checkpoint") < order.index("upcycled_checkpoints") < order.index("upcycling_report")
