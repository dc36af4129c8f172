"""Blocking checks on the translation artifacts: GE suites on the tables, plus the invariants that make
the figures mean something (no task lost, answers preserved, rollouts complete, the policy loads, the
Pareto report finite and consistent)."""

import io
import json
import math

import dagster as dg
import polars as pl

from assets.models import load_model_files
from assets.quarantine import accounting, recorded_rows_in
from assets.translation.policy import DECISIONS_FILE
from ops.common.expectations import between, columns_exist, in_set, not_null, row_count_between, unique
from ops.common.quarantine import quarantine_suite
from ops.translation.cipher import numbers_preserved
from ops.translation.languages import TIERS
from ops.translation.pareto import POINT_SCHEMA
from ops.translation.preserve import REASONS as TRANSLATION_REASONS
from ops.translation.preserve import TRANSLATED_SCHEMA
from ops.translation.rollouts import MODES, ROLLOUT_SCHEMA
from ops.translation.tasks import REASONS as TASK_REASONS
from ops.translation.tasks import TASK_SCHEMA
from ops.translation.tool import BACKEND_NAMES, NO_BACKEND
from resources.artifact_store import ArtifactStoreResource
from resources.io_manager import latest_materialization
from resources.quality import QualityResource
from resources.scale import ScaleResource
from training.rl.card import TRAINING_RECORD
from training.rl.config import PolicyConfig
from training.rl.policy import load_policy
from training.rl.trainer import finite_metrics

ANSWERS_PRESERVED = "every kept translation has the English question's numbers"
SAMPLES_COMPLETE = "every (task, mode) has the same number of samples"
CALLS_ONLY_FREE = "only free-mode rollouts call the tool"


def _latest_metadata(context: dg.AssetCheckExecutionContext, key: str) -> dict:
    event = latest_materialization(context.instance, dg.AssetKey(key), None)
    return dict(event.metadata) if event is not None else {}


@dg.asset_check(
    asset="multilingual_tasks",
    blocking=True,
    additional_ins={"multilingual_tasks_quarantine": dg.AssetIn()},
    description="Unique tasks with a question, numeric answer and known tier; rows in = kept + quarantined.",
)
def multilingual_tasks_valid(
    context: dg.AssetCheckExecutionContext,
    multilingual_tasks: pl.DataFrame,
    multilingual_tasks_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    rows_in = recorded_rows_in(context, "multilingual_tasks")
    accounted, counts = accounting(rows_in, multilingual_tasks.height, multilingual_tasks_quarantine.height)
    suite = [
        *columns_exist(list(TASK_SCHEMA)),
        unique("task_id"),
        not_null("question"),
        not_null("answer"),
        in_set("tier", list(TIERS)),
        row_count_between(1, None),
    ]
    return quality.validate(multilingual_tasks, "multilingual_tasks", suite).to_check_result(
        extra=accounted, metadata=counts
    )


@dg.asset_check(
    asset="translation_tool",
    blocking=True,
    description="One probe per language with a known backend (or 'none') and a positive, finite call cost.",
)
def translation_tool_valid(translation_tool: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [
        unique("language"),
        in_set("tier", list(TIERS)),
        in_set("to_language_backend", [*BACKEND_NAMES, NO_BACKEND]),
        between("call_cost", 1e-9, None),
    ]
    return quality.validate(translation_tool, "translation_tool", suite).to_check_result(
        extra={"call costs finite": bool(translation_tool["call_cost"].is_finite().all())}
    )


@dg.asset_check(
    asset="translated_tasks",
    blocking=True,
    additional_ins={"translated_tasks_quarantine": dg.AssetIn()},
    description="Kept translations keep the answer's numbers and pass the similarity threshold; every "
    "(item, target) pair is kept or quarantined.",
)
def translated_tasks_valid(
    context: dg.AssetCheckExecutionContext,
    translated_tasks: pl.DataFrame,
    translated_tasks_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    rows_in, metadata = recorded_rows_in(context, "translated_tasks"), _latest_metadata(context, "translated_tasks")
    threshold = metadata["similarity_threshold"].value if "similarity_threshold" in metadata else 0.0
    suite = [
        *columns_exist(list(TRANSLATED_SCHEMA)),
        unique("task_id"),
        not_null("question"),
        in_set("tier", list(TIERS)),
        between("similarity", threshold - 1e-4, 1.0001),
    ]
    preserved = all(
        numbers_preserved(english, question) and numbers_preserved(english, back)
        for english, question, back in translated_tasks.select(
            "english_question", "question", "back_translation"
        ).iter_rows()
    )
    accounted, counts = accounting(rows_in, translated_tasks.height, translated_tasks_quarantine.height)
    return quality.validate(translated_tasks, "translated_tasks", suite).to_check_result(
        extra={**accounted, ANSWERS_PRESERVED: preserved},
        metadata=counts,
    )


@dg.asset_check(
    asset="gating_rollouts",
    blocking=True,
    description="Known modes, correctness in [0, 1], equal samples per (task, mode), calls only in free mode.",
)
def gating_rollouts_valid(gating_rollouts: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [
        *columns_exist(list(ROLLOUT_SCHEMA)),
        in_set("mode", list(MODES)),
        between("correct", 0.0, 1.0),
        not_null("task_id"),
        row_count_between(1, None),
    ]
    counts = gating_rollouts.group_by("task_id", "mode").len()["len"]
    calls_outside = gating_rollouts.filter((pl.col("mode") != "free") & pl.col("called")).height
    return quality.validate(gating_rollouts, "gating_rollouts", suite).to_check_result(
        extra={SAMPLES_COMPLETE: counts.n_unique() <= 1, CALLS_ONLY_FREE: calls_outside == 0},
    )


@dg.asset_check(
    asset="gated_policy",
    blocking=True,
    description="The adapter loads on its base; training metrics are finite; base and trained policy were "
    "evaluated on the same tasks.",
)
def gated_policy_valid(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource, scale: ScaleResource
) -> dg.AssetCheckResult:
    files = load_model_files(context.instance, artifact_store.get_store(), "gated_policy")
    record = json.loads(files[TRAINING_RECORD])
    decisions = pl.read_parquet(io.BytesIO(files[DECISIONS_FILE]))
    per_policy = decisions.group_by("policy").agg(pl.col("task_id").sort()).sort("policy")
    same_tasks = per_policy.height == 2 and per_policy["task_id"][0].to_list() == per_policy["task_id"][1].to_list()
    policy = record["config"]["policy"]
    loaded = load_policy(PolicyConfig(policy["base_model"], policy.get("gguf_file"), device="cpu"), files)
    checks = {
        "adapter loads": loaded.model is not None,
        "training metrics finite": finite_metrics(record["steps"]),
        "base and trained evaluated on the same tasks": bool(same_tasks),
        "GSPO (sequence-level importance sampling)": record["config"].get("mode") == "gspo",
    }
    return dg.AssetCheckResult(
        passed=all(checks.values()),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={**{name: bool(ok) for name, ok in checks.items()}, "steps": len(record["steps"])},
    )


@dg.asset_check(
    asset="translation_pareto",
    blocking=True,
    description="Finite figures in range; never-translate costs nothing, always-translate calls every time; "
    "each split has a Pareto front.",
)
def translation_pareto_valid(translation_pareto: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [
        *columns_exist(list(POINT_SCHEMA)),
        between("accuracy", 0.0, 1.0),
        between("call_rate", 0.0, 1.0),
        between("cost", 0.0, None),
        in_set("split", ["train", "held_out"]),
    ]
    numbers = translation_pareto.select("accuracy", "cost", "reward", "call_rate").to_numpy().ravel()
    never = translation_pareto.filter(pl.col("policy") == "never")
    always = translation_pareto.filter(pl.col("policy") == "always")
    fronts = translation_pareto.group_by("split").agg(pl.col("pareto").any())["pareto"]
    return quality.validate(translation_pareto, "translation_pareto", suite).to_check_result(
        extra={
            "figures finite": all(math.isfinite(v) for v in numbers),
            "never-translate costs nothing": bool((never["cost"] == 0).all()),
            "always-translate always calls": bool((always["call_rate"] == 1).all()),
            "a Pareto front per split": bool(fronts.all()),
        }
    )


@dg.asset_check(
    asset="multilingual_tasks_quarantine",
    blocking=True,
    description="Every refused task record has an id and a reason code of the task step's vocabulary.",
)
def multilingual_tasks_quarantine_valid(
    multilingual_tasks_quarantine: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    return quality.validate(
        multilingual_tasks_quarantine, "multilingual_tasks_quarantine", quarantine_suite(TASK_REASONS)
    ).to_check_result()


@dg.asset_check(
    asset="translated_tasks_quarantine",
    blocking=True,
    description="Every refused round trip has an id and a reason code of the answer-preserving filter.",
)
def translated_tasks_quarantine_valid(
    translated_tasks_quarantine: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    return quality.validate(
        translated_tasks_quarantine, "translated_tasks_quarantine", quarantine_suite(TRANSLATION_REASONS)
    ).to_check_result()
