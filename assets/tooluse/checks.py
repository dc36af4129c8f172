"""Blocking checks on the tooluse artifacts: no spec lost, unique trajectories with parseable oracles,
and the COVERT invariant: every augmented example's oracle is byte-identical to its base and still
earns reward 1."""

import dagster as dg
import polars as pl

from assets.quarantine import accounting, recorded_rows_in
from ops.common.expectations import between, columns_exist, in_set, not_null, unique
from ops.tooluse.augment import AUGMENTATIONS, EXPECTED_BEHAVIOURS, oracle_invariant_violations
from ops.tooluse.specs import SPECS_SCHEMA
from ops.tooluse.trajectories import AUGMENTED_TRAJECTORY_SCHEMA, TRAJECTORY_SCHEMA
from resources.quality import QualityResource

ORACLES_PRESERVED = "every augmented oracle is byte-identical to its base and still scores 1"


@dg.asset_check(
    asset="tool_specs",
    blocking=True,
    additional_ins={"tool_specs_quarantine": dg.AssetIn()},
    description="Unique tool ids with a spec; every distinct record is kept or quarantined.",
)
def tool_specs_valid(
    context: dg.AssetCheckExecutionContext,
    tool_specs: pl.DataFrame,
    tool_specs_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    rows_in = recorded_rows_in(context, "tool_specs")
    accounted, counts = accounting(rows_in, tool_specs.height, tool_specs_quarantine.height)
    suite = [*columns_exist(list(SPECS_SCHEMA)), unique("tool_id"), not_null("spec_json"), between("n_params", 0, None)]
    return quality.validate(tool_specs, "tool_specs", suite).to_check_result(extra=accounted, metadata=counts)


@dg.asset_check(
    asset="base_tool_trajectories",
    blocking=True,
    description="Unique trajectory ids, an oracle and the offered tools on every row.",
)
def base_tool_trajectories_valid(base_tool_trajectories: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [
        *columns_exist(list(TRAJECTORY_SCHEMA)),
        unique("trajectory_id"),
        not_null("oracle_json"),
        not_null("tools_json"),
        not_null("query"),
        in_set("origin", ["bfcl", "synthesized"]),
    ]
    return quality.validate(base_tool_trajectories, "base_tool_trajectories", suite).to_check_result()


@dg.asset_check(
    asset="augmented_tool_trajectories",
    blocking=True,
    additional_ins={"base_tool_trajectories": dg.AssetIn()},
    description="Tagged augmentations of known kinds, and the oracle invariant over every row.",
)
def augmented_tool_trajectories_valid(
    augmented_tool_trajectories: pl.DataFrame, base_tool_trajectories: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    violations = oracle_invariant_violations(base_tool_trajectories, augmented_tool_trajectories)
    suite = [
        *columns_exist(list(AUGMENTED_TRAJECTORY_SCHEMA)),
        unique("trajectory_id"),
        not_null("base_trajectory_id"),
        in_set("augmentation", list(AUGMENTATIONS)),
        in_set("expected_behaviour", list(EXPECTED_BEHAVIOURS)),
    ]
    counts = violations.group_by("violation").len()
    return quality.validate(augmented_tool_trajectories, "augmented_tool_trajectories", suite).to_check_result(
        extra={ORACLES_PRESERVED: violations.is_empty()},
        metadata={
            "violations": violations.height,
            "by_violation": str(dict(zip(counts["violation"], counts["len"], strict=True))),
        },
    )
