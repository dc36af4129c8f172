"""Blocking checks on the shopbench artifacts: no mission lost, valid criteria, every criterion of
every answered turn graded exactly once (ungraded counted, never passed)."""

import dagster as dg
import polars as pl

from assets.quarantine import accounting, recorded_rows_in
from ops.common.expectations import between, columns_exist, in_set, length_between, not_null, unique
from ops.rubrics.criteria import CRITERIA_SCHEMA
from ops.rubrics.grading import GRADE_STATUSES, GRADES_SCHEMA
from ops.shopbench.missions import MISSIONS_SCHEMA
from ops.shopbench.taxonomy import CATEGORIES
from pipelines.partitions import models_under_test
from resources.quality import QualityResource

CRITERIA_OF_KEPT_MISSIONS = "every criterion belongs to a kept mission and a turn it has"
EVERY_CRITERION_GRADED_ONCE = "one grade per (turn, criterion) of every response"


@dg.asset_check(
    asset="shopping_missions",
    blocking=True,
    additional_ins={"shopping_missions_quarantine": dg.AssetIn(), "shopping_mission_criteria": dg.AssetIn()},
    description="Missions have ids, turns and known categories; every record read is kept or quarantined.",
)
def shopping_missions_valid(
    context: dg.AssetCheckExecutionContext,
    shopping_missions: pl.DataFrame,
    shopping_missions_quarantine: pl.DataFrame,
    shopping_mission_criteria: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    accounted, counts = accounting(
        recorded_rows_in(context, "shopping_missions"), shopping_missions.height, shopping_missions_quarantine.height
    )
    turns = shopping_missions.select(pl.col("mission_id").alias("item_id"), "n_turns")
    orphans = (
        shopping_mission_criteria.join(turns, on="item_id", how="left")
        .filter(pl.col("n_turns").is_null() | ~pl.col("turn_index").is_between(0, pl.col("n_turns") - 1))
        .height
    )
    suite = [
        *columns_exist(list(MISSIONS_SCHEMA)),
        unique("mission_id"),
        not_null("category"),
        between("n_turns", 1, None),
        in_set("category", [*CATEGORIES, *shopping_missions.filter(pl.col("source_format") != "assay")["category"]]),
    ]
    return quality.validate(shopping_missions, "shopping_missions", suite).to_check_result(
        extra={**accounted, CRITERIA_OF_KEPT_MISSIONS: orphans == 0},
        metadata={**counts, "orphan_criteria": orphans},
    )


@dg.asset_check(
    asset="shopping_mission_criteria",
    blocking=True,
    description="Criteria have unique ids, non-empty text and a non-zero numeric weight.",
)
def shopping_mission_criteria_valid(
    shopping_mission_criteria: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    suite = [
        *columns_exist(list(CRITERIA_SCHEMA)),
        unique("criterion_id"),
        length_between("text", 1, None),
        not_null("weight"),
        not_null("required"),
    ]
    nonzero = bool((shopping_mission_criteria["weight"] != 0).all())
    return quality.validate(shopping_mission_criteria, "shopping_mission_criteria", suite).to_check_result(
        extra={"no zero weight": nonzero}
    )


@dg.asset_check(
    asset="rubric_grades",
    blocking=True,
    partitions_def=models_under_test,
    additional_ins={"assistant_responses": dg.AssetIn(), "shopping_mission_criteria": dg.AssetIn()},
    description="Known statuses, and exactly one grade for each criterion of each answered or failed turn.",
)
def rubric_grades_valid(
    rubric_grades: pl.DataFrame,
    assistant_responses: pl.DataFrame,
    shopping_mission_criteria: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    expected = assistant_responses.select("response_id", "mission_id", "turn_index").join(
        shopping_mission_criteria.select(pl.col("item_id").alias("mission_id"), "turn_index", "criterion_id"),
        on=["mission_id", "turn_index"],
    )
    pairs = set(zip(expected["response_id"], expected["criterion_id"], strict=True))
    graded = list(zip(rubric_grades["response_id"], rubric_grades["criterion_id"], strict=True))
    suite = [*columns_exist(list(GRADES_SCHEMA)), in_set("status", list(GRADE_STATUSES)), not_null("criterion_id")]
    return quality.validate(rubric_grades, "rubric_grades", suite).to_check_result(
        extra={EVERY_CRITERION_GRADED_ONCE: len(graded) == len(set(graded)) and set(graded) == pairs},
        metadata={"expected": len(pairs), "graded_rows": len(graded)},
    )
