"""Requests to the teacher and parsing of its answers: key points, scenario rewrites, sampled responses.

The LLM resource already retries an answer that is not valid JSON (another seed, some temperature);
what still fails is quarantined with the raw text (`invalid_json`) or the call's error (`llm_error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl

from ops.common.llm import ChatRequest, ChatResult
from ops.common.quarantine import Rejected, Split, split
from ops.rubrics.qubric.fabrication import fabricated_references
from ops.rubrics.qubric.prompts import (
    PROMPT_VERSION,
    key_points_messages,
    key_points_schema,
    scenario_messages,
    scenario_schema,
)

KEY_POINTS_SCHEMA: dict[str, pl.DataType] = {
    "query_id": pl.String(),
    "query": pl.String(),
    "key_points": pl.List(pl.String()),
    "answer": pl.String(),
    "teacher": pl.String(),
    "prompt_version": pl.String(),
}
SCENARIO_SCHEMA: dict[str, pl.DataType] = {
    "query_id": pl.String(),
    "method": pl.String(),
    "query": pl.String(),
    "key_points": pl.List(pl.String()),
    "scenario_query": pl.String(),
    "fabricated": pl.List(pl.String()),
    "n_fabricated": pl.Int64(),
    "teacher": pl.String(),
    "prompt_version": pl.String(),
}
RESPONSE_SCHEMA: dict[str, pl.DataType] = {
    "query_id": pl.String(),
    "sample": pl.Int64(),
    "role": pl.String(),
    "model": pl.String(),
    "prompt": pl.String(),
    "response": pl.String(),
    "completion_tokens": pl.Int64(),
}
TEACHER_REASONS = ("invalid_json", "llm_error", "no_key_points", "empty_rewrite")
RESPONSE_REASONS = ("empty_response",)
KEY_POINT_METHOD, NAIVE_METHOD = "key_points", "naive"
METHODS = (KEY_POINT_METHOD, NAIVE_METHOD)


def json_answer(result: ChatResult | None, record_id: str) -> tuple[dict[str, Any] | None, Rejected | None]:
    """The parsed JSON object of a result, or the quarantine row saying why there is none (raw text kept)."""
    if result is None:
        return None, Rejected(record_id, "llm_error", "no result for this request")
    if result.error is not None and not result.text:
        return None, Rejected(record_id, "llm_error", result.error)
    if not isinstance(result.parsed, dict):
        return None, Rejected(record_id, "invalid_json", result.error or "not a JSON object", result.text)
    return result.parsed, None


def key_point_requests(
    queries: pl.DataFrame, max_points: int, max_tokens: int, answer_max_chars: int | None
) -> list[ChatRequest]:
    """One greedy request per query for its key points and the teacher's answer."""
    schema = key_points_schema(max_points, answer_max_chars)
    return [
        ChatRequest(key_points_messages(row["query"]), schema, max_tokens, request_id=row["query_id"])
        for row in queries.iter_rows(named=True)
    ]


def parse_key_points(queries: pl.DataFrame, results: Sequence[ChatResult], teacher: str) -> Split:
    """Key-point rows (`KEY_POINTS_SCHEMA`); blank points are dropped, a query left with none is quarantined."""
    kept, rejected = [], []
    for row, result in zip(queries.iter_rows(named=True), results, strict=True):
        parsed, problem = json_answer(result, row["query_id"])
        if problem is not None:
            rejected.append(problem)
            continue
        points = [str(point).strip() for point in parsed.get("key_points") or [] if str(point).strip()]
        if not points:
            rejected.append(Rejected(row["query_id"], "no_key_points", "the teacher listed no key point", result.text))
            continue
        answer = str(parsed.get("answer") or "").strip()
        kept.append({**_ids(row), "key_points": points, "answer": answer, "teacher": teacher})
    return split(kept, KEY_POINTS_SCHEMA, rejected, queries.height, TEACHER_REASONS)


def _ids(row: dict[str, Any]) -> dict[str, Any]:
    return {"query_id": row["query_id"], "query": row["query"], "prompt_version": PROMPT_VERSION}


def scenario_requests(key_points: pl.DataFrame, max_tokens: int, max_chars: int | None) -> list[ChatRequest]:
    """Per query a key-point rewrite and a naive narrowing (request id `<query id>|<method>`)."""
    schema = scenario_schema(max_chars)
    return [
        ChatRequest(
            scenario_messages(row["query"], row["key_points"] if method == KEY_POINT_METHOD else None),
            schema,
            max_tokens,
            request_id=f"{row['query_id']}|{method}",
        )
        for row in key_points.iter_rows(named=True)
        for method in METHODS
    ]


def parse_scenarios(key_points: pl.DataFrame, results: Sequence[ChatResult], teacher: str) -> Split:
    """Scenario rows (`SCENARIO_SCHEMA`) with the fabricated references of each rewrite; the rows in are
    (query, method) pairs, record id `<query id>|<method>`."""
    kept, rejected = [], []
    pairs = [(row, method) for row in key_points.iter_rows(named=True) for method in METHODS]
    for (row, method), result in zip(pairs, results, strict=True):
        record_id = f"{row['query_id']}|{method}"
        parsed, problem = json_answer(result, record_id)
        if problem is not None:
            rejected.append(problem)
            continue
        rewrite = str(parsed.get("scenario_query") or "").strip()
        if not rewrite:
            rejected.append(Rejected(record_id, "empty_rewrite", "the rewrite is empty", result.text))
            continue
        fabricated = fabricated_references(rewrite, row["query"], row["key_points"])
        kept.append(
            {
                **_ids(row),
                "method": method,
                "key_points": row["key_points"],
                "scenario_query": rewrite,
                "fabricated": fabricated,
                "n_fabricated": len(fabricated),
                "teacher": teacher,
            }
        )
    return split(kept, SCENARIO_SCHEMA, rejected, len(pairs), TEACHER_REASONS)


def sample_requests(
    prompts: pl.DataFrame, samples: int, max_tokens: int, temperature: float, prompt_column: str = "scenario_query"
) -> list[ChatRequest]:
    """`samples` sampled requests per prompt (seed = sample index, so a rerun hits the cache)."""
    return [
        ChatRequest(
            ({"role": "user", "content": row[prompt_column]},),
            None,
            max_tokens,
            temperature,
            seed,
            f"{row['query_id']}|{seed}",
        )
        for row in prompts.iter_rows(named=True)
        for seed in range(samples)
    ]


def response_frame(
    prompts: pl.DataFrame, texts: Sequence[str], tokens: Sequence[int], samples: int, role: str, model: str
) -> pl.DataFrame:
    """`RESPONSE_SCHEMA` rows for `samples` responses per prompt, in `sample_requests` order."""
    pairs = [(row, seed) for row in prompts.iter_rows(named=True) for seed in range(samples)]
    rows = [
        {
            "query_id": row["query_id"],
            "sample": seed,
            "role": role,
            "model": model,
            "prompt": row["scenario_query"],
            "response": text,
            "completion_tokens": count,
        }
        for (row, seed), text, count in zip(pairs, texts, tokens, strict=True)
    ]
    return pl.DataFrame(rows, schema=RESPONSE_SCHEMA)


def responses_split(responses: pl.DataFrame) -> Split:
    """Responses with text kept; an empty or failed one quarantined (`empty_response`, record `<query>|<sample>`)."""
    empty = responses.filter(pl.col("response").str.strip_chars() == "")
    rejected = [
        Rejected(f"{row['query_id']}|{row['sample']}", "empty_response", f"the {row['role']} wrote nothing", row)
        for row in empty.iter_rows(named=True)
    ]
    kept = responses.filter(pl.col("response").str.strip_chars() != "")
    return split(kept.to_dicts(), RESPONSE_SCHEMA, rejected, responses.height, RESPONSE_REASONS)
