"""RESD's tasks and rollouts, in two families with verifiable feedback:

- `tooluse`: prompts from `tool_rl_environment`, scored by the BFCL-style AST reward; the feedback is the
  reward's own outcome and detail (`ops.tooluse.reward.score_output`), e.g. `missing_required: ...`.
- `shoptrajqa`: long-context ShopTrajQA prompts from `shoptrajqa_rl_dataset` (a customer's rendered history and
  a question whose gold answer a DuckDB query computed), scored by exact match (`shoptrajqa_reward`); the
  feedback names the answer read from the completion and the gold.

That feedback is what a reflection diagnoses. Each task is answered by the student alone and, once a playbook
exists, by the student with the playbook in context; the pair tags the playbook's bullets helpful or harmful.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl

from ops.agents.resd.playbook import Playbook, ranked, render_bullets
from ops.common.text import sha256_hex
from ops.shopping.answers import extract_answer, normalize_answer, shoptrajqa_reward
from ops.shopping.evaluation import LONG_CONTEXT
from ops.tooluse.bfcl import parse_function_spec, parse_ground_truth
from ops.tooluse.reward import RewardResult, score_output, tool_reward
from ops.tooluse.training_data import grpo_rows, shortest_rows

TOOLUSE = "tooluse"
SHOPTRAJQA = "shoptrajqa"
FAMILIES = (TOOLUSE, SHOPTRAJQA)
STUDENT = "student"
WITH_PLAYBOOK = "playbook"
ARMS = (STUDENT, WITH_PLAYBOOK)
ROLLOUT_SCHEMA: dict[str, pl.DataType] = {
    "rollout_id": pl.String,
    "task_id": pl.String,
    "family": pl.String,
    "round": pl.Int64,
    "arm": pl.String,
    "prompt_json": pl.String,
    "oracle": pl.String,
    "completion": pl.String,
    "reward": pl.Float64,
    "outcome": pl.String,
    "feedback": pl.String,
    "failed": pl.Boolean,
    "playbook_version": pl.String,
    "bullet_ids": pl.String,
}


def tooluse_tasks(environment: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The AST-rewarded lines of `tool_rl_environment` as tasks (id, prompt, oracle JSON, family, group)."""
    rows = grpo_rows(environment, {line["id"] for line in environment})
    return [{**row, "family": TOOLUSE, "group": row["id"]} for row in rows]


def shoptrajqa_tasks(rl_dataset: pl.DataFrame) -> list[dict[str, Any]]:
    """Long-context rows of `shoptrajqa_rl_dataset` as tasks, one per question at its smallest budget where the
    evidence survived; the oracle holds the gold answer and the SQL that computed it, the group is the customer
    (held-out tasks belong to customers the student never trained on)."""
    best: dict[str, dict[str, Any]] = {}
    for row in rl_dataset.iter_rows(named=True):
        info = row["extra_info"]
        if info["mode"] != LONG_CONTEXT:
            continue
        question = info["question_id"]
        if question in best and best[question]["budget"] <= info["budget_tokens"]:
            continue
        oracle = {"ground_truth": row["ground_truth"], "sql": info["sql"], "kind": info["kind"]}
        best[question] = {
            "id": f"{SHOPTRAJQA}_{question}",
            "prompt": [{"role": m["role"], "content": m["content"]} for m in row["prompt"]],
            "oracle": json.dumps(oracle, sort_keys=True),
            "family": SHOPTRAJQA,
            "group": info["customer_id"],
            "budget": info["budget_tokens"],
        }
    return [{k: v for k, v in task.items() if k != "budget"} for task in best.values()]


def split_family(
    tasks: Sequence[Mapping[str, Any]], train: int, evaluate: int, max_prompt_chars: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training and held-out tasks of one family, shortest prompts first (at most `max_prompt_chars`, 0 = any);
    held-out tasks share no `group` (tool-use task, shopping customer) with a training task."""
    ordered = shortest_rows(tasks, 0, max_prompt_chars)
    training = ordered[:train]
    seen = {task["group"] for task in training}
    held_out = [task for task in ordered[train:] if task["group"] not in seen][:evaluate]
    if not held_out:
        family = tasks[0]["family"] if tasks else "this family"
        raise ValueError(
            f"{len(ordered)} {family} tasks with prompts of at most {max_prompt_chars or 'any'} characters: "
            f"none left to hold out after the {train} training tasks (and their groups)"
        )
    return training, held_out


def split_tasks(
    environment: Sequence[Mapping[str, Any]], train: int, evaluate: int, max_prompt_chars: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Training and held-out tool-use tasks: the AST-rewarded lines, shortest prompts first, disjoint."""
    return split_family(tooluse_tasks(environment), train, evaluate, max_prompt_chars)


def verify(completion: str, oracle: str, family: str = TOOLUSE) -> RewardResult:
    """Score one completion against its oracle (JSON text): score, outcome code and the verifier's message."""
    data = json.loads(oracle)
    if family == SHOPTRAJQA:
        return _verify_answer(completion, data)
    if family != TOOLUSE:
        raise ValueError(f"unknown RESD task family {family!r}; known: {', '.join(FAMILIES)}")
    expected = parse_ground_truth(data.get("ground_truth") or [])
    functions = tuple(parse_function_spec(f) for f in data.get("functions") or [])
    return score_output(completion, expected, functions)


def _verify_answer(completion: str, oracle: Mapping[str, Any]) -> RewardResult:
    """Exact match of a ShopTrajQA answer (the reward itself) with a message saying what was read and expected."""
    gold = oracle["ground_truth"]
    score = shoptrajqa_reward([completion], [gold])[0]
    answer = extract_answer(completion)
    read = normalize_answer(answer) if answer is not None else ""
    if score >= 1.0:
        return RewardResult(1.0, "correct", f"answer {read!r} matches the gold")
    if not read:
        return RewardResult(0.0, "no_answer", f'no answer found (expected JSON {{"answer": ...}}); gold {gold!r}')
    return RewardResult(0.0, "wrong_answer", f"answered {read!r}, gold {gold!r} ({oracle['kind']} question)")


def task_reward(completions: list[Any], oracle: list[str], family: list[str], **kwargs: Any) -> list[float]:
    """TRL reward over `oracle` and `family` columns: each family's own reward (`tool_reward`,
    `shoptrajqa_reward`), so the GRPO arm is scored exactly as the rollouts are."""
    del kwargs
    scores = []
    for completion, item, name in zip(completions, oracle, family, strict=True):
        if name == SHOPTRAJQA:
            scores.append(shoptrajqa_reward([completion], [json.loads(item)["ground_truth"]])[0])
        else:
            scores.append(tool_reward([completion], [item])[0])
    return scores


def rollout_id(task_id: str, round_number: int, arm: str, playbook_version: str) -> str:
    """Stable id of one rollout (the reflection and the tags it causes are keyed by it)."""
    return "r-" + sha256_hex(f"{task_id}|{round_number}|{arm}|{playbook_version}")[:12]


def score_rollouts(
    tasks: Sequence[Mapping[str, Any]],
    completions: Sequence[str],
    round_number: int,
    arm: str,
    playbook_version: str,
    bullet_ids: Sequence[str] = (),
) -> pl.DataFrame:
    """One row per task: the completion, its reward, outcome and feedback, whether it failed, and the ids of the
    playbook bullets that were in its context."""
    rows = []
    for task, completion in zip(tasks, completions, strict=True):
        result = verify(completion, task["oracle"], task["family"])
        rows.append(
            {
                "rollout_id": rollout_id(task["id"], round_number, arm, playbook_version),
                "task_id": task["id"],
                "family": task["family"],
                "round": round_number,
                "arm": arm,
                "prompt_json": json.dumps(task["prompt"], ensure_ascii=False),
                "oracle": task["oracle"],
                "completion": completion,
                "reward": float(result.score),
                "outcome": str(result.outcome),
                "feedback": f"{result.outcome}: {result.detail}",
                "failed": result.score < 1.0,
                "playbook_version": playbook_version,
                "bullet_ids": ",".join(bullet_ids),
            }
        )
    return pl.DataFrame(rows, schema=ROLLOUT_SCHEMA)


def failed_student_rollouts(rollouts: pl.DataFrame) -> pl.DataFrame:
    """The student's own failed rollouts (what reflections are written about)."""
    return rollouts.filter((pl.col("arm") == STUDENT) & pl.col("failed"))


def with_context(prompt: str | list[dict[str, str]], context: str) -> str | list[dict[str, str]]:
    """A prompt with context after it: after the text, or after the last user message of a chat (the same
    composition as the self-teacher's, `training.rl.self_distillation.teacher_prompt`)."""
    if not context:
        return prompt
    if isinstance(prompt, str):
        return f"{prompt}\n\n{context}"
    *earlier, last = [dict(message) for message in prompt]
    return [*earlier, {**last, "content": f"{last['content']}\n\n{context}"}]


def rollout_round(
    tasks: Sequence[Mapping[str, Any]],
    generate: Callable[[list[Any]], list[str]],
    playbook: Playbook,
    round_number: int,
    playbook_version: str,
    arms: Sequence[str] = ARMS,
) -> pl.DataFrame:
    """The student's rollouts on `tasks` alone and, when the playbook has bullets, with it in context; scored."""
    bullets = ranked(playbook)
    context = render_bullets(bullets)
    prompts = {STUDENT: [task["prompt"] for task in tasks]}
    if bullets and WITH_PLAYBOOK in arms:
        prompts[WITH_PLAYBOOK] = [with_context(task["prompt"], context) for task in tasks]
    completions = generate([prompt for arm in prompts for prompt in prompts[arm]])
    frames = []
    for i, arm in enumerate(prompts):
        mine = completions[i * len(tasks) : (i + 1) * len(tasks)]
        ids = [b.id for b in bullets] if arm == WITH_PLAYBOOK else []
        frames.append(score_rollouts(tasks, mine, round_number, arm, playbook_version, ids))
    return pl.concat(frames)
