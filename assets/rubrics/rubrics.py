"""Contrastive rubrics, the learnability filter, and the query-rubric pairs artifact with its TRL export."""

import dagster as dg
import polars as pl

from assets.outputs import frame_output, headline_metadata, markdown_table, png_metadata
from assets.rubrics.common import GROUP, LOCAL_CAVEAT, judge_settings, policy_name, teacher_client
from ops.common.llm import UsageTotals
from ops.common.plots import grouped_bar_png
from ops.rubrics.grading import grading_cost
from ops.rubrics.qubric.contrastive import (
    KEPT,
    consistency,
    contrastive_requests,
    first_responses,
    parse_criteria,
)
from ops.rubrics.qubric.judging import sample_scores
from ops.rubrics.qubric.learnability import LearnabilityRule, learnability_frame, p_hat_histogram
from ops.rubrics.qubric.pairs import build_pairs, jsonl_bytes, trl_rows
from ops.rubrics.qubric.prompts import PROMPT_VERSION
from ops.rubrics.qubric.teacher import KEY_POINT_METHOD
from resources.artifact_store import ArtifactStoreResource
from resources.llm import LLMResource
from resources.scale import ScaleResource

TRL_EXPORT = "pairs.jsonl"


@dg.multi_asset(
    outs={
        "contrastive_rubrics": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"llm", "polars"},
            description="Candidate criteria per query from the teacher-vs-policy gap (weighted, hard rules and "
            "principles) with their status: kept, duplicate, inconsistent (does not prefer the teacher) or ungraded.",
        ),
        "contrastive_rubrics_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars"},
            description="Queries whose criteria answer was not valid JSON or held no valid criterion (raw text).",
        ),
    },
    pool="llm",
)
def contrastive_rubrics(
    scenario_queries: pl.DataFrame,
    teacher_responses: pl.DataFrame,
    policy_responses: pl.DataFrame,
    llm: LLMResource,
    scale: ScaleResource,
):
    """The teacher writes criteria from what its answer does and the policy's misses; near-duplicates are
    dropped, and a criterion is kept only if the rubric engine, grading with it, passes the teacher's
    answers more often than the policy's (preference-label consistency). The judge is the profile's LLM."""
    scenarios = scenario_queries.filter(pl.col("method") == KEY_POINT_METHOD)
    teacher_first, policy_first = first_responses(teacher_responses), first_responses(policy_responses)
    with teacher_client(llm, scale) as (teacher, provenance):
        ids, requests = contrastive_requests(
            scenarios, teacher_first, policy_first, scale.qubric_max_criteria, scale.qubric_teacher_tokens
        )
        results = teacher.chat(requests)
    candidates, queries = parse_criteria(ids, results)
    rubrics, grades = consistency(
        llm, candidates, teacher_responses, policy_responses, scale.qubric_consistency_samples, judge_settings(scale)
    )
    status = rubrics.group_by("status").len().sort("status")
    metadata = {
        **queries.metadata(),
        **provenance,
        "judge": llm.model_id,
        "prompt_version": PROMPT_VERSION,
        "status": markdown_table(status),
        **{f"criteria_{row['status']}": row["len"] for row in status.iter_rows(named=True)},
        **{f"judge_{key}": value for key, value in grading_cost(grades).items()},
        **UsageTotals.from_results(results).as_metadata(),
    }
    yield frame_output(rubrics, metadata, output_name="contrastive_rubrics")
    yield frame_output(queries.quarantined, output_name="contrastive_rubrics_quarantine")


class LearnabilityConfig(dg.Config):
    """The learnability rule: keep a pair when floor < p̂ < ceiling and its sample scores vary."""

    floor: float = 0.1
    ceiling: float = 0.9


@dg.asset(group_name=GROUP, code_version="1", kinds={"llm", "polars"}, pool="llm")
def rubric_learnability(
    config: LearnabilityConfig,
    scenario_queries: pl.DataFrame,
    contrastive_rubrics: pl.DataFrame,
    policy_responses: pl.DataFrame,
    llm: LLMResource,
    scale: ScaleResource,
) -> dg.Output:
    """Every query's G policy samples graded with its kept criteria: p̂ (mean weighted pass rate), spread,
    p̂(1-p̂), kept or dropped with the reason (all_fail, all_pass, zero_spread, no_criteria, ungraded)."""
    kept = contrastive_rubrics.filter(pl.col("status") == KEPT)
    scores, grades = sample_scores(llm, kept, policy_responses, judge_settings(scale))
    query_ids = scenario_queries.filter(pl.col("method") == KEY_POINT_METHOD)["query_id"].sort().to_list()
    frame = learnability_frame(query_ids, scores, LearnabilityRule(config.floor, config.ceiling))
    reasons = frame.group_by("reason").len().sort("reason")
    before = p_hat_histogram(frame["p_hat"].to_list())
    after = p_hat_histogram(frame.filter(pl.col("kept"))["p_hat"].to_list())
    chart = grouped_bar_png(
        list(before),
        {"all pairs": list(before.values()), "kept": list(after.values())},
        "p̂ before and after the learnability filter",
        "pairs",
    )
    numbers = {"kept_share": frame["kept"].mean() if frame.height else None, "p_hat_mean": frame["p_hat"].mean()}
    return frame_output(
        frame,
        {
            **headline_metadata(numbers),
            "judge": llm.model_id,
            "reasons": markdown_table(reasons),
            **{f"pairs_{row['reason']}": row["len"] for row in reasons.iter_rows(named=True)},
            "p_hat_histogram": png_metadata(chart, "p̂ histogram before/after the filter"),
            **{f"judge_{key}": value for key, value in grading_cost(grades).items()},
            "note": LOCAL_CAVEAT,
        },
    )


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars", "parquet", "json"})
def query_rubric_pairs(
    scenario_queries: pl.DataFrame,
    contrastive_rubrics: pl.DataFrame,
    rubric_learnability: pl.DataFrame,
    teacher_key_points: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    llm: LLMResource,
    scale: ScaleResource,
) -> dg.Output:
    """THE artifact: per learnable query, the original and scenario query, key points, weighted criteria, p̂,
    spread and provenance (teacher, policy, judge, prompt version); Parquet in the store, plus a JSONL export
    (`prompt` chat + `criteria` JSON) that TRL's GRPOTrainer and verl read."""
    provenance = {
        "teacher": teacher_key_points["teacher"][0] if teacher_key_points.height else "",
        "policy": policy_name(scale),
        "judge": llm.model_id,
    }
    scenarios = scenario_queries.filter(pl.col("method") == KEY_POINT_METHOD)
    pairs = build_pairs(
        scenarios, contrastive_rubrics.filter(pl.col("status") == KEPT), rubric_learnability, provenance
    )
    output = frame_output(pairs, {"pairs": pairs.height, **provenance, "note": LOCAL_CAVEAT})
    store = artifact_store.get_store()
    key = ["query_rubric_pairs", "trl_jsonl"]
    version = output.data_version.value
    store.write_files(key, None, version, {TRL_EXPORT: jsonl_bytes(trl_rows(pairs))})
    output.metadata["trl_jsonl"] = dg.MetadataValue.path(str(store.folder(key, None, version) / TRL_EXPORT))
    return output
