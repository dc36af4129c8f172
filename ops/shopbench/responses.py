"""The model under test answers missions turn by turn, with its own earlier answers in context.

A multi-turn mission fixes the user's turns in advance; the assistant side is whatever the model said.
So turn k is asked with user turns 0..k and the model's answers 0..k-1, which means answering runs in
rounds: round k batches every mission's turn k into one `client.chat` call. When a turn gets no answer
(a backend error), the mission's later turns are recorded with an error and not asked, because asking
them would show the model a conversation it never had.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import polars as pl

from ops.common.llm import ChatRequest, ChatResult, LLMClient

RESPONSES_SCHEMA: dict[str, pl.DataType] = {
    "model": pl.String(),
    "mission_id": pl.String(),
    "turn_index": pl.Int64(),
    "response_id": pl.String(),
    "conversation_json": pl.String(),
    "response": pl.String(),
    "error": pl.String(),
    "tokens": pl.Int64(),
    "latency": pl.Float64(),
}
SYSTEM_PROMPT = (
    "You are a shopping assistant for an online shop. Help the customer choose and understand products. "
    "Only cite products, prices and details you were given or that the customer stated; when something "
    "is not known, say so instead of guessing. Keep answers concise and specific."
)
DEFAULT_MAX_TOKENS = 512


def response_id(model: str, mission_id: str, turn_index: int) -> str:
    """The id of one answer, shared with the grades frame: "model:mission_id:turn_index"."""
    return f"{model}:{mission_id}:{turn_index}"


def turn_requests(
    missions: pl.DataFrame,
    model_label: str,
    previous_answers: Mapping[str, list[str]],
    product_facts: Mapping[str, str] | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> list[ChatRequest]:
    """Requests for each mission's next turn: k = len(previous_answers[mission]) (0 when absent).

    Missions whose turns are all answered get no request. `product_facts` (product id -> fact line)
    puts the mission's catalog products in the system prompt, so catalog facts are checkable.
    """
    requests = []
    for row in missions.select("mission_id", "user_turns", "products").iter_rows(named=True):
        answers = list(previous_answers.get(row["mission_id"], []))
        turn = len(answers)
        if turn >= len(row["user_turns"]):
            continue
        system = _system(row["products"], product_facts)
        requests.append(
            ChatRequest(
                messages=tuple(conversation(row["user_turns"][: turn + 1], answers, system)),
                max_tokens=max_tokens,
                request_id=response_id(model_label, row["mission_id"], turn),
            )
        )
    return requests


def conversation(user_turns: list[str], answers: list[str], system: str = SYSTEM_PROMPT) -> list[dict[str, str]]:
    """System message, then user turn i followed by answer i for every answer given, then the open turn."""
    messages = [{"role": "system", "content": system}]
    for index, user in enumerate(user_turns):
        messages.append({"role": "user", "content": user})
        if index < len(answers):
            messages.append({"role": "assistant", "content": answers[index]})
    return messages


def answer_missions(
    client: LLMClient,
    missions: pl.DataFrame,
    max_turns: int | None = None,
    product_facts: Mapping[str, str] | None = None,
    model_label: str | None = None,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> pl.DataFrame:
    """Answer every mission's turns (the first `max_turns` when set) in rounds; one row per turn.

    `model_label` names the model under test in ids (default: the client's model id). Rows come back
    ordered by mission and turn; `tokens` is prompt plus completion tokens, `latency` seconds.
    """
    model = model_label or client.model_id
    limit = int(missions["n_turns"].max() or 0) if missions.height else 0
    limit = min(limit, max_turns) if max_turns is not None else limit
    answers: dict[str, list[str]] = {mission_id: [] for mission_id in missions["mission_id"].to_list()}
    user_turns = dict(zip(missions["mission_id"].to_list(), missions["user_turns"].to_list(), strict=True))
    failed: dict[str, int] = {}
    rows: list[dict[str, Any]] = []
    for turn in range(limit):
        active = missions.filter(
            (pl.col("n_turns") > turn) & ~pl.col("mission_id").is_in(list(failed)),
        )
        requests = turn_requests(active, model, answers, product_facts, max_tokens)
        mission_of = {response_id(model, mission_id, turn): mission_id for mission_id in active["mission_id"]}
        results = client.chat(requests) if requests else []
        for request, result in zip(requests, results, strict=True):
            mission_id = mission_of[request.request_id]
            rows.append(_row(model, mission_id, turn, request, result))
            if result.text is not None and result.error is None:
                answers[mission_id].append(result.text)
            else:
                failed[mission_id] = turn
        for mission_id, failed_turn in failed.items():
            if failed_turn < turn and turn < len(user_turns[mission_id]):
                rows.append(_skipped(model, mission_id, turn, failed_turn))
    frame = pl.DataFrame(rows, schema=RESPONSES_SCHEMA)
    return frame.sort("mission_id", "turn_index")


def _system(products: list[str] | None, product_facts: Mapping[str, str] | None) -> str:
    """The system prompt, with the mission's catalog products listed when facts are given."""
    if not product_facts or not products:
        return SYSTEM_PROMPT
    lines = [f"- {product_facts[product]}" for product in products if product in product_facts]
    if not lines:
        return SYSTEM_PROMPT
    return SYSTEM_PROMPT + "\n\nCatalog products relevant to this customer:\n" + "\n".join(lines)


def _row(model: str, mission_id: str, turn: int, request: ChatRequest, result: ChatResult) -> dict[str, Any]:
    """A responses row from one chat result; the conversation includes the answer when there is one."""
    messages = list(request.messages)
    ok = result.error is None and result.text is not None
    if ok:
        messages.append({"role": "assistant", "content": result.text})
    return {
        "model": model,
        "mission_id": mission_id,
        "turn_index": turn,
        "response_id": request.request_id,
        "conversation_json": json.dumps(messages, ensure_ascii=False),
        "response": result.text if ok else None,
        "error": None if ok else (result.error or "the backend returned no text"),
        "tokens": result.prompt_tokens + result.completion_tokens,
        "latency": result.latency_s,
    }


def _skipped(model: str, mission_id: str, turn: int, failed_turn: int) -> dict[str, Any]:
    """A responses row for a turn not asked because an earlier turn of the mission got no answer."""
    return {
        "model": model,
        "mission_id": mission_id,
        "turn_index": turn,
        "response_id": response_id(model, mission_id, turn),
        "conversation_json": "[]",
        "response": None,
        "error": f"not asked: turn {failed_turn} of this mission got no answer",
        "tokens": 0,
        "latency": 0.0,
    }
