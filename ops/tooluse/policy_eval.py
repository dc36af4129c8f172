"""Evaluate a tool-calling policy on trajectories, and export them as an RL environment.

Single-turn call generation: the model sees the tools (JSON, in the system prompt) and the user's
query, and must answer with the calls, with no call when no tool fits (irrelevance), or with a message
when the expected behaviour is special:
- `ask_clarification` (ambiguous query): ask the user for what is missing instead of calling;
- `detect_error` (erroneous tool output): the conversation goes on past the oracle calls and their
  outputs, one of which is an error; the model must tell the user instead of presenting a result.
Rows with other noisy outputs (extra fields, XML, plain text, truncated) show those outputs in the
system prompt as results from earlier in the session: the calls asked for must not change.
Calls are scored with the BFCL-style AST reward (`ops.tooluse.reward`). Special behaviours are
graded by the project's one rubric engine (`ops.rubrics.grading.grade`), after a check that the model
did not answer with a call: each judged row is one weight-1 required `Criterion` (`JUDGE_CRITERIA`) on
the conversation the policy saw plus its reply, and `judge_reward` turns the grade into the reward
(met -> 1, not met -> 0, ungraded -> 0 with the engine's reason, never a silent pass).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from ops.common.llm import ChatRequest, ChatResult
from ops.rubrics.criteria import Criterion
from ops.rubrics.grading import MET, NOT_MET, UNGRADED, GradingItem
from ops.rubrics.judge_prompt import JUDGE_PROMPT_VERSION, JUDGE_SCHEMA
from ops.tooluse.augment import OUTPUT_KINDS, render_oracle_calls
from ops.tooluse.bfcl import parse_function_spec, parse_ground_truth
from ops.tooluse.reward import Outcome, RewardResult, UnparseableOutput, parse_tool_calls, score_output

# The rubric criterion each special behaviour is graded on (criterion id = the behaviour).
JUDGE_CRITERIA: dict[str, str] = {
    "detect_error": (
        "The assistant tells the user that a tool output is erroneous or unusable instead of presenting it as a result"
    ),
    "ask_clarification": "The assistant asks the user a clarifying question instead of guessing",
}
JUDGED_BEHAVIOURS: tuple[str, ...] = tuple(JUDGE_CRITERIA)
NO_AUGMENTATION = "none"
REWARD_FUNCTION = "ops.tooluse.reward.tool_reward"
JUDGE_REWARD_FUNCTION = "ops.tooluse.policy_eval.judge_reward"
JUDGE_GRADER = "ops.rubrics.grading.grade"
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


def behaviour_criterion(row: Mapping[str, Any]) -> Criterion:
    """The rubric criterion a judged row is graded on: its behaviour's text, weight 1, required.

    The criterion id is the behaviour and the item id the trajectory id; the turn index counts the
    assistant turns before the graded reply (1 for `detect_error`, whose prompt replays the oracle calls).
    """
    behaviour = _get(row, "expected_behaviour", "call")
    if behaviour not in JUDGE_CRITERIA:
        raise ValueError(f"behaviour {behaviour!r} is not judged; judged: {', '.join(JUDGED_BEHAVIOURS)}")
    turn_index = sum(message["role"] == "assistant" for message in policy_messages(row))
    return Criterion(
        criterion_id=behaviour,
        item_id=row["trajectory_id"],
        turn_index=turn_index,
        text=JUDGE_CRITERIA[behaviour],
        weight=1.0,
        required=True,
        category="tooluse",
        subcategory=behaviour,
    )


def judge_items(trajectories: pl.DataFrame, results: Sequence[ChatResult], model: str = "") -> list[GradingItem]:
    """Rubric-engine items for the rows whose expected behaviour is judged and whose output is a message.

    Pass them to `ops.rubrics.grading.grade` and the grades to `score_policy`. Response id and item id
    are the trajectory id; the conversation is the policy's prompt plus its reply. Rows where the policy
    failed or answered with a call get no item (`score_policy` scores them without a judge). `model`
    names the policy in the grades frame.
    """
    by_id = {r.request_id: r for r in results}
    items = []
    for row in trajectories.iter_rows(named=True):
        behaviour = _get(row, "expected_behaviour", "call")
        result = by_id.get(row["trajectory_id"])
        if behaviour not in JUDGED_BEHAVIOURS or result is None or not result.ok or _makes_call(result.text or ""):
            continue
        criterion = behaviour_criterion(row)
        conversation = (*policy_messages(row), {"role": "assistant", "content": result.text or ""})
        trajectory_id = row["trajectory_id"]
        items.append(GradingItem(trajectory_id, model, trajectory_id, criterion.turn_index, conversation, criterion))
    return items


def judge_reward(grade: Mapping[str, Any] | None) -> RewardResult:
    """Reward from one row of the rubric engine's grades frame: met 1.0; not met, ungraded or absent 0.0.

    An ungraded row (the judge never gave a usable verdict) carries the engine's reason in `detail`.
    """
    if grade is None:
        return RewardResult(0.0, "judge_missing", "no judge grade for this row")
    status = grade["status"]
    if status == MET:
        return RewardResult(1.0, "behaviour_shown", f"judge: {grade.get('explanation') or ''}".strip())
    if status == NOT_MET:
        return RewardResult(0.0, "behaviour_missing", f"judge: {grade.get('explanation') or ''}".strip())
    if status == UNGRADED:
        return RewardResult(0.0, "judge_ungraded", str(grade.get("error") or "ungraded"))
    raise ValueError(f"unknown grade status {status!r}")


def _score_row(row: Mapping[str, Any], result: ChatResult | None, grade: Mapping[str, Any] | None) -> RewardResult:
    if result is None or not result.ok:
        return RewardResult(0.0, "llm_error", str(result.error if result else "no policy output"))
    behaviour = _get(row, "expected_behaviour", "call")
    output = result.text or ""
    if behaviour in JUDGED_BEHAVIOURS:
        if _makes_call(output):
            return RewardResult(0.0, Outcome.UNEXPECTED_CALL.value, f"expected {behaviour}, got a call")
        return judge_reward(grade)
    expected = parse_ground_truth(json.loads(row["oracle_json"]))
    functions = [parse_function_spec(t) for t in json.loads(row["tools_json"])]
    return score_output(output, expected, functions)


def score_policy(
    trajectories: pl.DataFrame, results: Sequence[ChatResult], grades: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Score each row's policy output (`SCORED_SCHEMA`): AST reward for calls, `judge_reward` otherwise.

    Results are joined by request id = trajectory id; `grades` (the frame `grade` returns for
    `judge_items`) by response id = trajectory id and criterion id = expected behaviour. A judged row
    without a grade scores 0 as "judge_missing".
    """
    outputs = {r.request_id: r for r in results}
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    if grades is not None:
        for grade in grades.iter_rows(named=True):
            by_key[(grade["response_id"], grade["criterion_id"])] = grade
    rows = []
    for row in trajectories.iter_rows(named=True):
        result = outputs.get(row["trajectory_id"])
        grade = by_key.get((row["trajectory_id"], _get(row, "expected_behaviour", "call")))
        scored = _score_row(row, result, grade)
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
    Judged rows name `judge_reward` with the rubric criterion to grade: a trainer reproduces the reward
    by building `Criterion(item_id=<id>, **params["criterion"])`, a `GradingItem` whose conversation is
    `prompt` plus the completion (a completion that makes a call scores 0 without a judge), grading it
    with `params["grader"]` and passing the grade row to `judge_reward`. `judge_prompt_version` pins
    the engine's prompt the rewards were measured with.
    """
    rows = []
    for row in trajectories.iter_rows(named=True):
        tools = json.loads(row["tools_json"])
        behaviour = _get(row, "expected_behaviour", "call")
        if behaviour in JUDGED_BEHAVIOURS:
            criterion = behaviour_criterion(row)
            reward = {
                "name": JUDGE_REWARD_FUNCTION,
                "params": {
                    "behaviour": behaviour,
                    "criterion": {
                        "criterion_id": criterion.criterion_id,
                        "turn_index": criterion.turn_index,
                        "text": criterion.text,
                        "weight": criterion.weight,
                        "required": criterion.required,
                        "category": criterion.category,
                        "subcategory": criterion.subcategory,
                    },
                    "grader": JUDGE_GRADER,
                    "judge_prompt_version": JUDGE_PROMPT_VERSION,
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
