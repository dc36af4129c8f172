"""Customer-agent evaluation: which questions to ask, both answering methods scored, accuracy tables,
and the RL export (verl / TRL) of questions, contexts and rewards.

Both methods are scored by exact match after `normalize_answer`. The long-context baseline answers
a question at every budget where its evidence survived the cut; the Customer Agent answers each
question once (it reads files, not a context), and its accuracy per budget is taken over the same
questions as the baseline's, so the two columns of the table compare like with like.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from ops.common.llm import ChatResult
from ops.shopping.agent import AgentTrace, long_context_requests
from ops.shopping.answers import exact_match_reward, extract_answer

LONG_CONTEXT = "long_context"
AGENT = "agent"
RL_DATA_SOURCE = "assay/shoptrajqa"

EVAL_SCHEMA: dict[str, pl.DataType] = {
    "question_id": pl.String(),
    "customer_id": pl.String(),
    "kind": pl.String(),
    "difficulty": pl.String(),
    "method": pl.String(),
    "budget_tokens": pl.Int64(),
    "gold": pl.String(),
    "prediction": pl.String(),
    "outcome": pl.String(),
    "reward": pl.Float64(),
    "steps": pl.Int64(),
    "queries_json": pl.String(),
    "prompt_tokens": pl.Int64(),
    "completion_tokens": pl.Int64(),
}


def evaluation_questions(pairs: pl.DataFrame, limit: int, seed: int) -> list[str]:
    """Up to `limit` question ids (0: all) among those answerable at some budget, spread over kinds.

    Kinds are visited round-robin in a seeded order, so a small sample still covers many kinds.
    """
    kinds = pairs.select("question_id", "kind").unique().sort("question_id")
    pools = {kind: group["question_id"].to_list() for (kind,), group in kinds.group_by("kind", maintain_order=True)}
    rng = random.Random(seed)
    order = sorted(pools)
    rng.shuffle(order)
    for ids in pools.values():
        rng.shuffle(ids)
    chosen: list[str] = []
    while any(pools.values()) and (limit <= 0 or len(chosen) < limit):
        for kind in order:
            if pools[kind] and (limit <= 0 or len(chosen) < limit):
                chosen.append(pools[kind].pop())
    return sorted(chosen)


def long_context_batch(pairs: pl.DataFrame, contexts: pl.DataFrame) -> list[tuple[dict[str, Any], Any]]:
    """(pair row, request) for every answerable (question, budget): one customer and budget after the
    other, so consecutive prompts share the rendered history as their prefix."""
    texts = {
        (row["customer_id"], row["budget_tokens"]): row["text"]
        for row in contexts.filter(pl.col("status") == "rendered").iter_rows(named=True)
    }
    batch = []
    for (customer_id, budget), group in pairs.sort("customer_id", "budget_tokens", "question_id").group_by(
        "customer_id", "budget_tokens", maintain_order=True
    ):
        rows = group.to_dicts()
        requests = long_context_requests(rows, texts[(customer_id, budget)])
        batch.extend(zip(rows, requests, strict=True))
    return batch


def long_context_rows(pairs: Sequence[Mapping[str, Any]], results: Sequence[ChatResult]) -> list[dict[str, Any]]:
    """Eval rows of the baseline: the parsed answer and its reward; output that is not the asked JSON
    (e.g. cut off by the token limit) is "unparseable" and earns 0, a failed call is "llm_error"."""
    rows = []
    for pair, result in zip(pairs, results, strict=True):
        prediction = extract_answer(result.parsed) if result.error is None and result.parsed is not None else None
        if result.error is not None:
            outcome = "unparseable" if result.text else "llm_error"
        else:
            outcome = "answered" if prediction is not None else "unparseable"
        rows.append(
            _row(pair, LONG_CONTEXT, pair["budget_tokens"], prediction, outcome, 1, [])
            | {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens}
        )
    return rows


def agent_rows(questions: Mapping[str, Mapping[str, Any]], traces: Sequence[AgentTrace]) -> list[dict[str, Any]]:
    """Eval rows of the Customer Agent, one per question."""
    return [
        _row(questions[trace.question_id], AGENT, None, trace.answer, str(trace.outcome), trace.steps, trace.queries)
        | {"prompt_tokens": trace.prompt_tokens, "completion_tokens": trace.completion_tokens}
        for trace in traces
    ]


def _row(
    question: Mapping[str, Any],
    method: str,
    budget: int | None,
    prediction: str | None,
    outcome: str,
    steps: int,
    queries: Sequence[str],
) -> dict[str, Any]:
    return {
        "question_id": question["question_id"],
        "customer_id": question["customer_id"],
        "kind": question["kind"],
        "difficulty": question["difficulty"],
        "method": method,
        "budget_tokens": budget,
        "gold": question["answer"],
        "prediction": prediction,
        "outcome": outcome,
        "reward": exact_match_reward(prediction, question["answer"]),
        "steps": steps,
        "queries_json": json.dumps(list(queries)),
    }


def accuracy_by_budget(evals: pl.DataFrame, by: Sequence[str] = ()) -> pl.DataFrame:
    """Per budget (and `by` columns): questions, long-context accuracy, and the agent's accuracy on the
    same questions."""
    baseline = evals.filter(pl.col("method") == LONG_CONTEXT)
    agent = evals.filter(pl.col("method") == AGENT).select("question_id", pl.col("reward").alias("agent_reward"))
    keys = ["budget_tokens", *by]
    return (
        baseline.join(agent, on="question_id", how="left")
        .group_by(keys)
        .agg(
            pl.len().alias("questions"),
            pl.col("reward").mean().round(3).alias("long_context_accuracy"),
            pl.col("agent_reward").mean().round(3).alias("agent_accuracy"),
        )
        .sort(keys)
    )


RL_SCHEMA: dict[str, pl.DataType] = {
    "data_source": pl.String(),
    "prompt": pl.List(pl.Struct({"role": pl.String(), "content": pl.String()})),
    "ability": pl.String(),
    "reward_model": pl.Struct({"style": pl.String(), "ground_truth": pl.String()}),
    "extra_info": pl.Struct(
        {
            "question_id": pl.String(),
            "customer_id": pl.String(),
            "kind": pl.String(),
            "difficulty": pl.String(),
            "mode": pl.String(),
            "budget_tokens": pl.Int64(),
            "sql": pl.String(),
            "evaluated_reward": pl.Float64(),
        }
    ),
    "ground_truth": pl.String(),
}


def rl_rows(questions: pl.DataFrame, pairs: pl.DataFrame, contexts: pl.DataFrame, evals: pl.DataFrame) -> pl.DataFrame:
    """The environment for RL trainers, one row per prompt, in verl's RLHF-dataset layout.

    Columns: `data_source`, `prompt` (chat messages), `ability`, `reward_model` {style "rule",
    ground_truth}, `extra_info` (ids, kind, budget, mode, SQL, and the reward the evaluated model
    earned where it was evaluated), plus a top-level `ground_truth` that TRL passes to
    `ops.shopping.answers.shoptrajqa_reward`. Mode "agent" rows carry the question alone (the trainer
    gives the policy the SQL tool over the customer's files); mode "long_context" rows carry the
    rendered history at one budget.
    """
    earned = {
        (row["question_id"], row["method"], row["budget_tokens"]): row["reward"]
        for row in evals.select("question_id", "method", "budget_tokens", "reward").iter_rows(named=True)
    }
    rows = []
    for question in questions.iter_rows(named=True):
        rows.append(_rl_row(question, AGENT, None, [{"role": "user", "content": question["question"]}], earned))
    for pair, request in long_context_batch(pairs, contexts):
        messages = [dict(message) for message in request.messages]
        rows.append(_rl_row(pair, LONG_CONTEXT, pair["budget_tokens"], messages, earned))
    return pl.DataFrame(rows, schema=RL_SCHEMA)


def _rl_row(
    question: Mapping[str, Any],
    mode: str,
    budget: int | None,
    messages: list[dict[str, str]],
    earned: Mapping[tuple[str, str, int | None], float],
) -> dict[str, Any]:
    return {
        "data_source": RL_DATA_SOURCE,
        "prompt": messages,
        "ability": "long_context_qa" if mode == LONG_CONTEXT else "tool_use_sql",
        "reward_model": {"style": "rule", "ground_truth": question["answer"]},
        "extra_info": {
            "question_id": question["question_id"],
            "customer_id": question["customer_id"],
            "kind": question["kind"],
            "difficulty": question["difficulty"],
            "mode": mode,
            "budget_tokens": budget,
            "sql": question["sql"],
            "evaluated_reward": earned.get((question["question_id"], mode, budget)),
        },
        "ground_truth": question["answer"],
    }
