"""The cost-aware, confidence-gated reward of Translate-R1 and the policy's prompt and output format.

The policy answers a question directly, or first calls the `translate` tool in the tooluse domain's
JSON call format (`[{"name": "translate", "arguments": {"text": ...}}]`) and answers the English text
the tool returns. Its reward is

    reward = correct - lambda * cost * called * gate,   gate = [group accuracy > tau]  (1 when ungated)

where the group is the completions sampled for the same prompt (the GRPO/GSPO group). Without the gate
a policy that cannot yet solve a language learns to stop calling (the cost is the only signal it gets);
with the gate, cost matters only once calling already solves the task (paper section 3, "our choice").
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ops.tooluse.reward import UnparseableOutput, parse_tool_calls
from ops.translation.cipher import answer_matches

TRANSLATE_TOOL = "translate"
TRANSLATE_SPEC: dict[str, Any] = {
    "name": TRANSLATE_TOOL,
    "description": "Translate a question into English.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
}
# Short prompts: SmolLM2-135M loses accuracy with every sentence of instructions (measured, README).
DIRECT_PROMPT = "Answer with just the number."
POLICY_PROMPT = (
    "Answer with just the number. If you cannot read the question's language, reply only with "
    '[{"name": "translate", "arguments": {"text": "<the question>"}}] to get it in English.'
)
# Few-shot English examples of the local default family (lookup): without examples SmolLM2-135M explains
# instead of answering; with five of the task's own kind it answers lookups above chance
# (measured, docs/translation.md). They are format examples for every family (MGSM on gpu too).
FEW_SHOT: tuple[tuple[str, str], ...] = (
    ("In the list 7, 9, 2, what is the third number?", "2"),
    ("In the list 3, 4, 2, what is the first number?", "3"),
    ("In the list 2, 5, 6, what is the second number?", "5"),
    ("In the list 9, 2, 5, what is the second number?", "2"),
    ("In the list 4, 7, 6, what is the third number?", "6"),
)
_EXAMPLE_ANSWER = tuple(
    message
    for question, answer in FEW_SHOT
    for message in ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
)
_EXAMPLE_FOREIGN = "Mwx pt 6 zpfa 1?"
# Output budgets. An answer is one number: 8 tokens hold it (and "The answer is 4."); a longer budget only
# buys rambling whose last number is noise. A call repeats the question, so its budget follows the question:
# a fixed 64 (48 in the greedy evaluation) cut every Bengali call (79 tokens) before it could parse.
ANSWER_TOKENS = 8
CALL_MARGIN_TOKENS = 4
BUDGET_STEP = 16


@dataclass(frozen=True)
class Decision:
    """What a policy output did: called the tool (`called`) or answered (`answer_text`)."""

    called: bool
    answer_text: str


@dataclass(frozen=True)
class GateConfig:
    """Cost weight lambda, gate threshold tau, and whether the gate is on."""

    lam: float
    tau: float = 0.5
    gated: bool = True


def call_message(question: str) -> str:
    """The assistant's tool call for `question`, exactly as the policy is asked to write it."""
    return json.dumps([{"name": TRANSLATE_TOOL, "arguments": {"text": question}}], ensure_ascii=False)


def call_budget(call_tokens: int) -> int:
    """Output tokens for a decision whose call takes `call_tokens`: a small margin, rounded up to a multiple
    of `BUDGET_STEP` so batched generation groups requests into a few budgets."""
    return -(-(call_tokens + CALL_MARGIN_TOKENS) // BUDGET_STEP) * BUDGET_STEP


def call_budgets(questions: Sequence[str], count_tokens: Callable[[list[str]], list[int]]) -> list[int]:
    """The decision budget of each question: its `call_message` counted by the policy's tokenizer."""
    return [call_budget(n) for n in count_tokens([call_message(question) for question in questions])]


def policy_messages(question: str) -> list[dict[str, str]]:
    """The conversation in which the policy decides: answer, or call `translate` (one example of each)."""
    return [
        {"role": "system", "content": POLICY_PROMPT},
        *_EXAMPLE_ANSWER,
        {"role": "user", "content": _EXAMPLE_FOREIGN},
        {"role": "assistant", "content": call_message(_EXAMPLE_FOREIGN)},
        {"role": "user", "content": question},
    ]


def direct_messages(question: str) -> list[dict[str, str]]:
    """The question with no tool offered (forced direct answer), after one answered example."""
    return [{"role": "system", "content": DIRECT_PROMPT}, *_EXAMPLE_ANSWER, {"role": "user", "content": question}]


def after_tool_messages(english: str) -> list[dict[str, str]]:
    """The answer turn after a `translate` call returned `english`: the English text in the direct few-shot
    conversation. The call is left out of the context: shown its own call, SmolLM2-135M repeats it
    instead of answering (measured, docs/translation.md)."""
    return direct_messages(english)


def parse_decision(output: str) -> Decision:
    """A call to `translate` anywhere in a parseable call list is a call; anything else is an answer."""
    try:
        calls = parse_tool_calls(output)
    except UnparseableOutput:
        calls = []
    return Decision(any(call.name == TRANSLATE_TOOL for call in calls), output)


def gated_rewards(
    correct: Sequence[float],
    called: Sequence[bool],
    costs: Sequence[float],
    groups: Sequence[str],
    config: GateConfig,
) -> list[float]:
    """Per-completion rewards: correct - lambda * cost * called, the cost term gated by group accuracy."""
    if not len(correct) == len(called) == len(costs) == len(groups):
        raise ValueError("correct, called, costs and groups must have the same length")
    totals: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    for value, group in zip(correct, groups, strict=True):
        totals[group][0] += value
        totals[group][1] += 1
    rewards = []
    for value, call, cost, group in zip(correct, called, costs, groups, strict=True):
        accuracy = totals[group][0] / totals[group][1]
        gate = (accuracy > config.tau) if config.gated else True
        rewards.append(value - config.lam * cost * float(call) * float(gate))
    return rewards


def decision_correct(decision: Decision, gold: str, translated_accuracy: float) -> float:
    """Correctness of one decision: the answer's, or after a call the expected correctness on the English text."""
    if decision.called:
        return translated_accuracy
    return float(answer_matches(decision.answer_text, gold))


def trainer_reward(config: GateConfig) -> Callable[..., list[float]]:
    """A TRL-style reward function (completions plus dataset columns) for the shared RL trainer.

    Columns: `task_id` (the group), `answer`, `call_cost`, `translated_accuracy` (the base policy's
    accuracy on the tool's English text, from `gating_rollouts`: the answer turn after a call is not
    re-generated during training, the decision is what is learned).
    """

    def reward(
        completions: Sequence[Any],
        task_id: Sequence[str],
        answer: Sequence[str],
        call_cost: Sequence[float],
        translated_accuracy: Sequence[float],
        **_: Any,
    ) -> list[float]:
        decisions = [parse_decision(_text(c)) for c in completions]
        correct = [decision_correct(d, g, t) for d, g, t in zip(decisions, answer, translated_accuracy, strict=True)]
        return gated_rewards(correct, [d.called for d in decisions], call_cost, task_id, config)

    reward.__name__ = f"translate_gated_lam{config.lam}_tau{config.tau}_{'gated' if config.gated else 'ungated'}"
    return reward


def _text(completion: Any) -> str:
    """A completion as text (TRL passes strings, or message lists for conversational data)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion and isinstance(completion[-1], dict):
        return str(completion[-1].get("content", ""))
    return str(completion)
