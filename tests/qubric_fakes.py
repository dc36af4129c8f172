"""A fake QUBRIC teacher and judge (tests only): answers each JSON schema the domain asks for."""

from __future__ import annotations

import hashlib

from ops.common.llm import ChatRequest
from tests.fakes import Answer, schema_properties


def _parity(text: str) -> bool:
    return hashlib.sha256(text.encode()).digest()[0] % 2 == 0


def qubric_answer(request: ChatRequest) -> Answer:
    """Key points, rewrites (the naive one cites a report that is nowhere in the query), three criteria, and
    verdicts: the teacher's answers pass every criterion, the policy's pass by a hash of answer and criterion
    (so groups vary). A query containing "broken" gets text, not JSON."""
    content = request.messages[-1]["content"]
    properties = schema_properties(request)
    if "broken" in content and "criteria_met" not in properties:
        return "I cannot answer in JSON, sorry."
    if "key_points" in properties:
        return {"key_points": ["Name the main trade-off", "Give one concrete example"], "answer": "TEACHER view"}
    if "scenario_query" in properties:
        naive = "narrower" in request.messages[0]["content"]
        return {
            "scenario_query": "According to the 2021 Gartner Data Report, why?"
            if naive
            else f"Scenario: {content[10:60]}?"
        }
    if "criteria" in properties:
        texts = ["Names the main trade-off", "Gives a concrete example", "Explains the reasoning step by step"]
        limit = properties["criteria"].get("maxItems", len(texts))
        criteria = [{"text": t, "kind": "principle", "weight": w} for t, w in zip(texts, [3, 2, 1], strict=True)]
        return {"criteria": criteria[:limit]}
    if "criteria_met" in properties:
        conversation, rubric = content.split("<<<RUBRIC ITEM>>>", 1)
        return {
            "explanation": "fake verdict",
            "criteria_met": "TEACHER" in conversation or _parity(conversation + rubric),
        }
    return "TEACHER answer with a concrete example."
