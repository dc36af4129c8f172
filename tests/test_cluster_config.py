"""The cluster profile's configuration, checked against the libraries' own schemas (no cluster needed)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import kubernetes
import pytest
import yaml
from dagster._config import validate_config
from dagster._config.field_utils import Shape
from dagster._core.instance.config import dagster_instance_config
from dagster_k8s import K8sRunLauncher
from dagster_k8s.models import k8s_model_from_dict
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from pipelines.executors import assay_executor
from pipelines.profiles import build_executor

CLUSTER = Path(__file__).resolve().parents[1] / "pipelines" / "cluster"


def _launcher_block() -> dict:
    return yaml.safe_load((CLUSTER / "k8s_run_launcher.yaml").read_text())["run_launcher"]


def test_k8s_run_launcher_config_matches_dagster_k8s_schema() -> None:
    block = _launcher_block()
    assert (block["module"], block["class"]) == ("dagster_k8s", "K8sRunLauncher")
    result = validate_config(Shape(K8sRunLauncher.config_type()), block["config"])
    assert result.success, [error.message for error in result.errors]
    # The container overrides are Kubernetes objects: dagster-k8s builds them with the Kubernetes client's models.
    container = block["config"]["run_k8s_config"]["container_config"]
    model = k8s_model_from_dict(kubernetes.client.V1Container, {"name": "run", **container})
    assert model.resources.requests == {"cpu": "500m", "memory": "1Gi"}


def test_k8s_schema_refuses_a_broken_launcher_config() -> None:
    config = {**_launcher_block()["config"], "job_namespace": 3, "job_imagee": "typo"}
    result = validate_config(Shape(K8sRunLauncher.config_type()), config)
    assert not result.success
    messages = " ".join(error.message for error in result.errors)
    assert "job_imagee" in messages and "job_namespace" in messages


def test_cluster_instance_yaml_is_a_valid_postgres_instance(tmp_path: Path) -> None:
    (tmp_path / "dagster.yaml").write_text((CLUSTER / "dagster.yaml").read_text())
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    postgres = config["storage"]["postgres"]
    for storage in (PostgresRunStorage, PostgresEventLogStorage, PostgresScheduleStorage):
        result = validate_config(Shape(storage.config_type()), postgres)
        assert result.success, [error.message for error in result.errors]
    with_k8s = {**yaml.safe_load((CLUSTER / "dagster.yaml").read_text()), "run_launcher": _launcher_block()}
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(with_k8s))
    assert dagster_instance_config(str(tmp_path))[0]["run_launcher"]["class"] == "K8sRunLauncher"


def test_only_the_cluster_profile_executes_steps_on_celery() -> None:
    assert build_executor("local") is assay_executor
    executor = build_executor("cluster")
    assert isinstance(executor, dg.ExecutorDefinition)
    assert executor.name == "assay_celery"


@pytest.mark.parametrize("profile", ["local", "gpu"])
def test_other_profiles_keep_the_local_executor(profile: str) -> None:
    assert build_executor(profile) is assay_executor
