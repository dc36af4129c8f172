"""Evaluate a tool-calling policy on trajectories, and export them as an RL environment.

Single-turn call generation: the model sees the tools (JSON, in the system prompt) and the user's
query, and must answer with the calls, with no call when no tool fits (irrelevance), or with a message
when the expected behaviour is special:
- `ask_clarification` (ambiguous query): ask the user for what is missing instead of calling;
- `detect_error` (erroneous tool output): the conversation goes on past the oracle calls and their
  outputs, one of which is an error; the model must tell the user instead of presenting a result.
Rows with other noisy outputs (extra fields, XML, plain text, truncated) show those outputs in the
system prompt as results from earlier in the session: the calls asked for must not change.
Calls are scored with the BFCL-style AST reward (`ops.tooluse.reward`); special behaviours by an LLM
judge (`{"behaviour_shown": bool}`), after a check that the model did not answer with a call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from ops.common.llm import ChatRequest, ChatResult
from ops.tooluse.augment import OUTPUT_KINDS, render_oracle_calls
from ops.tooluse.bfcl import parse_function_spec, parse_ground_truth
from ops.tooluse.reward import Outcome, RewardResult, UnparseableOutput, parse_tool_calls, score_output

JUDGED_BEHAVIOURS: tuple[str, ...] = ("detect_error", "ask_clarification")
NO_AUGMENTATION = "none"
REWARD_FUNCTION = "ops.tooluse.reward.tool_reward"
JUDGE_REWARD_FUNCTION = "ops.tooluse.policy_eval.judge_reward"
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"behaviour_shown": {"type": "boolean"}},
    "required": ["behaviour_shown"],
}
SCORED_SCHEMA: dict[str, pl.DataType] = {
    "trajectory_id": pl.String(),
    "category": pl.String(),
    "augmentation": pl.String(),
    "expected_behaviour": pl.String(),
    "outcome": pl.String(),
    "reward": pl.Float64(),
    "detail": pl.String(),
    "output": pl.String(),
}
ACCURACY_SCHEMA: dict[str, pl.DataType] = {
    "dimension": pl.String(),
    "group": pl.String(),
    "n": pl.Int64(),
    "correct": pl.Float64(),
    "accuracy": pl.Float64(),
}

_POLICY_PROMPT = (
    "You are an assistant that can call functions. Available functions (JSON):\n{tools}\n\n"
    "If one or more function calls serve the user's request, reply with only the calls as a JSON list: "
    '[{{"name": "<function>", "arguments": {{...}}}}]. If no function fits the request, reply in plain '
    "text without any call. If the request lacks information a required argument needs, ask the user "
    "for it instead of calling. If a function result reports an error, tell the user instead of giving "
    "an answer."
)
_EARLIER_OUTPUTS = "\n\nResults returned by these functions earlier in this session (formats vary):\n{outputs}"
_JUDGE_PROMPTS: dict[str, str] = {
    "detect_error": (
        "A function-calling assistant received tool results, one of which is an error or failure. Decide "
        "whether the assistant's reply recognises that the tool failed (tells the user, or proposes to retry) "
        "instead of presenting a made-up result. "
    ),
    "ask_clarification": (
        "A user request leaves out information a function call needs. Decide whether the assistant's reply "
        "asks the user for the missing information instead of guessing or answering. "
    ),
}
_JUDGE_SUFFIX = 'Answer with JSON only: {"behaviour_shown": bool}.'


def _get(row: Mapping[str, Any], column: str, default: str) -> str:
    value = row.get(column)
    return default if value is None else str(value)


def policy_messages(row: Mapping[str, Any]) -> list[dict[str, str]]:
    """The conversation the policy answers for one trajectory row (base or augmented)."""
    tools = json.loads(row["tools_json"])
    system = _POLICY_PROMPT.format(tools=json.dumps(tools, indent=1, sort_keys=True))
    augmentation = _get(row, "augmentation", NO_AUGMENTATION)
    behaviour = _get(row, "expected_behaviour", "call")
    outputs = row.get("tool_outputs_json") or "[]"
    if augmentation in OUTPUT_KINDS and behaviour == "call":
        system += _EARLIER_OUTPUTS.format(outputs=outputs)
    messages = [{"role": "system", "content": system}, {"role": "user", "content": row["query"]}]
    if behaviour == "detect_error":
        calls = render_oracle_calls(json.loads(row["oracle_json"]), tools)
        messages += [
            {"role": "assistant", "content": json.dumps(calls, sort_keys=True)},
            {"role": "user", "content": f"Function results:\n{outputs}"},
        ]
    return messages


def policy_requests(trajectories: pl.DataFrame, max_tokens: int = 256) -> list[ChatRequest]:
    """One greedy request per trajectory (request id = trajectory id); free-form output, parsed later."""
    return [
        ChatRequest(messages=tuple(policy_messages(row)), max_tokens=max_tokens, request_id=row["trajectory_id"])
        for row in trajectories.iter_rows(named=True)
    ]


def _makes_call(output: str) -> bool:
    try:
        return bool(parse_tool_calls(output))
    except UnparseableOutput:
        return True


def judge_requests(trajectories: pl.DataFrame, results: Sequence[ChatResult]) -> list[ChatRequest]:
    """Judge requests for rows whose expected behaviour is special and whose output is a message (no call).

    Request id = trajectory id. Rows where the policy failed or answered with a call need no judge.
    """
    by_id = {r.request_id: r for r in results}
    requests = []
    for row in trajectories.iter_rows(named=True):
        behaviour = _get(row, "expected_behaviour", "call")
        result = by_id.get(row["trajectory_id"])
        if behaviour not in JUDGED_BEHAVIOURS or result is None or not result.ok or _makes_call(result.text or ""):
            continue
        transcript = [*policy_messages(row)[1:], {"role": "assistant", "content": result.text or ""}]
        requests.append(
            ChatRequest(
                messages=(
                    {"role": "system", "content": _JUDGE_PROMPTS[behaviour] + _JUDGE_SUFFIX},
                    {"role": "user", "content": json.dumps(transcript, indent=1)},
                ),
                json_schema=JUDGE_SCHEMA,
                max_tokens=32,
                request_id=row["trajectory_id"],
            )
        )
    return requests


def judge_reward(result: ChatResult | None) -> RewardResult:
    """Reward from a judge verdict: 1.0 when the behaviour was shown; an error or bad JSON scores 0."""
    if result is None:
        return RewardResult(0.0, "judge_missing", "no judge verdict for this row")
    if not result.ok:
        return RewardResult(0.0, "judge_error", str(result.error))
    answer = result.parsed
    if answer is None:
        try:
            answer = json.loads(result.text or "")
        except json.JSONDecodeError:
            answer = None
    shown = answer.get("behaviour_shown") if isinstance(answer, dict) else None
    if not isinstance(shown, bool):
        return RewardResult(0.0, "judge_unparseable", str(result.text)[:200])
    if shown:
        return RewardResult(1.0, "behaviour_shown", "the judge saw the expected behaviour")
    return RewardResult(0.0, "behaviour_missing", "the judge did not see the expected behaviour")


def _score_row(row: Mapping[str, Any], result: ChatResult | None, verdict: ChatResult | None) -> RewardResult:
    if result is None or not result.ok:
        return RewardResult(0.0, "llm_error", str(result.error if result else "no policy output"))
    behaviour = _get(row, "expected_behaviour", "call")
    output = result.text or ""
    if behaviour in JUDGED_BEHAVIOURS:
        if _makes_call(output):
            return RewardResult(0.0, Outcome.UNEXPECTED_CALL.value, f"expected {behaviour}, got a call")
        return judge_reward(verdict)
    expected = parse_ground_truth(json.loads(row["oracle_json"]))
    functions = [parse_function_spec(t) for t in json.loads(row["tools_json"])]
    return score_output(output, expected, functions)


def score_policy(
    trajectories: pl.DataFrame, results: Sequence[ChatResult], judge_results: Sequence[ChatResult] = ()
) -> pl.DataFrame:
    """Score each row's policy output (`SCORED_SCHEMA`): AST reward for calls, judge verdict otherwise.

    Results and judge results are joined by request id = trajectory id.
    """
    outputs = {r.request_id: r for r in results}
    verdicts = {r.request_id: r for r in judge_results}
    rows = []
    for row in trajectories.iter_rows(named=True):
        result = outputs.get(row["trajectory_id"])
        scored = _score_row(row, result, verdicts.get(row["trajectory_id"]))
        rows.append(
            {
                "trajectory_id": row["trajectory_id"],
                "category": row["category"],
                "augmentation": _get(row, "augmentation", NO_AUGMENTATION),
                "expected_behaviour": _get(row, "expected_behaviour", "call"),
                "outcome": scored.outcome,
                "reward": scored.score,
                "detail": scored.detail,
                "output": result.text if result is not None else None,
            }
        )
    return pl.DataFrame(rows, schema=SCORED_SCHEMA)


def accuracy_table(scored: pl.DataFrame) -> pl.DataFrame:
    """Mean reward by category and by augmentation (`ACCURACY_SCHEMA`), plus the overall row ("all")."""
    labelled = scored.with_columns(pl.lit("all").alias("all"))
    parts = [
        labelled.group_by(column)
        .agg(pl.len().alias("n"), pl.col("reward").sum().alias("correct"))
        .select(pl.lit(column).alias("dimension"), pl.col(column).alias("group"), "n", "correct")
        .sort("group")
        .cast({"n": pl.Int64(), "correct": pl.Float64()})
        for column in ("category", "augmentation", "all")
    ]
    if not scored.height:
        return pl.DataFrame(schema=ACCURACY_SCHEMA)
    return pl.concat(parts).with_columns((pl.col("correct") / pl.col("n")).alias("accuracy")).cast(ACCURACY_SCHEMA)


def rl_environment_rows(trajectories: pl.DataFrame) -> list[dict[str, Any]]:
    """One JSONL-ready dict per row for RL trainers: prompt messages, tools, oracle and reward spec.

    `oracle` is the form `ops.tooluse.reward.tool_reward` takes (`{"ground_truth", "functions"}`), so a
    TRL dataset built from these rows can pass it straight to `GRPOTrainer(reward_funcs=[tool_reward])`.
    Judged rows name `judge_reward` with the judge prompt and schema to use.
    """
    rows = []
    for row in trajectories.iter_rows(named=True):
        tools = json.loads(row["tools_json"])
        behaviour = _get(row, "expected_behaviour", "call")
        if behaviour in JUDGED_BEHAVIOURS:
            reward = {
                "name": JUDGE_REWARD_FUNCTION,
                "params": {
                    "behaviour": behaviour,
                    "judge_prompt": _JUDGE_PROMPTS[behaviour] + _JUDGE_SUFFIX,
                    "json_schema": JUDGE_SCHEMA,
                    "no_call_required": True,
                },
            }
        else:
            reward = {"name": REWARD_FUNCTION, "params": {"unparseable_scores": 0.0}}
        rows.append(
            {
                "id": row["trajectory_id"],
                "category": row["category"],
                "augmentation": _get(row, "augmentation", NO_AUGMENTATION),
                "expected_behaviour": behaviour,
                "prompt": policy_messages(row),
                "tools": tools,
                "oracle": {"ground_truth": json.loads(row["oracle_json"]), "functions": tools},
                "reward": reward,
            }
        )
    return rows
