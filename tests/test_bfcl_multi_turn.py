"""BFCL multi-turn: the executable environment, the execution scorer against BFCL's own `multi_turn_checker`,
the turn-by-turn policy loop with a scripted fake LLM, and the two assets in a real Dagster instance."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from functools import cache
from pathlib import Path

import dagster as dg
import pytest

pytest.importorskip("bfcl_eval", reason="bfcl-eval (BFCL's API classes) is not installed; make install adds it")

from ops.common.llm import ChatRequest
from ops.tooluse.bfcl_reference import load_reference
from ops.tooluse.multi_turn import (
    MultiTurnEnvironment,
    MultiTurnError,
    MultiTurnTask,
    load_multi_turn,
    parse_call,
    score_multi_turn,
)
from ops.tooluse.multi_turn_policy import play, read_calls
from ops.tooluse.multi_turn_tables import split_tasks
from tests.fakes import Answer, FakeLLM, FakeLLMResource

BFCL_DIR = Path(__file__).resolve().parent.parent / "samples" / "bfcl_v3"
Steps = list[list[list[str]]]


@pytest.fixture(scope="module")
def tasks() -> list[MultiTurnTask]:
    return load_multi_turn(BFCL_DIR)


def _task(tasks: list[MultiTurnTask], task_id: str) -> MultiTurnTask:
    return next(t for t in tasks if t.id == task_id)


def test_sample_has_every_base_task_and_the_known_bad_one(tasks: list[MultiTurnTask]) -> None:
    assert len(tasks) == 200
    assert [t.id for t in tasks if t.problem] == ["multi_turn_base_154"]  # 5 user turns, 6 ground-truth turns
    assert all(t.functions for t in tasks)


def test_environment_executes_resets_and_snapshots(tasks: list[MultiTurnTask]) -> None:
    env = MultiTurnEnvironment(_task(tasks, "multi_turn_base_0"))
    before = env.snapshot()
    results = env.execute(["cd(folder='document')", "mkdir(dir_name='temp')", "ls()"])
    assert "temp" in results[2] and env.executions == 3
    assert env.snapshot() != before
    env.reset()
    assert env.snapshot() == before


def test_environment_refuses_what_is_not_a_public_method(tasks: list[MultiTurnTask]) -> None:
    env = MultiTurnEnvironment(_task(tasks, "multi_turn_base_0"))
    outputs = env.execute(["__import__('os').system('true')", "_load_scenario(scenario={})", "exit()", "cd('x' + 'y')"])
    assert all(o.startswith("Error during execution:") for o in outputs)
    assert "not defined" in outputs[1] and "not allowed" in outputs[2]


def test_parse_call_takes_positional_and_keyword_literals() -> None:
    assert parse_call("sort('final_report.pdf')") == ("sort", ["final_report.pdf"], {})
    assert parse_call("mv(source='a', destination='b')") == ("mv", [], {"source": "a", "destination": "b"})


def _variants(task: MultiTurnTask) -> Iterator[tuple[str, Steps]]:
    truth = task.ground_truth
    yield "truth", [[turn] for turn in truth]
    yield "one_call_per_step", [[[call] for call in turn] if turn else [[]] for turn in truth]
    first = next(i for i, turn in enumerate(truth) if turn)

    def changed(calls: list[list[str]]) -> Steps:
        return [[turn] if i != first else calls for i, turn in enumerate(truth)]

    yield "drop_last_call", changed([truth[first][:-1]])
    yield "repeat_first_call", changed([[truth[first][0], *truth[first]]])
    yield "empty_turn", changed([[]])
    yield "extra_unknown_call", changed([[*truth[first], "no_such_function(x=1)"]])
    if len(truth) > 1:
        yield "turns_swapped", [[truth[1]], [truth[0]], *[[turn] for turn in truth[2:]]]


def test_scorer_agrees_with_bfcl_multi_turn_checker(tasks: list[MultiTurnTask]) -> None:
    if load_reference() is None:
        pytest.skip("BFCL's checker could not be loaded")
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    names = itertools.count()  # BFCL caches instances per (model name, task id): a fresh name per episode

    def reference(task: MultiTurnTask, steps: Steps) -> bool:
        entry = {"id": task.id, "initial_config": task.initial_config, "involved_classes": list(task.involved_classes)}
        return bool(multi_turn_checker(steps, task.ground_truth, entry, task.category, f"ref{next(names)}")["valid"])

    compared, disagreements, valid = 0, [], 0
    for task in tasks[::4]:
        for kind, steps in _variants(task):
            ours = score_multi_turn(task, steps)
            compared += 1
            valid += ours.valid
            if ours.valid != reference(task, steps):
                disagreements.append((task.id, kind, ours))
    assert disagreements == []
    assert compared > 300 and 0 < valid < compared


def test_scorer_names_the_failure(tasks: list[MultiTurnTask]) -> None:
    task = _task(tasks, "multi_turn_base_0")
    truth = [[turn] for turn in task.ground_truth]
    assert score_multi_turn(task, truth).valid
    empty = score_multi_turn(task, [[[]], *truth[1:]])
    assert (empty.error, empty.failed_turn, empty.turns_passed) == (MultiTurnError.EMPTY_TURN, 0, 0)
    no_mkdir = score_multi_turn(task, [[["cd(folder='document')"]], *truth[1:]])
    assert no_mkdir.error == MultiTurnError.STATE_MISMATCH
    short = score_multi_turn(task, truth[:2])
    assert short.error == MultiTurnError.MISSING_TURNS


def test_split_tasks_quarantines_the_unscorable(tasks: list[MultiTurnTask]) -> None:
    result = split_tasks(tasks[150:160])
    assert result.accounted() and result.kept.height == 9
    assert result.quarantined["reason"].to_list() == ["turn_count_mismatch"]


def test_tasks_without_function_docs_are_quarantined(tmp_path: Path) -> None:
    (tmp_path / "possible_answer").mkdir()
    for relative in ("BFCL_v3_multi_turn_base.json", "possible_answer/BFCL_v3_multi_turn_base.json"):
        lines = (BFCL_DIR / relative).read_text(encoding="utf-8").splitlines()[:3]
        (tmp_path / relative).write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = split_tasks(load_multi_turn(tmp_path))
    assert result.kept.height == 0 and set(result.quarantined["reason"]) == {"missing_function_docs"}


class FakeReplayLLM(FakeLLM):
    """Answers each step with the ground truth of the current turn as JSON calls, then with plain text."""

    def __init__(self, tasks: Sequence[MultiTurnTask]) -> None:
        super().__init__(model_id="fake-replay", prompt_tokens=10, completion_tokens=10)
        self.truth = {t.id: t.ground_truth for t in tasks}

    def answer(self, request: ChatRequest) -> Answer:
        task_id, turn, step = request.request_id.rsplit("/", 2)
        calls = self.truth[task_id][int(turn)] if step == "0" else []
        return json.dumps([_as_json_call(c) for c in calls]) if calls else "Done."


def _as_json_call(call: str) -> dict:
    name, args, kwargs = parse_call(call)
    if args:  # the docs name positional parameters; the ground truth of base_0 sorts by file name
        kwargs = {"file_name": args[0], **kwargs}
    return {"name": name, "arguments": kwargs}


def test_policy_loop_replaying_the_ground_truth_passes(tasks: list[MultiTurnTask]) -> None:
    chosen = [_task(tasks, "multi_turn_base_0"), _task(tasks, "multi_turn_base_1")]
    played = play(chosen, FakeReplayLLM(chosen).chat, max_steps=3)
    assert [score.valid for _, score in played] == [True, True]
    episode, score = played[0]
    assert len(episode.steps) == len(chosen[0].turns) and score.executions > 0
    assert any(m["content"].startswith("Function results:") for m in episode.messages)


def test_read_calls_keeps_broken_calls_and_drops_prose() -> None:
    assert read_calls('[{"name": "ls", "arguments": {"a": true}}]') == ["ls(a=True)"]
    assert read_calls("Sorry (I can't) do that.") == []
    assert read_calls("ls(a=True") == ["ls(a=True"]


class FakeReplayResource(FakeLLMResource):
    """The replaying fake as a Dagster resource (ground truth read from the bundled sample)."""

    model_id: str = "fake-replay"

    def answer(self, request: ChatRequest) -> Answer:
        return _bundled_replay().answer(request)


@cache
def _bundled_replay() -> FakeReplayLLM:
    return FakeReplayLLM(load_multi_turn(BFCL_DIR))


@pytest.mark.slow
def test_multi_turn_assets_materialize_with_blocking_checks(instance, assay_home) -> None:
    from assets.tooluse import multi_turn
    from pipelines.profiles import build_resources
    from resources.scale import ScaleResource

    resources = {
        **build_resources("local"),
        "llm": FakeReplayResource(),
        "scale": ScaleResource(tool_multi_turn_tasks=3),
    }
    defs = dg.Definitions(
        assets=[multi_turn.bfcl_multi_turn_tasks, multi_turn.tool_multi_turn_eval],
        asset_checks=[
            multi_turn.bfcl_multi_turn_tasks_valid,
            multi_turn.bfcl_multi_turn_tasks_quarantine_valid,
            multi_turn.tool_multi_turn_eval_valid,
        ],
        resources=resources,
    )
    run = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
    assert run.success
    evaluations = run.get_asset_check_evaluations()
    assert len(evaluations) == 3 and all(e.passed for e in evaluations)
    kept = run.output_for_node("bfcl_multi_turn_tasks", "bfcl_multi_turn_tasks")
    quarantined = run.output_for_node("bfcl_multi_turn_tasks", "bfcl_multi_turn_tasks_quarantine")
    assert kept.height + quarantined.height == 200 and quarantined.height == 1
    episodes = run.output_for_node("tool_multi_turn_eval")
    assert episodes.height == 3 and episodes["valid"].all() and episodes["executions"].min() > 0
