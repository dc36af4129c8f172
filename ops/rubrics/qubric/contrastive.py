"""Contrastive rubrics: criteria from what the teacher does and the policy misses, deduplicated, and kept
only when grading with them prefers the teacher's answers to the policy's (OpenRubrics' preference-label
consistency).

Each candidate gets a status: `kept`, `duplicate` (a near-copy of a heavier criterion of the same query),
`inconsistent` (the teacher's answers do not pass it more often than the policy's) or `ungraded` (the
judge gave no verdict on one side).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import polars as pl

from ops.common.llm import ChatRequest, ChatResult, LLMClient
from ops.common.quarantine import Rejected, Split, split
from ops.rubrics.criteria import CRITERIA_SCHEMA, validate_criterion
from ops.rubrics.qubric.judging import JudgeSettings, Response, criteria_by_item, grade_responses
from ops.rubrics.qubric.prompts import contrastive_messages, criteria_schema
from ops.rubrics.qubric.teacher import json_answer
from ops.rubrics.scores import graded_criteria

CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    **CRITERIA_SCHEMA,
    "status": pl.String(),
    "teacher_pass": pl.Float64(),
    "policy_pass": pl.Float64(),
}
KEPT, DUPLICATE, INCONSISTENT, UNGRADED_STATUS = "kept", "duplicate", "inconsistent", "ungraded"
STATUSES = (KEPT, DUPLICATE, INCONSISTENT, UNGRADED_STATUS)
CONTRASTIVE_REASONS = ("invalid_json", "llm_error", "no_valid_criterion")
TEACHER, POLICY = "teacher", "policy"
_TOKEN = re.compile(r"\w+")


def first_responses(responses: pl.DataFrame) -> dict[str, str]:
    """The lowest-sample response text per query."""
    first = responses.sort("query_id", "sample").group_by("query_id", maintain_order=True).first()
    return dict(zip(first["query_id"].to_list(), first["response"].to_list(), strict=True))


def contrastive_requests(
    scenarios: pl.DataFrame,
    teacher: dict[str, str],
    policy: dict[str, str],
    max_criteria: int,
    max_tokens: int,
) -> tuple[list[str], list[ChatRequest]]:
    """One request per query that has a teacher and a policy answer: the query ids and the requests."""
    ids, requests = [], []
    for row in scenarios.iter_rows(named=True):
        query_id = row["query_id"]
        if query_id not in teacher or query_id not in policy:
            continue
        messages = contrastive_messages(row["scenario_query"], row["key_points"], teacher[query_id], policy[query_id])
        ids.append(query_id)
        requests.append(ChatRequest(messages, criteria_schema(max_criteria), max_tokens, request_id=query_id))
    return ids, requests


def parse_criteria(query_ids: Sequence[str], results: Sequence[ChatResult]) -> tuple[pl.DataFrame, Split]:
    """Candidate criteria (`CRITERIA_SCHEMA`, id `<query id>:c<n>`) and the split of the queries: kept with
    their candidate count, or quarantined with the raw text when the answer is not JSON or holds no valid
    criterion (rows in = queries asked)."""
    criteria: list[dict[str, Any]] = []
    counts: list[dict[str, Any]] = []
    rejected: list[Rejected] = []
    for query_id, result in zip(query_ids, results, strict=True):
        parsed, problem = json_answer(result, query_id)
        if problem is not None:
            rejected.append(problem)
            continue
        rows = [_candidate(query_id, index, raw) for index, raw in enumerate(parsed.get("criteria") or [])]
        rows = [row for row in rows if row is not None]
        if not rows:
            rejected.append(Rejected(query_id, "no_valid_criterion", "no criterion with text and weight", result.text))
            continue
        criteria.extend(rows)
        counts.append({"query_id": query_id, "candidates": len(rows)})
    schema = {"query_id": pl.String(), "candidates": pl.Int64()}
    return pl.DataFrame(criteria, schema=CRITERIA_SCHEMA), split(
        counts, schema, rejected, len(query_ids), CONTRASTIVE_REASONS
    )


def _candidate(query_id: str, index: int, raw: Any) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    row = {
        "criterion_id": f"{query_id}:c{index}",
        "item_id": query_id,
        "turn_index": 0,
        "text": str(raw.get("text") or "").strip(),
        "weight": raw.get("weight"),
        "required": raw.get("kind") == "hard_rule",
        "category": str(raw.get("kind") or "principle"),
        "subcategory": "",
        "tags": ["contrastive"],
    }
    if validate_criterion(row) is not None or not 1 <= row["weight"] <= 5:
        return None
    return {**row, "weight": float(row["weight"])}


def _tokens(text: str) -> frozenset[str]:
    return frozenset(token.casefold() for token in _TOKEN.findall(text))


def duplicate_ids(criteria: pl.DataFrame, threshold: float = 0.7) -> set[str]:
    """Criteria whose token set overlaps (Jaccard >= threshold) a heavier (then earlier) one of the same query."""
    duplicates: set[str] = set()
    ordered = criteria.with_row_index("_order").sort("item_id", "weight", "_order", descending=[False, True, False])
    for _, group in ordered.group_by("item_id", maintain_order=True):
        chosen: list[frozenset[str]] = []
        for row in group.iter_rows(named=True):
            tokens = _tokens(row["text"])
            if any(len(tokens & other) / max(1, len(tokens | other)) >= threshold for other in chosen):
                duplicates.add(row["criterion_id"])
            else:
                chosen.append(tokens)
    return duplicates


def consistency(
    client: LLMClient,
    candidates: pl.DataFrame,
    teacher_responses: pl.DataFrame,
    policy_responses: pl.DataFrame,
    samples: int,
    settings: JudgeSettings,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Grade every non-duplicate candidate on the first `samples` teacher and policy answers of its query;
    return the candidates with status and pass rates (`CANDIDATE_SCHEMA`) and the grades."""
    duplicates = duplicate_ids(candidates)
    unique = candidates.filter(~pl.col("criterion_id").is_in(list(duplicates)))
    responses = _responses(teacher_responses, TEACHER, samples) + _responses(policy_responses, POLICY, samples)
    grades = grade_responses(client, responses, criteria_by_item(unique), settings)
    rates = _pass_rates(grades, unique)
    rows = []
    for row in candidates.iter_rows(named=True):
        teacher_pass, policy_pass = rates.get((row["criterion_id"], TEACHER)), rates.get((row["criterion_id"], POLICY))
        rows.append(
            {
                **row,
                "status": _status(row["criterion_id"] in duplicates, teacher_pass, policy_pass),
                "teacher_pass": teacher_pass,
                "policy_pass": policy_pass,
            }
        )
    return pl.DataFrame(rows, schema=CANDIDATE_SCHEMA), grades


def _status(duplicate: bool, teacher_pass: float | None, policy_pass: float | None) -> str:
    """The consistency rule: kept only when the teacher's answers pass strictly more often than the policy's."""
    if duplicate:
        return DUPLICATE
    if teacher_pass is None or policy_pass is None:
        return UNGRADED_STATUS
    return KEPT if teacher_pass > policy_pass else INCONSISTENT


def _responses(frame: pl.DataFrame, role: str, samples: int) -> list[Response]:
    rows = frame.filter(pl.col("sample") < samples).sort("query_id", "sample")
    return [
        Response(f"{row['query_id']}|{role}|{row['sample']}", role, row["query_id"], row["prompt"], row["response"])
        for row in rows.iter_rows(named=True)
    ]


def _pass_rates(grades: pl.DataFrame, criteria: pl.DataFrame) -> dict[tuple[str, str], float]:
    """Share of graded answers that pass, per (criterion, role); a side with no graded answer is absent."""
    if grades.is_empty():
        return {}
    rows = graded_criteria(grades, criteria).filter(pl.col("graded") == 1)
    rates = rows.group_by("criterion_id", "model").agg(pl.col("passed").mean())
    return {(row["criterion_id"], row["model"]): row["passed"] for row in rates.iter_rows(named=True)}
