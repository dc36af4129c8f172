"""The model under test answers the missions, the judge grades every criterion, and the scores per model."""

import dagster as dg
import polars as pl

from assets.outputs import frame_output, headline_metadata, markdown_table, png_metadata
from assets.shopbench.missions import GROUP, bundled_catalog
from ops.common.plots import grouped_bar_png, line_png
from ops.rubrics.grading import grade, grading_cost
from ops.rubrics.reliability import judge_agreement
from ops.rubrics.scores import score_breakdowns
from ops.shopbench.catalog import product_facts
from ops.shopbench.evaluation import grading_items, model_summary, select_missions, turn_degradation
from ops.shopbench.responses import answer_missions
from pipelines.partitions import models_under_test
from resources.duckdb import DuckDBResource
from resources.inputs import InputFoldersResource
from resources.io_manager import materialized_partition_files
from resources.llm import LLMResource
from resources.scale import ScaleResource


@dg.asset(partitions_def=models_under_test, group_name=GROUP, code_version="1", kinds={"llm", "polars"}, pool="llm")
def assistant_responses(
    context: dg.AssetExecutionContext,
    shopping_missions: pl.DataFrame,
    llm: LLMResource,
    inputs: InputFoldersResource,
    scale: ScaleResource,
) -> dg.Output:
    """The model under test (this partition: "default" is the profile's model, any other key a model of the
    same backend) answers every turn of every mission, with its own earlier answers in context and the
    mission's catalog products as facts. A new model is a new partition and a backfill."""
    model = context.partition_key
    missions = select_missions(shopping_missions, scale.shopbench_missions)
    client = llm.for_model(model)
    try:
        model_id = client.model_id
        responses = answer_missions(
            client,
            missions,
            product_facts=product_facts(bundled_catalog(inputs)),
            model_label=model,
            max_tokens=scale.shopbench_response_max_tokens,
        )
    finally:
        if client is not llm:
            client.close()
    failed = responses.filter(pl.col("response").is_null())
    return frame_output(
        responses,
        {
            "model": model,
            "model_id": model_id,
            "missions": missions.height,
            "turns_answered": responses.height - failed.height,
            "turns_failed": failed.height,
            "mean_latency_s": float(responses["latency"].mean() or 0.0),
        },
    )


@dg.asset(partitions_def=models_under_test, group_name=GROUP, code_version="1", kinds={"llm", "polars"}, pool="llm")
def rubric_grades(
    context: dg.AssetExecutionContext,
    assistant_responses: pl.DataFrame,
    shopping_mission_criteria: pl.DataFrame,
    llm: LLMResource,
    scale: ScaleResource,
) -> dg.Output:
    """One judge call per (answered turn, criterion) through the rubric engine, JSON verdicts; negative
    criteria judged as "did the bad behaviour occur"; failures retried, then recorded as ungraded (never
    a pass or a fail). Turns without a response leave their criteria ungraded with the reason."""
    items, unanswered = grading_items(assistant_responses, shopping_mission_criteria)
    context.log.info(f"grading {len(items)} criteria of {assistant_responses.height} turns with {llm.model_id}")
    grades = grade(
        llm,
        items,
        explanation_max_chars=scale.judge_explanation_max_chars or None,
        max_tokens=256 if scale.judge_explanation_max_chars else 512,
    )
    grades = pl.concat([grades, unanswered])
    statuses = grades.group_by("status").len().sort("status")
    return frame_output(
        grades,
        {
            "judge": llm.model_id,
            "statuses": markdown_table(statuses),
            **{f"cost_{name}": value for name, value in grading_cost(grades).items()},
        },
    )


class ShopbenchScoresConfig(dg.Config):
    """Bootstrap resamples of the HealthBench-style score, and an optional CSV of human labels
    (criterion_id, response_id, label) to measure the judge against."""

    n_bootstrap: int = 1000
    human_labels_path: str = ""


@dg.asset(
    group_name=GROUP, code_version="1", kinds={"polars", "duckdb"}, deps=["rubric_grades", "shopping_mission_criteria"]
)
def shopbench_scores(
    context: dg.AssetExecutionContext,
    config: ShopbenchScoresConfig,
    shopping_mission_criteria: pl.DataFrame,
    duckdb: DuckDBResource,
) -> dg.Output:
    """Scores of every graded model: weighted pass rate overall, on required and optional criteria, by
    category, subcategory and turn; the HealthBench-style clipped mean with its bootstrap std; the
    per-turn degradation chart and the model comparison table. Also in DuckDB (`shopbench_*` tables)."""
    files, missing = materialized_partition_files(
        context.instance,
        dg.AssetKey("rubric_grades"),
        models_under_test.get_partition_keys(dynamic_partitions_store=context.instance),
    )
    if not files:
        raise dg.Failure("no model under test has rubric grades yet: materialize `rubric_grades` first")
    grades = pl.read_parquet(files)
    criteria = shopping_mission_criteria
    breakdowns = score_breakdowns(grades, criteria)
    summary = model_summary(grades, criteria, n_bootstrap=config.n_bootstrap)
    turns = turn_degradation(grades, criteria)
    duckdb.replace_table("shopbench_grades", grades.lazy())
    duckdb.replace_table("shopbench_breakdowns", breakdowns.lazy())
    duckdb.replace_table("shopbench_model_scores", summary.lazy())
    metadata = {
        **headline_metadata(_headlines(summary)),
        "models": markdown_table(summary),
        "models_not_graded": ", ".join(missing) or "none",
        "by_category": markdown_table(breakdowns.filter(pl.col("dimension") == "category")),
        "per_turn": markdown_table(turns),
        "per_turn_chart": _turn_chart(turns),
        "model_comparison_chart": _comparison_chart(summary),
        "duckdb_tables": "shopbench_grades, shopbench_breakdowns, shopbench_model_scores",
    }
    if config.human_labels_path:
        labels = pl.read_csv(config.human_labels_path, schema_overrides={"label": pl.Boolean})
        metadata["judge_agreement"] = dg.MetadataValue.json(judge_agreement(grades, labels))
    return frame_output(breakdowns, metadata)


def _turn_chart(turns: pl.DataFrame) -> dg.MetadataValue:
    indices = sorted(set(turns["turn_index"].to_list()))
    series = {}
    for (model,), group in turns.group_by("model", maintain_order=True):
        rates = dict(zip(group["turn_index"].to_list(), group["weighted_pass_rate"].to_list(), strict=True))
        series[model] = [_number(rates.get(index)) for index in indices]
    title = "Weighted pass rate by turn (multi-turn missions)"
    chart = line_png([f"turn {index}" for index in indices], series, title, "pass rate", ylim=(0, 1))
    return png_metadata(chart, title)


def _comparison_chart(summary: pl.DataFrame) -> dg.MetadataValue:
    columns = [
        name
        for name in ("pass_rate", "pass_rate_required_required", "pass_rate_required_optional")
        if name in summary.columns
    ]
    series = {
        name.replace("pass_rate_required_", ""): [_number(v) for v in summary[name].to_list()] for name in columns
    }
    title = "Models under test: weighted pass rate"
    return png_metadata(grouped_bar_png(summary["model"].to_list(), series, title, "pass rate", ylim=(0, 1)), title)


def _headlines(summary: pl.DataFrame) -> dict[str, float | None]:
    """Per model under test: the weighted pass rate and the HealthBench-style score."""
    figures = {}
    for row in summary.iter_rows(named=True):
        figures[f"pass_rate_{row['model']}"] = row["pass_rate"]
        figures[f"healthbench_score_{row['model']}"] = row.get("healthbench_score")
    return figures


def _number(value: float | None) -> float:
    """A rate for a chart: a slice with nothing graded has no rate and draws nothing."""
    return float("nan") if value is None else value
