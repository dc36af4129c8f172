"""Blocking checks of the RESD assets: GE suites on the tables plus the invariants each artifact promises."""

import json

import dagster as dg
import polars as pl

from assets.agents.resd import CONTEXTS_FILE, LINEAGE_FILE, PLAYBOOK_FILE, SKIPPED_FILE
from assets.models import load_model_files
from assets.quarantine import accounting, recorded_rows_in
from ops.agents.resd.evaluation import EVAL_ARMS
from ops.agents.resd.playbook import SECTIONS, from_json
from ops.agents.resd.reflections import REASONS, REFLECTIONS_SCHEMA
from ops.agents.resd.rollouts import ARMS, ROLLOUT_SCHEMA, STUDENT
from ops.common.expectations import between, columns_exist, in_set, not_null, row_count_between, unique
from ops.common.quarantine import quarantine_suite
from resources.artifact_store import ArtifactStoreResource
from resources.quality import QualityResource
from training.rl.card import TRAINING_RECORD
from training.rl.integrity import adapter_problems

ONE_STUDENT_ROLLOUT = "every task has exactly one student rollout; failed == reward < 1"
REFLECTS_FAILURES = "every reflection is about a failed student rollout of this round"
PLAYBOOK_SOUND = "unique bullet ids, known sections, counters >= 0, no pruned bullet kept, lineage recorded"
DISTILLATION_SOUND = "adapter loads with finite weights and finite reverse KL per step; every cut bullet recorded"
EVAL_COMPLETE = "every arm answered every held-out task once; no training task evaluated; success in [0, 1]"


def _rollout_suite(columns: list[str], arms: list[str]) -> list:
    return [
        *columns_exist(columns),
        not_null("task_id"),
        unique("rollout_id"),
        between("reward", 0.0, 1.0),
        in_set("arm", arms),
        row_count_between(1, None),
    ]


@dg.asset_check(asset="failed_rollouts", blocking=True, description=f"GE suite; {ONE_STUDENT_ROLLOUT}.")
def failed_rollouts_valid(failed_rollouts: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    rollouts = failed_rollouts
    students = rollouts.filter(pl.col("arm") == STUDENT)
    one_each = students["task_id"].n_unique() == students.height == rollouts["task_id"].n_unique()
    consistent = (rollouts["failed"] == (rollouts["reward"] < 1.0)).all()
    report = quality.validate(rollouts, "failed_rollouts", _rollout_suite(list(ROLLOUT_SCHEMA), list(ARMS)))
    return report.to_check_result(extra={ONE_STUDENT_ROLLOUT: bool(one_each and consistent)})


@dg.asset_check(
    asset="reflections",
    blocking=True,
    additional_ins={"reflections_quarantine": dg.AssetIn(), "failed_rollouts": dg.AssetIn()},
    description=f"GE suite; rows in = kept + quarantined; {REFLECTS_FAILURES}.",
)
def reflections_valid(
    context: dg.AssetCheckExecutionContext,
    reflections: pl.DataFrame,
    reflections_quarantine: pl.DataFrame,
    failed_rollouts: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    failed_ids = set(failed_rollouts.filter((pl.col("arm") == STUDENT) & pl.col("failed"))["rollout_id"])
    verdict, counts = accounting(
        recorded_rows_in(context, "reflections"), reflections.height, reflections_quarantine.height
    )
    about_failures = set(reflections["rollout_id"]) | set(reflections_quarantine["record_id"]) <= failed_ids
    suite = [*columns_exist(list(REFLECTIONS_SCHEMA)), unique("reflection_id"), in_set("section", list(SECTIONS))]
    suite += [not_null("lesson"), not_null("diagnosis")]
    return quality.validate(reflections, "reflections", suite).to_check_result(
        extra={**verdict, REFLECTS_FAILURES: about_failures}, metadata=counts
    )


@dg.asset_check(
    asset="reflections_quarantine",
    blocking=True,
    description="Every refused reflection names its rollout and a reason code of `REASONS`.",
)
def reflections_quarantine_valid(reflections_quarantine: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = quarantine_suite(REASONS)
    return quality.validate(reflections_quarantine, "reflections_quarantine", suite).to_check_result()


@dg.asset_check(asset="playbook", blocking=True, description=f"{PLAYBOOK_SOUND}.")
def playbook_sound(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource
) -> dg.AssetCheckResult:
    files = load_model_files(context.instance, artifact_store.get_store(), "playbook")
    book = from_json(files[PLAYBOOK_FILE].decode())
    lineage = json.loads(files[LINEAGE_FILE])
    ids = [b.id for b in book.bullets]
    problems = []
    if len(ids) != len(set(ids)):
        problems.append("duplicated bullet ids")
    problems += [f"{b.id}: unknown section {b.section}" for b in book.bullets if b.section not in SECTIONS]
    problems += [f"{b.id}: negative counter" for b in book.bullets if min(b.helpful, b.harmful) < 0]
    problems += [f"pruned {i} still present" for i in lineage["pruned"] if i in ids]
    problems += [f"merged {m['merged']} still present" for m in lineage["merges"] if m["merged"] in ids]
    if any(not change["source"] for change in lineage["changes"]):
        problems.append("a change without its source")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={PLAYBOOK_SOUND: not problems, "problems": "; ".join(problems) or "none", "bullets": len(ids)},
    )


@dg.asset_check(asset="self_distillation", blocking=True, description=f"{DISTILLATION_SOUND}.")
def self_distillation_sound(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource
) -> dg.AssetCheckResult:
    files = load_model_files(context.instance, artifact_store.get_store(), "self_distillation")
    if SKIPPED_FILE in files:
        reason = json.loads(files[SKIPPED_FILE])["skipped"]
        return dg.AssetCheckResult(passed=True, metadata={DISTILLATION_SOUND: True, "skipped": reason})
    record = json.loads(files[TRAINING_RECORD])
    problems = adapter_problems(files, expected_steps=record["config"]["max_steps"])
    if not all(isinstance(s.get("distillation_loss"), float) for s in record["steps"]):
        problems.append("a step without a finite reverse KL")
    contexts = json.loads(files[CONTEXTS_FILE])
    if any(set(c["kept"]) & set(c["cut"]) for c in contexts):
        problems.append("a bullet both kept and cut")
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={DISTILLATION_SOUND: not problems, "problems": "; ".join(problems) or "none", "rows": len(contexts)},
    )


@dg.asset_check(
    asset="resd_eval",
    blocking=True,
    additional_ins={"failed_rollouts": dg.AssetIn()},
    description=f"GE suite; {EVAL_COMPLETE}.",
)
def resd_eval_valid(
    resd_eval: pl.DataFrame, failed_rollouts: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    counts = resd_eval.group_by("arm").agg(pl.len(), pl.col("task_id").n_unique().alias("unique"))
    complete = (
        counts.height == len(EVAL_ARMS)
        and counts["len"].n_unique() == 1
        and bool((counts["len"] == counts["unique"]).all())
    )
    leaked = set(resd_eval["task_id"]) & set(failed_rollouts["task_id"])
    suite = [*columns_exist(list(ROLLOUT_SCHEMA)), not_null("task_id"), between("reward", 0.0, 1.0)]
    suite.append(in_set("arm", list(EVAL_ARMS)))
    return quality.validate(resd_eval, "resd_eval", suite).to_check_result(
        extra={EVAL_COMPLETE: complete and not leaked}, metadata={"leaked_training_tasks": len(leaked)}
    )
