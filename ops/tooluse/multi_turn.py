"""BFCL v3 multi-turn tasks as an executable environment, and BFCL's per-turn scorer.

A task is a conversation of user turns over stateful API classes (file system, messaging, trading,
travel, vehicle, ...), an initial state per class and, per turn, the ground-truth call strings. The
classes are BFCL's own (PyPI `bfcl-eval`, Apache-2.0, `func_source_code/`), imported, never copied.

`MultiTurnEnvironment` is the reusable API (the agents domain builds on it): reset to a task's initial
state, execute call strings, read a state snapshot. Calls are parsed with `ast` into a method name and
literal arguments and dispatched only to a public method of an involved class: no `eval` (BFCL evals
the call text), so model-written text cannot reach anything else. Results are rendered as BFCL does
(str as is, dict as JSON, else str(); an exception as "Error during execution: ...").

`score_multi_turn` follows BFCL's `multi_turn_checker`: after each turn with ground truth, the model's
instances must equal the ground truth's (every public attribute) and every ground-truth result of the
turn must appear among the model's results so far (as a multiset, any order); a turn with ground truth
and no model call fails. Where BFCL executes and then asserts, errors here become failed turns.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ops.tooluse.bfcl import read_jsonl

BACKEND_PACKAGE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"
# API class -> (module in BACKEND_PACKAGE, function-doc file in multi_turn_func_doc/).
API_CLASSES: dict[str, tuple[str, str]] = {
    "GorillaFileSystem": ("gorilla_file_system", "gorilla_file_system"),
    "MathAPI": ("math_api", "math_api"),
    "MessageAPI": ("message_api", "message_api"),
    "TwitterAPI": ("posting_api", "posting_api"),
    "TicketAPI": ("ticket_api", "ticket_api"),
    "TradingBot": ("trading_bot", "trading_bot"),
    "TravelAPI": ("travel_booking", "travel_booking"),
    "VehicleControlAPI": ("vehicle_control", "vehicle_control"),
}
STATELESS_CLASSES = frozenset({"MathAPI"})
# Method names BFCL refuses to run whatever class defines them.
BLOCKED_METHODS = frozenset({"kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run"})


class MultiTurnError(StrEnum):
    """Why a multi-turn episode failed (BFCL's error types)."""

    EMPTY_TURN = "multi_turn:empty_turn_model_response"
    STATE_MISMATCH = "multi_turn:instance_state_mismatch"
    RESPONSE_MISMATCH = "multi_turn:execution_response_mismatch"
    MISSING_TURNS = "multi_turn:missing_turns"


@dataclass(frozen=True)
class MultiTurnTask:
    """One BFCL multi-turn task: user turns, API classes and their initial state, ground-truth calls per turn."""

    id: str
    category: str
    turns: list[list[dict[str, str]]]
    involved_classes: tuple[str, ...]
    initial_config: dict[str, Any]
    ground_truth: list[list[str]]
    functions: tuple[dict[str, Any], ...] = ()
    missing_docs: tuple[str, ...] = ()

    @property
    def problem(self) -> str | None:
        """Why the task cannot be scored as given (BFCL's checker would crash on it), or None."""
        if len(self.turns) != len(self.ground_truth):
            return f"{len(self.turns)} user turns but {len(self.ground_truth)} ground-truth turns"
        if self.missing_docs:
            return f"no function docs for {', '.join(self.missing_docs)}"
        return None

    @property
    def long_context(self) -> bool:
        """BFCL loads the long-context filler state for these categories."""
        return "long_context" in self.category or "composite" in self.category


def function_doc_path(root: Path, api_class: str) -> Path:
    """Where a BFCL folder keeps the tool specs of one API class."""
    return root / "multi_turn_func_doc" / f"{API_CLASSES[api_class][1]}.json"


def load_function_docs(root: Path, classes: Sequence[str]) -> tuple[dict[str, Any], ...]:
    """The tool specs (BFCL function docs) of the given API classes that have a doc file, in class order."""
    return tuple(
        doc
        for name in classes
        if function_doc_path(root, name).exists()
        for doc in read_jsonl(function_doc_path(root, name))
    )


def load_multi_turn(root: Path, category: str = "multi_turn_base") -> list[MultiTurnTask]:
    """Load a multi-turn category from a BFCL folder (questions, possible answers, function docs).

    A task whose turns and ground truth disagree in number, or whose classes lack function docs, is loaded
    as is: see `MultiTurnTask.problem`.
    """
    answers = {
        row["id"]: row["ground_truth"] for row in read_jsonl(root / "possible_answer" / f"BFCL_v3_{category}.json")
    }
    tasks = []
    for row in read_jsonl(root / f"BFCL_v3_{category}.json"):
        if row["id"] not in answers:
            raise ValueError(f"{category}: task {row['id']} has no possible answer")
        unknown = [c for c in row["involved_classes"] if c not in API_CLASSES]
        if unknown:
            raise ValueError(f"{row['id']}: unknown API classes {unknown}")
        truth = answers[row["id"]]
        tasks.append(
            MultiTurnTask(
                id=row["id"],
                category=category,
                turns=row["question"],
                involved_classes=tuple(row["involved_classes"]),
                initial_config=row["initial_config"],
                ground_truth=truth,
                functions=load_function_docs(root, row["involved_classes"]),
                missing_docs=tuple(c for c in row["involved_classes"] if not function_doc_path(root, c).exists()),
            )
        )
    return tasks


def _literal(node: ast.expr) -> Any:
    try:
        return ast.literal_eval(node)
    except ValueError as exc:
        raise ValueError(f"argument is not a literal: {ast.unparse(node)[:60]}") from exc


def parse_call(text: str) -> tuple[str, list[Any], dict[str, Any]]:
    """Split one call string `name(a, k=v)` into its name, positional and keyword literal arguments."""
    node = ast.parse(text.strip(), mode="eval").body
    if not isinstance(node, ast.Call):
        raise ValueError(f"not a call: {text[:60]}")
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name is None or any(kw.arg is None for kw in node.keywords):
        raise ValueError(f"unsupported call form: {text[:60]}")
    return name, [_literal(a) for a in node.args], {kw.arg: _literal(kw.value) for kw in node.keywords}  # type: ignore[misc]


def render_result(result: Any) -> str:
    """A method's return value as BFCL records it."""
    if type(result) is str:
        return result
    if type(result) is dict:
        try:
            return json.dumps(result)
        except (TypeError, ValueError):
            return str(result)
    return str(result)


@dataclass
class MultiTurnEnvironment:
    """Live instances of a task's API classes: reset, execute calls, snapshot the state."""

    task: MultiTurnTask
    instances: dict[str, Any] = field(default_factory=dict)
    executions: int = 0

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Fresh instances loaded with the task's initial state."""
        self.instances = {}
        for name in self.task.involved_classes:
            module = importlib.import_module(f"{BACKEND_PACKAGE}.{API_CLASSES[name][0]}")
            instance = getattr(module, name)()
            if name not in STATELESS_CLASSES:
                config = copy.deepcopy(self.task.initial_config.get(name, {}))
                instance._load_scenario(config, long_context=self.task.long_context)
            self.instances[name] = instance
        self._methods = {
            method: getattr(instance, method)
            for instance in self.instances.values()
            for method, _ in inspect.getmembers(instance, predicate=inspect.ismethod)
            if not method.startswith("_")
        }

    def execute_one(self, call: str) -> str:
        """Run one call string; an unknown, blocked or failing call gives BFCL's error text, never raises."""
        self.executions += 1
        try:
            name, args, kwargs = parse_call(call)
            if name in BLOCKED_METHODS:
                raise PermissionError(f"Function call {name} is not allowed.")
            if name not in self._methods:
                raise NameError(f"name '{name}' is not defined")
            return render_result(self._methods[name](*args, **kwargs))
        except Exception as exc:
            return f"Error during execution: {exc}"

    def execute(self, calls: Sequence[str]) -> list[str]:
        """Run call strings in order, one result each."""
        return [self.execute_one(call) for call in calls]

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every public attribute of every instance (what BFCL's state check compares), deep-copied."""
        return {
            name: {k: copy.deepcopy(v) for k, v in vars(instance).items() if not k.startswith("_")}
            for name, instance in self.instances.items()
        }


@dataclass(frozen=True)
class MultiTurnScore:
    """The outcome of one episode: valid, turns passed before the first failure, why and where it failed."""

    task_id: str
    valid: bool
    turns_passed: int
    turns: int
    error: str | None
    failed_turn: int | None
    detail: str
    executions: int


def _state_differences(model: Any, truth: Any) -> list[str]:
    return [k for k in vars(truth) if not k.startswith("_") and getattr(model, k) != getattr(truth, k)]


def _missing_results(truth: Sequence[str], model: Sequence[str]) -> list[str]:
    pool = list(model)
    missing = []
    for item in truth:
        if item in pool:
            pool.remove(item)
        else:
            missing.append(item)
    return missing


def _is_empty_turn(steps: Sequence[Sequence[str]]) -> bool:
    return len(steps) == 0 or (len(steps) == 1 and len(steps[0]) == 0)


def score_multi_turn(task: MultiTurnTask, model_steps: Sequence[Sequence[Sequence[str]]]) -> MultiTurnScore:
    """Score a model's calls (per turn, per step, call strings) by execution, turn by turn, as BFCL does."""
    model_env, truth_env = MultiTurnEnvironment(task), MultiTurnEnvironment(task)
    all_model_results: list[str] = []

    def verdict(valid: bool, turn: int, error: MultiTurnError | None = None, detail: str = "") -> MultiTurnScore:
        passed = turn if not valid else len(task.ground_truth)
        executions = model_env.executions + truth_env.executions
        return MultiTurnScore(
            task.id, valid, passed, len(task.ground_truth), error, None if valid else turn, detail, executions
        )

    if len(model_steps) < len(task.ground_truth):
        return verdict(False, len(model_steps), MultiTurnError.MISSING_TURNS, f"{len(model_steps)} turns answered")
    for turn, truth_calls in enumerate(task.ground_truth):
        steps = model_steps[turn]
        for step in steps:
            all_model_results += model_env.execute(step)
        truth_results = truth_env.execute(truth_calls)
        if not truth_calls:
            continue
        if _is_empty_turn(steps):
            return verdict(False, turn, MultiTurnError.EMPTY_TURN, "no call in a turn that needs one")
        for name, truth in truth_env.instances.items():
            differences = _state_differences(model_env.instances[name], truth)
            if differences:
                return verdict(False, turn, MultiTurnError.STATE_MISMATCH, f"{name}: {', '.join(differences)} differ")
        missing = _missing_results(truth_results, all_model_results)
        if missing:
            return verdict(False, turn, MultiTurnError.RESPONSE_MISMATCH, f"missing results: {missing[:2]!r:.200}")
    return verdict(True, len(task.ground_truth))
