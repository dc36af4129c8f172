"""The local executor: Dagster's multiprocess executor, except that a light one-asset run executes in its run worker.

Under the multiprocess executor every step is a freshly spawned process that loads the code location again
before it starts: a one-asset materialization launched from the UI (the asset's step, then its blocking check)
paid two such loads on top of the run worker's own, most of its click-to-success time. A run whose steps are
one asset's op and the checks of that asset, with no pool (`llm`, `gpu`), no heavy kind (`pytorch`, `llm`) on
the asset and no model-loading resource (`llm`, `embedder`, `translation`), now executes in the run worker,
itself a process of its own per run. Everything else keeps one
process per step: a run of several assets keeps its parallelism and its steps' isolation from each other, and a
step that loads a model (whose crash or out-of-memory would take the run worker with it) keeps its own process.

Config is that of Dagster's default `multi_or_in_process_executor`, plus `multiprocess.light_runs_in_process`
(default true; false spawns every step as before).
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from dagster._core.definitions.asset_key import AssetCheckKey
from dagster._core.definitions.assets.job.asset_layer import AssetLayer
from dagster._core.definitions.executor_definition import (
    IN_PROC_CONFIG,
    MULTI_PROC_CONFIG,
    _core_in_process_executor_creation,
    _core_multiprocess_executor_creation,
    _get_default_executor_requirements,
)
from dagster._core.events import DagsterEvent
from dagster._core.execution.context.system import PlanOrchestrationContext
from dagster._core.execution.plan.plan import ExecutionPlan
from dagster._core.execution.retries import RetryMode
from dagster._core.execution.step_dependency_config import StepDependencyConfig
from dagster._core.executor.base import Executor

HEAVY_KINDS = frozenset({"pytorch", "llm"})
MODEL_RESOURCES = frozenset({"llm", "embedder", "translation"})
LIGHT_RUNS_FIELD = "light_runs_in_process"


def runs_in_worker(asset_layer: AssetLayer, plan: ExecutionPlan) -> bool:
    """True when the plan's steps are one light asset op and checks of its assets only."""
    materialized: set[dg.AssetKey] = set()
    checked: set[dg.AssetKey] = set()
    op_steps = 0
    for step_key in plan.step_keys_to_execute:
        step = plan.get_step_by_key(step_key)
        if step.pool or MODEL_RESOURCES & asset_layer.get_assets_def_for_node(step.node_handle).required_resource_keys:
            return False
        entities = asset_layer.get_selected_entity_keys_for_node(step.node_handle)
        assets = {key for key in entities if isinstance(key, dg.AssetKey)}
        checked |= {key.asset_key for key in entities if isinstance(key, AssetCheckKey)}
        if assets:
            op_steps += 1
            materialized |= assets
        elif not entities:
            return False  # a plain op: nothing to say it is light
    if op_steps != 1 or not checked <= materialized:
        return False
    return not any(HEAVY_KINDS & asset_layer.asset_graph.get(key).kinds for key in materialized)


class LightRunsInProcessExecutor(Executor):
    """Chooses per run: in process for a light one-asset run, one process per step otherwise."""

    def __init__(self, multiprocess: Executor, in_process: Executor) -> None:
        self._multiprocess = multiprocess
        self._in_process = in_process

    @property
    def retries(self) -> RetryMode:
        return self._multiprocess.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self._multiprocess.step_dependency_config

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Iterator[DagsterEvent]:
        asset_layer = plan_context.job.get_definition().asset_layer
        chosen = self._in_process if runs_in_worker(asset_layer, execution_plan) else self._multiprocess
        yield from chosen.execute(plan_context, execution_plan)


def _multiprocess_config() -> dg.Field:
    fields = dict(MULTI_PROC_CONFIG.config_type.fields)
    fields[LIGHT_RUNS_FIELD] = dg.Field(
        bool,
        default_value=True,
        description="Execute a run of one light asset and its checks in the run worker (module pipelines.executors).",
    )
    return dg.Field(dg.Shape(fields), description=MULTI_PROC_CONFIG.description)


@dg.executor(
    name="assay_executor",
    config_schema=dg.Field(
        dg.Selector({"multiprocess": _multiprocess_config(), "in_process": IN_PROC_CONFIG}),
        default_value={"multiprocess": {}},
    ),
    requirements=_get_default_executor_requirements,
)
def assay_executor(init_context: dg.InitExecutorContext) -> Executor:
    """Dagster's default executor, with light one-asset runs executed in the run worker (module docstring)."""
    config = init_context.executor_config
    if "in_process" in config:
        return _core_in_process_executor_creation(config["in_process"])
    multiprocess = dict(config["multiprocess"])
    light_in_process = multiprocess.pop(LIGHT_RUNS_FIELD)
    executor = _core_multiprocess_executor_creation(multiprocess)
    if not light_in_process:
        return executor
    shared = {key: multiprocess.get(key) for key in ("retries", "step_dependency_config")}
    in_process = _core_in_process_executor_creation(shared)
    return LightRunsInProcessExecutor(executor, in_process)
