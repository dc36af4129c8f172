"""Blocking checks on the shopbench drafts, rejects, answers and scores: every draft and every mission
turn accounted for, every refused record with its reason, pass rates in range, each breakdown's
criteria adding up to the model's."""

import dagster as dg
import polars as pl

from ops.common.expectations import columns_exist, in_set, not_null, unique
from ops.common.quarantine import QUARANTINE_SCHEMA as SHARED_QUARANTINE_SCHEMA
from ops.common.quarantine import quarantine_suite
from ops.shopbench.drafting import DRAFT_REASONS, DRAFTS_SCHEMA
from ops.shopbench.evaluation import select_missions
from ops.shopbench.integrity import DRAFT_STATUSES, draft_problems, response_problems, score_problems
from ops.shopbench.missions import QUARANTINE_REASONS, QUARANTINE_SCHEMA
from ops.shopbench.responses import RESPONSES_SCHEMA
from pipelines.partitions import models_under_test
from resources.io_manager import latest_materialization
from resources.quality import QualityResource
from resources.scale import ScaleResource

DRAFTS_ACCOUNTED = "drafts requested == drafts kept + rejects"
TURNS_ACCOUNTED = "one response row per turn of every selected mission"
SCORES_ADD_UP = "pass rates in [0, 1]; every breakdown's criteria add up to the model's"


def _problems(problems: list[str]) -> dict[str, str]:
    return {"problems": "; ".join(problems) or "none"}


@dg.asset_check(
    asset="mission_drafts",
    blocking=True,
    additional_ins={"mission_draft_rejects": dg.AssetIn()},
    description=f"{DRAFTS_ACCOUNTED}; unique ids, known statuses.",
)
def mission_drafts_valid(
    context: dg.AssetCheckExecutionContext,
    mission_drafts: pl.DataFrame,
    mission_draft_rejects: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    event = latest_materialization(context.instance, dg.AssetKey("mission_drafts"), None)
    requested = event.metadata["requested"].value if event is not None else -1
    problems = draft_problems(mission_drafts, mission_draft_rejects, requested)
    suite = [*columns_exist(list(DRAFTS_SCHEMA)), unique("draft_id"), in_set("status", list(DRAFT_STATUSES))]
    return quality.validate(mission_drafts, "mission_drafts", suite).to_check_result(
        extra={DRAFTS_ACCOUNTED: not problems},
        metadata={"requested": requested, "rejected": mission_draft_rejects.height, **_problems(problems)},
    )


@dg.asset_check(
    asset="assistant_responses",
    blocking=True,
    partitions_def=models_under_test,
    additional_ins={"shopping_missions": dg.AssetIn()},
    description=f"{TURNS_ACCOUNTED}, each with a response or an error.",
)
def assistant_responses_valid(
    assistant_responses: pl.DataFrame,
    shopping_missions: pl.DataFrame,
    quality: QualityResource,
    scale: ScaleResource,
) -> dg.AssetCheckResult:
    missions = select_missions(shopping_missions, scale.shopbench_missions)
    problems = response_problems(assistant_responses, missions)
    suite = [*columns_exist(list(RESPONSES_SCHEMA)), unique("response_id"), not_null("mission_id")]
    return quality.validate(assistant_responses, "assistant_responses", suite).to_check_result(
        extra={TURNS_ACCOUNTED: not problems}, metadata={"missions": missions.height, **_problems(problems)}
    )


@dg.asset_check(asset="shopbench_scores", blocking=True, description=f"{SCORES_ADD_UP}.")
def shopbench_scores_valid(shopbench_scores: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    problems = score_problems(shopbench_scores)
    suite = [
        *columns_exist(["dimension", "model", "value", "weighted_pass_rate", "n_criteria", "n_ungraded"]),
        not_null("model"),
        in_set("dimension", ["model", "required", "category", "subcategory", "turn_index"]),
    ]
    return quality.validate(shopbench_scores, "shopbench_scores", suite).to_check_result(
        extra={SCORES_ADD_UP: not problems}, metadata=_problems(problems)
    )


REJECTS_NAMED = "The shared quarantine table: every row names its record, a known reason code and the detail."


@dg.asset_check(asset="mission_draft_rejects", blocking=True, description=REJECTS_NAMED)
def mission_draft_rejects_valid(mission_draft_rejects: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [*quarantine_suite(DRAFT_REASONS), unique("record_id")]
    return quality.validate(mission_draft_rejects, "mission_draft_rejects", suite).to_check_result()


@dg.asset_check(asset="shopping_missions_quarantine", blocking=True, description=REJECTS_NAMED)
def shopping_missions_quarantine_valid(
    shopping_missions_quarantine: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    extra = [column for column in QUARANTINE_SCHEMA if column not in SHARED_QUARANTINE_SCHEMA]
    suite = [*quarantine_suite(QUARANTINE_REASONS, extra), not_null("record_number")]
    return quality.validate(shopping_missions_quarantine, "shopping_missions_quarantine", suite).to_check_result()
