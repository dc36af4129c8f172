"""Grading responses against criteria through the rubric engine (`ops.rubrics.grading.grade`).

Every QUBRIC verdict (consistency check, learnability, reward, pairwise comparison) goes through this one
function, so the judge prompt, its data markers, retries and the "ungraded" rule are the engine's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from ops.common.llm import LLMClient
from ops.rubrics.criteria import Criterion, criteria_from_frame
from ops.rubrics.grading import GradingItem, grade
from ops.rubrics.scores import weighted_pass_rate


@dataclass(frozen=True)
class JudgeSettings:
    """How the judge is asked: attempts per verdict, its token limit and the explanation cap (None: no cap)."""

    max_attempts: int = 3
    max_tokens: int = 512
    explanation_max_chars: int | None = None


@dataclass(frozen=True)
class Response:
    """One answer to grade: its id, who wrote it (`model`), the item (query) and the question it answers."""

    response_id: str
    model: str
    item_id: str
    question: str
    text: str

    def conversation(self) -> tuple[dict[str, str], ...]:
        return ({"role": "user", "content": self.question}, {"role": "assistant", "content": self.text})


def grade_responses(
    client: LLMClient,
    responses: Sequence[Response],
    criteria: Mapping[str, Sequence[Criterion]],
    settings: JudgeSettings,
) -> pl.DataFrame:
    """The grades frame (`GRADES_SCHEMA`) of every response on every criterion of its item."""
    items = [
        GradingItem(response.response_id, response.model, response.item_id, 0, response.conversation(), criterion)
        for response in responses
        for criterion in criteria.get(response.item_id, ())
    ]
    return grade(
        client,
        items,
        max_attempts=settings.max_attempts,
        max_tokens=settings.max_tokens,
        explanation_max_chars=settings.explanation_max_chars,
    )


def response_scores(grades: pl.DataFrame, criteria: pl.DataFrame) -> dict[str, float | None]:
    """Weighted pass rate per response id (Σ|w|·pass / Σ|w| over graded criteria; None when none was graded)."""
    if grades.is_empty():
        return {}
    rates = weighted_pass_rate(grades, criteria)
    return dict(zip(rates["response_id"].to_list(), rates["weighted_pass_rate"].to_list(), strict=True))


def criteria_by_item(criteria: pl.DataFrame) -> dict[str, list[Criterion]]:
    """Criteria (a `CRITERIA_SCHEMA` frame) grouped by item (query) id."""
    grouped: dict[str, list[Criterion]] = {}
    for criterion in criteria_from_frame(criteria):
        grouped.setdefault(criterion.item_id, []).append(criterion)
    return grouped


def sample_scores(
    client: LLMClient, criteria: pl.DataFrame, responses: pl.DataFrame, settings: JudgeSettings
) -> tuple[dict[str, list[float | None]], pl.DataFrame]:
    """Every response (`RESPONSE_SCHEMA` rows) of a query that has criteria, graded on them: per query the
    sample scores in sample order (None = no graded criterion), and the grades frame."""
    rubric = criteria_by_item(criteria)
    answers = [
        Response(f"{row['query_id']}|{row['sample']}", row["role"], row["query_id"], row["prompt"], row["response"])
        for row in responses.sort("query_id", "sample").iter_rows(named=True)
        if row["query_id"] in rubric
    ]
    grades = grade_responses(client, answers, rubric, settings)
    rates = response_scores(grades, criteria)
    scores: dict[str, list[float | None]] = {}
    for answer in answers:
        scores.setdefault(answer.item_id, []).append(rates.get(answer.response_id))
    return scores, grades
