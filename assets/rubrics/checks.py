"""Blocking checks on the QUBRIC artifacts: GE suites on the tables plus the invariants that matter (rows in =
kept + quarantined, G samples per query, kept criteria prefer the teacher, the learnability rule holds, every
pair has a positive criterion and valid weights, the adapter loads, the evaluation's counts add up)."""

import math

import dagster as dg
import polars as pl

from assets.models import load_model_files
from assets.quarantine import accounting, recorded_rows_in
from ops.common.expectations import between, columns_exist, in_set, not_null, unique
from ops.common.quarantine import quarantine_suite
from ops.common.versioning import frame_version
from ops.rubrics.qubric.contrastive import CANDIDATE_SCHEMA, CONTRASTIVE_REASONS, KEPT, STATUSES
from ops.rubrics.qubric.learnability import LEARNABILITY_SCHEMA, LEARNABLE, REASONS
from ops.rubrics.qubric.no_update import no_update_problems, no_update_record
from ops.rubrics.qubric.pairs import PAIRS_SCHEMA, pair_problems
from ops.rubrics.qubric.pairwise import BASELINE_FIRST, CANDIDATE_FIRST, PAIRWISE_SCHEMA
from ops.rubrics.qubric.queries import HELDOUT, QUERY_REASONS, QUERY_SCHEMA, TRAIN
from ops.rubrics.qubric.teacher import (
    KEY_POINTS_SCHEMA,
    METHODS,
    RESPONSE_REASONS,
    RESPONSE_SCHEMA,
    SCENARIO_SCHEMA,
    TEACHER_REASONS,
)
from resources.artifact_store import ArtifactStoreResource
from resources.quality import QualityResource
from training.rl.integrity import stored_adapter_problems

SAMPLES_COMPLETE = "every query has the same number of samples, numbered 0..G-1"
PREFERS_TEACHER = "every kept criterion passes the teacher's answers more often than the policy's"
RULE_HOLDS = "kept == (reason is learnable), kept pairs have 0 < p̂ < 1 and spread > 0, ranks 1..kept"
PAIRS_USABLE = "every pair has at least one positive criterion and only finite non-zero weights"
ADAPTER_SOUND = "the adapter loads with finite weights; one finite metrics row per configured step"
EVAL_COMPLETE = "every judged query has both orders once; wins are 0/1 where graded"
NO_UPDATE_CONSISTENT = "a no-update record is the only file, names the current pairs version, and there are no pairs"
NOTHING_JUDGED = "when GRPO recorded no update, no verdict was recorded"


def _quarantine_check(asset: str, reasons: tuple[str, ...]) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset, name=f"{asset}_valid", blocking=True, description="Quarantine rows with a known reason."
    )
    def check(frame: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
        return quality.validate(frame, asset, quarantine_suite(reasons)).to_check_result()

    return check


quarantine_checks = [
    _quarantine_check("open_queries_quarantine", QUERY_REASONS),
    _quarantine_check("teacher_key_points_quarantine", TEACHER_REASONS),
    _quarantine_check("scenario_queries_quarantine", TEACHER_REASONS),
    _quarantine_check("teacher_responses_quarantine", RESPONSE_REASONS),
    _quarantine_check("contrastive_rubrics_quarantine", CONTRASTIVE_REASONS),
]


def _kept_check(
    asset: str, schema: dict, key: list[str], extra_suite: list, description: str
) -> dg.AssetChecksDefinition:
    """GE suite (schema columns, unique key, extra expectations) + rows in = kept + quarantined."""

    @dg.asset_check(
        asset=asset,
        name=f"{asset}_valid",
        blocking=True,
        additional_ins={"quarantine": dg.AssetIn(f"{asset}_quarantine")},
        description=f"{description}; rows in = kept + quarantined.",
    )
    def check(
        context: dg.AssetCheckExecutionContext, frame: pl.DataFrame, quarantine: pl.DataFrame, quality: QualityResource
    ) -> dg.AssetCheckResult:
        accounted, counts = accounting(recorded_rows_in(context, asset), frame.height, quarantine.height)
        keyed = frame.select(pl.concat_str(key, separator="|").alias("key"))
        unique_key = keyed["key"].n_unique() == keyed.height
        suite = [*columns_exist(list(schema)), *extra_suite]
        return quality.validate(frame, asset, suite).to_check_result(
            extra={**accounted, f"unique {'+'.join(key)}": unique_key}, metadata=counts
        )

    return check


kept_checks = [
    _kept_check(
        "open_queries",
        QUERY_SCHEMA,
        ["query_id"],
        [not_null("query"), in_set("split", [TRAIN, HELDOUT]), not_null("injection_suspect")],
        "Queries with id, text and split",
    ),
    _kept_check(
        "teacher_key_points",
        KEY_POINTS_SCHEMA,
        ["query_id"],
        [not_null("teacher"), not_null("prompt_version")],
        "Key points per query with the teacher named",
    ),
    _kept_check(
        "scenario_queries",
        SCENARIO_SCHEMA,
        ["query_id", "method"],
        [not_null("scenario_query"), in_set("method", list(METHODS)), between("n_fabricated", 0, None)],
        "Two rewrites per query (key points, naive) with their fabricated references",
    ),
    _kept_check(
        "teacher_responses",
        RESPONSE_SCHEMA,
        ["query_id", "sample"],
        [not_null("response"), in_set("role", ["teacher"])],
        "Teacher answers per (query, sample)",
    ),
]


def _samples_complete(responses: pl.DataFrame) -> bool:
    counts = responses.group_by("query_id").agg(pl.len(), pl.col("sample").max().alias("last"))
    return counts.is_empty() or (counts["len"].n_unique() == 1 and (counts["last"] == counts["len"] - 1).all())


@dg.asset_check(asset="policy_responses", blocking=True, description=f"Policy answers; {SAMPLES_COMPLETE}.")
def policy_responses_valid(policy_responses: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [*columns_exist(list(RESPONSE_SCHEMA)), not_null("response"), in_set("role", ["policy"])]
    return quality.validate(policy_responses, "policy_responses", suite).to_check_result(
        extra={SAMPLES_COMPLETE: _samples_complete(policy_responses)}
    )


@dg.asset_check(
    asset="contrastive_rubrics", blocking=True, description=f"Criteria with known status; {PREFERS_TEACHER}."
)
def contrastive_rubrics_valid(contrastive_rubrics: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    kept = contrastive_rubrics.filter(pl.col("status") == KEPT)
    prefers = kept.is_empty() or bool((kept["teacher_pass"] > kept["policy_pass"]).all())
    weights = all(math.isfinite(w) and w != 0 for w in contrastive_rubrics["weight"].to_list())
    suite = [
        *columns_exist(list(CANDIDATE_SCHEMA)),
        unique("criterion_id"),
        not_null("text"),
        in_set("status", list(STATUSES)),
        between("teacher_pass", 0.0, 1.0),
        between("policy_pass", 0.0, 1.0),
    ]
    return quality.validate(contrastive_rubrics, "contrastive_rubrics", suite).to_check_result(
        extra={PREFERS_TEACHER: prefers, "finite non-zero weights": weights}, metadata={"kept": kept.height}
    )


@dg.asset_check(asset="rubric_learnability", blocking=True, description=f"One row per query; {RULE_HOLDS}.")
def rubric_learnability_valid(rubric_learnability: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    frame = rubric_learnability
    kept = frame.filter(pl.col("kept"))
    rule = (
        (frame["kept"] == (frame["reason"] == LEARNABLE)).all()
        and bool(((kept["p_hat"] > 0) & (kept["p_hat"] < 1) & (kept["spread"] > 0)).all())
        and sorted(kept["rank"].to_list()) == list(range(1, kept.height + 1))
    )
    suite = [
        *columns_exist(list(LEARNABILITY_SCHEMA)),
        unique("query_id"),
        in_set("reason", list(REASONS)),
        between("p_hat", 0.0, 1.0),
        between("spread", 0.0, 1.0),
    ]
    return quality.validate(frame, "rubric_learnability", suite).to_check_result(
        extra={RULE_HOLDS: bool(rule)}, metadata={"kept": kept.height, "dropped": frame.height - kept.height}
    )


@dg.asset_check(asset="query_rubric_pairs", blocking=True, description=f"Pairs table; {PAIRS_USABLE}.")
def query_rubric_pairs_valid(query_rubric_pairs: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    problems = pair_problems(query_rubric_pairs)
    suite = [
        *columns_exist(list(PAIRS_SCHEMA)),
        unique("query_id"),
        not_null("scenario_query"),
        not_null("teacher"),
        not_null("policy"),
        between("p_hat", 0.0, 1.0),
    ]
    return quality.validate(query_rubric_pairs, "query_rubric_pairs", suite).to_check_result(
        extra={PAIRS_USABLE: not problems}, metadata={"problems": "; ".join(problems) or "none"}
    )


@dg.asset_check(
    asset="rubric_policy_grpo",
    blocking=True,
    additional_ins={"query_rubric_pairs": dg.AssetIn("query_rubric_pairs")},
    description=f"{ADAPTER_SOUND}; or {NO_UPDATE_CONSISTENT}.",
)
def rubric_policy_grpo_sound(
    context: dg.AssetCheckExecutionContext, query_rubric_pairs: pl.DataFrame, artifact_store: ArtifactStoreResource
) -> dg.AssetCheckResult:
    files = load_model_files(context.instance, artifact_store.get_store(), "rubric_policy_grpo")
    if no_update_record(files) is not None:
        problems = no_update_problems(files, frame_version(query_rubric_pairs), query_rubric_pairs.height)
        label = NO_UPDATE_CONSISTENT
    else:
        problems, label = stored_adapter_problems(files), ADAPTER_SOUND
    return dg.AssetCheckResult(
        passed=not problems, metadata={label: not problems, "problems": "; ".join(problems) or "none"}
    )


@dg.asset_check(
    asset="rubric_policy_eval", blocking=True, description=f"Pairwise verdicts; {EVAL_COMPLETE}; {NOTHING_JUDGED}."
)
def rubric_policy_eval_valid(
    context: dg.AssetCheckExecutionContext,
    rubric_policy_eval: pl.DataFrame,
    quality: QualityResource,
    artifact_store: ArtifactStoreResource,
) -> dg.AssetCheckResult:
    verdicts = rubric_policy_eval
    grpo = load_model_files(context.instance, artifact_store.get_store(), "rubric_policy_grpo")
    if no_update_record(grpo) is not None:
        return dg.AssetCheckResult(passed=verdicts.is_empty(), metadata={NOTHING_JUDGED: verdicts.is_empty()})
    orders = verdicts.group_by("query_id").agg(pl.col("order").sort().alias("orders"))
    complete = all(row == sorted([CANDIDATE_FIRST, BASELINE_FIRST]) for row in orders["orders"].to_list())
    suite = [
        *columns_exist(list(PAIRWISE_SCHEMA)),
        in_set("order", [CANDIDATE_FIRST, BASELINE_FIRST]),
        in_set("candidate_wins", [0.0, 1.0]),
        not_null("status"),
    ]
    return quality.validate(verdicts, "rubric_policy_eval", suite).to_check_result(
        extra={EVAL_COMPLETE: complete and orders.height > 0}, metadata={"queries": orders.height}
    )
