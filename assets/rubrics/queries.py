"""QUBRIC's inputs and the teacher's work on them: open queries, key points, scenario rewrites."""

from pathlib import Path

import dagster as dg
import polars as pl

from assets.outputs import frame_output, headline_metadata
from assets.rubrics.common import GROUP, teacher_client, text_cap
from ops.common.llm import UsageTotals
from ops.rubrics.qubric.prompts import PROMPT_VERSION
from ops.rubrics.qubric.queries import HELDOUT, TRAIN, load_queries, read_jsonl
from ops.rubrics.qubric.teacher import (
    KEY_POINT_METHOD,
    NAIVE_METHOD,
    key_point_requests,
    parse_key_points,
    parse_scenarios,
    scenario_requests,
)
from resources.llm import LLMResource
from resources.scale import ScaleResource

BUNDLED_QUERIES = "samples/arena_hard/questions.jsonl"


def _quarantine_out(what: str) -> dg.AssetOut:
    return dg.AssetOut(
        group_name=GROUP,
        code_version="1",
        kinds={"polars"},
        description=f"{what} refused, one row each with a reason code and the raw record or teacher text.",
    )


class OpenQueriesConfig(dg.Config):
    """The bundled Arena-Hard slice (first `limit` rows; 0: the profile's `qubric_queries`), any user JSONL
    files (`{"id", "query"}` or Arena-Hard rows), the longest query accepted, whether non-English queries
    are kept (off: the local teacher and judge read English only) and the held-out share for evaluation."""

    bundled: str = BUNDLED_QUERIES
    limit: int = 0
    user_files: list[str] = []
    max_chars: int = 8000
    keep_non_english: bool = False
    heldout_share: float = 0.25
    seed: int = 0


@dg.multi_asset(
    outs={
        "open_queries": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars"},
            description="Open-ended queries (bundled Arena-Hard v0.1 slice + user JSONL), split train/held-out.",
        ),
        "open_queries_quarantine": _quarantine_out("Query rows"),
    }
)
def open_queries(config: OpenQueriesConfig, scale: ScaleResource):
    """Open-ended prompts, validated: empty, over-long, non-English, malformed or duplicate rows are
    quarantined; a prompt-injection query is kept as data and flagged `injection_suspect`."""
    limit = config.limit or scale.qubric_queries
    bundled = read_jsonl(Path(config.bundled), "arena_hard")
    records = (bundled[:limit] if limit else bundled) + [
        record for path in config.user_files for record in read_jsonl(Path(path), Path(path).stem)
    ]
    result = load_queries(records, config.max_chars, config.keep_non_english, config.heldout_share, config.seed)
    counts = result.kept.group_by("split").len()
    sides = dict(zip(counts["split"].to_list(), counts["len"].to_list(), strict=True))
    metadata = {
        **result.metadata(),
        "train": sides.get(TRAIN, 0),
        "heldout": sides.get(HELDOUT, 0),
        "injection_suspects": int(result.kept["injection_suspect"].sum()),
    }
    yield frame_output(result.kept, metadata, output_name="open_queries")
    yield frame_output(result.quarantined, output_name="open_queries_quarantine")


@dg.multi_asset(
    outs={
        "teacher_key_points": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"llm", "polars"},
            description="Per training query, the teacher's answer and a JSON list of checkable key points.",
        ),
        "teacher_key_points_quarantine": _quarantine_out("Teacher answers that were not valid JSON (after retries)"),
    },
    pool="llm",
)
def teacher_key_points(open_queries: pl.DataFrame, llm: LLMResource, scale: ScaleResource):
    """The teacher answers each training query and lists its key points (the LLM resource retries output
    that is not valid JSON; what still fails is quarantined with the raw text)."""
    train = open_queries.filter(pl.col("split") == TRAIN)
    with teacher_client(llm, scale) as (teacher, provenance):
        requests = key_point_requests(train, scale.qubric_key_points, scale.qubric_teacher_tokens, text_cap(scale))
        results = teacher.chat(requests)
        result = parse_key_points(train, results, teacher.model_id)
    metadata = {**result.metadata(), **provenance, "prompt_version": PROMPT_VERSION}
    metadata |= UsageTotals.from_results(results).as_metadata()
    yield frame_output(result.kept, metadata, output_name="teacher_key_points")
    yield frame_output(result.quarantined, output_name="teacher_key_points_quarantine")


@dg.multi_asset(
    outs={
        "scenario_queries": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"llm", "polars"},
            description="Each query rewritten two ways: around its key points (QUBRIC) and by naive narrowing "
            "(baseline), with the fabricated references of each rewrite.",
        ),
        "scenario_queries_quarantine": _quarantine_out("Rewrites"),
    },
    pool="llm",
)
def scenario_queries(teacher_key_points: pl.DataFrame, llm: LLMResource, scale: ScaleResource):
    """Scenario-based, evaluable questions grounded in the key points, and the naive-narrowing baseline;
    fabricated references (named documents, datasets, URLs, quotes, figures in neither the query nor the key
    points) are recorded per rewrite."""
    with teacher_client(llm, scale) as (teacher, provenance):
        requests = scenario_requests(teacher_key_points, scale.qubric_teacher_tokens, text_cap(scale))
        results = teacher.chat(requests)
        result = parse_scenarios(teacher_key_points, results, teacher.model_id)
    kept = result.kept
    shares = {
        f"fabricated_share_{method}": _share(kept.filter(pl.col("method") == method))
        for method in (KEY_POINT_METHOD, NAIVE_METHOD)
    }
    metadata = {**result.metadata(), **provenance, **headline_metadata(shares)}
    metadata |= UsageTotals.from_results(results).as_metadata()
    yield frame_output(kept, metadata, output_name="scenario_queries")
    yield frame_output(result.quarantined, output_name="scenario_queries_quarantine")


def _share(rewrites: pl.DataFrame) -> float | None:
    """Share of rewrites with at least one fabricated reference."""
    return float((rewrites["n_fabricated"] > 0).mean()) if rewrites.height else None
