"""The local executor runs a light one-asset run in its run worker and spawns one process per step otherwise."""

from __future__ import annotations

import os

import dagster as dg
import pytest
from dagster._core.execution.api import create_execution_plan

from pipelines.executors import assay_executor, runs_in_worker


@dg.asset(kinds={"polars"})
def light() -> int:
    return 1


@dg.asset_check(asset=light, blocking=True)
def light_positive(light: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=light > 0)


@dg.asset(kinds={"pytorch"})
def heavy(light: int) -> int:
    return light + 1


@dg.asset_check(asset=heavy, blocking=True)
def heavy_positive(heavy: int) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=heavy > 0)


@dg.asset(pool="llm")
def pooled() -> int:
    return 2


@dg.asset
def other_light() -> int:
    return 3


@dg.asset(required_resource_keys={"embedder"})
def embedded() -> int:
    return 4


DEMO = dg.Definitions(
    assets=[light, heavy, pooled, other_light, embedded],
    asset_checks=[light_positive, heavy_positive],
    jobs=[dg.define_asset_job("demo", selection=dg.AssetSelection.all())],
    resources={"embedder": dg.ResourceDefinition.none_resource()},
    executor=assay_executor,
)


def demo_job() -> dg.JobDefinition:
    """The demo's asset job, reconstructable by the spawned step processes."""
    return DEMO.resolve_job_def("demo")


def _plan(*names: str, checks: bool = True):
    keys = {dg.AssetKey(name) for name in names}
    graph = DEMO.resolve_asset_graph()
    selected_checks = {key for key in graph.asset_check_keys if key.asset_key in keys} if checks else set()
    job = demo_job().get_subset(asset_selection=keys, asset_check_selection=selected_checks)
    return job.asset_layer, create_execution_plan(job)


@pytest.mark.parametrize(
    ("names", "in_worker"),
    [
        (("light",), True),  # one light asset and its blocking check
        (("other_light",), True),  # no kind at all is light too
        (("heavy",), False),  # a pytorch asset keeps its own process
        (("pooled",), False),  # so does a step in a pool (llm, gpu)
        (("embedded",), False),  # and one that loads a model through a resource
        (("light", "other_light"), False),  # several assets: one process per step, in parallel
    ],
)
def test_which_runs_execute_in_the_run_worker(names: tuple[str, ...], in_worker: bool) -> None:
    assert runs_in_worker(*_plan(*names)) is in_worker


def test_a_check_of_another_asset_is_not_a_light_run() -> None:
    job = demo_job().get_subset(
        asset_selection={dg.AssetKey("light")},
        asset_check_selection={dg.AssetCheckKey(dg.AssetKey("heavy"), "heavy_positive")},
    )
    assert runs_in_worker(job.asset_layer, create_execution_plan(job)) is False


def _step_pids(result: dg.ExecuteJobResult) -> dict[str, int]:
    return {event.step_key: event.pid for event in result.all_events if event.event_type_value == "STEP_SUCCESS"}


def _execute(instance: dg.DagsterInstance, names: tuple[str, ...], run_config: dict | None = None):
    selection = [dg.AssetKey(name) for name in names]
    return dg.execute_job(
        dg.reconstructable(demo_job), instance=instance, asset_selection=selection, run_config=run_config or {}
    )


def test_a_light_run_executes_in_the_run_worker_and_a_heavy_one_spawns(instance: dg.DagsterInstance) -> None:
    with _execute(instance, ("light",)) as light_run:
        assert light_run.success
        assert set(_step_pids(light_run).values()) == {os.getpid()}  # asset and check in this process
        assert light_run.get_asset_check_evaluations()[0].passed
    with _execute(instance, ("heavy",)) as heavy_run:
        assert heavy_run.success
        pids = _step_pids(heavy_run)
        assert len(pids) == 2 and os.getpid() not in pids.values()  # one spawned process per step


def test_the_choice_can_be_turned_off_by_run_config(instance: dg.DagsterInstance) -> None:
    config = {"execution": {"config": {"multiprocess": {"light_runs_in_process": False}}}}
    with _execute(instance, ("light",), config) as run:
        assert run.success
        assert os.getpid() not in _step_pids(run).values()
