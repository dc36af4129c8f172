"""Blocking checks on the tool-use index, backends, rejects, policy evaluation and RL export: one sound
vector and probe per tool, every reject with its reason, an evaluation whose counts add up, an export
a trainer can read."""

import dagster as dg
import polars as pl

from assets.models import load_model_files
from assets.tooluse.evaluation import RL_ENVIRONMENT_FILE
from ops.common.expectations import between, columns_exist, not_null, unique
from ops.common.quarantine import QUARANTINE_SCHEMA as SHARED_QUARANTINE_SCHEMA
from ops.common.quarantine import quarantine_suite
from ops.tooluse.augment import AUGMENT_REASONS, AUGMENT_REJECT_SCHEMA
from ops.tooluse.integrity import backend_problems, environment_problems, index_problems, policy_eval_problems
from ops.tooluse.policy_eval import SCORED_SCHEMA
from ops.tooluse.specs import QUARANTINE_SCHEMA, SPEC_REASONS
from ops.tooluse.trajectories import REJECT_REASONS, REJECTS_SCHEMA
from resources.artifact_store import ArtifactStoreResource
from resources.embedder import EmbedderResource
from resources.io_manager import latest_materialization
from resources.lancedb import LanceDBResource, vector_matrix
from resources.quality import QualityResource

BACKENDS_SOUND = "one deterministic probe per tool; bad calls refused with their typed error"
EVAL_ADDS_UP = "rewards in [0, 1]; per-category and per-augmentation counts add up to the rows"
ENVIRONMENT_READABLE = "one JSON line per example with prompt, tools, oracle and reward"
INDEX_COMPLETE = "one finite vector per tool spec"
REJECTS_NAMED = "The shared quarantine table: every row names its record, a known reason code and the detail."
# Reject and quarantine tables: their schema (the shared columns first) and their reason codes.
REJECT_TABLES = {
    "tool_specs_quarantine": (QUARANTINE_SCHEMA, SPEC_REASONS),
    "base_tool_trajectory_rejects": (REJECTS_SCHEMA, REJECT_REASONS),
    "augmentation_rejects": (AUGMENT_REJECT_SCHEMA, AUGMENT_REASONS),
}


@dg.asset_check(
    asset="tool_backends",
    blocking=True,
    additional_ins={"tool_specs": dg.AssetIn()},
    description=f"{BACKENDS_SOUND}.",
)
def tool_backends_valid(
    tool_backends: pl.DataFrame, tool_specs: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    problems = backend_problems(tool_backends, tool_specs["tool_id"].to_list())
    suite = [*columns_exist(["tool_id", "name", "n_required", "empty_call", "deterministic"]), unique("tool_id")]
    return quality.validate(tool_backends, "tool_backends", suite).to_check_result(
        extra={BACKENDS_SOUND: not problems}, metadata={"problems": "; ".join(problems) or "none"}
    )


@dg.asset_check(asset="tool_policy_eval", blocking=True, description=f"{EVAL_ADDS_UP}.")
def tool_policy_eval_valid(tool_policy_eval: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    problems = policy_eval_problems(tool_policy_eval)
    suite = [
        *columns_exist(list(SCORED_SCHEMA)),
        unique("trajectory_id"),
        not_null("outcome"),
        between("reward", 0, 1),
    ]
    return quality.validate(tool_policy_eval, "tool_policy_eval", suite).to_check_result(
        extra={EVAL_ADDS_UP: not problems}, metadata={"problems": "; ".join(problems) or "none"}
    )


@dg.asset_check(asset="tool_rl_environment", blocking=True, description=f"{ENVIRONMENT_READABLE}.")
def tool_rl_environment_valid(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource
) -> dg.AssetCheckResult:
    files = load_model_files(context.instance, artifact_store.get_store(), "tool_rl_environment")
    event = latest_materialization(context.instance, dg.AssetKey("tool_rl_environment"), None)
    expected = event.metadata["dagster/row_count"].value if event is not None else -1
    problems = environment_problems(files[RL_ENVIRONMENT_FILE].decode("utf-8"), expected)
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={ENVIRONMENT_READABLE: not problems, "problems": "; ".join(problems) or "none", "examples": expected},
    )


@dg.asset_check(
    asset="tool_spec_index",
    blocking=True,
    additional_ins={"tool_specs": dg.AssetIn()},
    description=f"{INDEX_COMPLETE}, of the embedder's size.",
)
def tool_spec_index_valid(
    context: dg.AssetCheckExecutionContext,
    tool_specs: pl.DataFrame,
    embedder: EmbedderResource,
    lancedb: LanceDBResource,
) -> dg.AssetCheckResult:
    event = latest_materialization(context.instance, dg.AssetKey("tool_spec_index"), None)
    rows = lancedb.connect().open_table(event.metadata["lance_table"].value).to_arrow()
    problems = index_problems(
        rows["tool_id"].to_pylist(), vector_matrix(rows), tool_specs["tool_id"].to_list(), embedder.dim
    )
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={INDEX_COMPLETE: not problems, "problems": "; ".join(problems) or "none", "indexed": len(rows)},
    )


def _reasons_named(frame: pl.DataFrame, asset: str, quality: QualityResource) -> dg.AssetCheckResult:
    schema, reasons = REJECT_TABLES[asset]
    suite = quarantine_suite(reasons, [column for column in schema if column not in SHARED_QUARANTINE_SCHEMA])
    return quality.validate(frame, asset, suite).to_check_result()


@dg.asset_check(asset="tool_specs_quarantine", blocking=True, description=REJECTS_NAMED)
def tool_specs_quarantine_valid(tool_specs_quarantine: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    return _reasons_named(tool_specs_quarantine, "tool_specs_quarantine", quality)


@dg.asset_check(asset="base_tool_trajectory_rejects", blocking=True, description=REJECTS_NAMED)
def base_tool_trajectory_rejects_valid(
    base_tool_trajectory_rejects: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    return _reasons_named(base_tool_trajectory_rejects, "base_tool_trajectory_rejects", quality)


@dg.asset_check(asset="augmentation_rejects", blocking=True, description=REJECTS_NAMED)
def augmentation_rejects_valid(augmentation_rejects: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    return _reasons_named(augmentation_rejects, "augmentation_rejects", quality)
