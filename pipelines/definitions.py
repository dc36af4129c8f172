"""The one `Definitions` object of the assay code location (`[tool.dagster]` points here).

Assets and checks are collected from every module under `assets/` and jobs from `pipelines.jobs`,
so a new domain registers itself by existing: no list to keep in sync here.
"""

from typing import Any

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

import assets
import pipelines.jobs
from pipelines.automation import automation_sensor, with_automation
from pipelines.code_versions import with_derived_code_versions
from pipelines.profiles import build_executor, build_resources
from pipelines.schedules import nightly_webdocs_refresh
from pipelines.sensors import web_doc_shard_sensor


def domain_jobs() -> list[UnresolvedAssetJobDefinition]:
    """Every asset job defined in `pipelines.jobs`, in definition order."""
    return [job for job in vars(pipelines.jobs).values() if isinstance(job, UnresolvedAssetJobDefinition)]


def with_ownership(assets_def: dg.AssetsDefinition) -> dg.AssetsDefinition:
    """Each asset owned by its domain's team and tagged with its domain, for the catalog's filters."""
    return assets_def.map_asset_specs(
        lambda spec: spec.replace_attributes(
            owners=spec.owners or [f"team:{spec.group_name}"],
            tags={"domain": spec.group_name, **spec.tags},
        )
    )


def finished_assets() -> list[dg.AssetsDefinition]:
    """Every asset of `assets/`, with derived code versions, automation conditions and owners."""
    return [
        with_ownership(with_automation(with_derived_code_versions(assets_def)))
        for assets_def in dg.load_assets_from_package_module(assets)
    ]


def build_definitions(resources: dict[str, Any] | None = None) -> dg.Definitions:
    """Every asset, check, job, sensor and schedule, bound to a profile's resources."""
    return dg.Definitions(
        assets=finished_assets(),
        asset_checks=dg.load_asset_checks_from_package_module(assets),
        jobs=domain_jobs(),
        sensors=[web_doc_shard_sensor, automation_sensor],
        schedules=[nightly_webdocs_refresh],
        resources=resources if resources is not None else build_resources(),
        executor=build_executor(),
    )


defs = build_definitions()
