"""The one `Definitions` object of the assay code location (`[tool.dagster]` points here)."""

from typing import Any

import dagster as dg

import assets.shopbench.checks
import assets.shopbench.evaluation
import assets.shopbench.missions
import assets.shopping.agent_eval
import assets.shopping.catalog
import assets.shopping.checks
import assets.shopping.qa
import assets.shopping.trajectories
import assets.tooluse.checks
import assets.tooluse.evaluation
import assets.tooluse.specs
import assets.tooluse.trajectories
import assets.webdocs.checks
import assets.webdocs.corpus
import assets.webdocs.embeddings
import assets.webdocs.intake
import assets.webdocs.labels
import assets.webdocs.students
import assets.webdocs.taxonomy
from pipelines.jobs import (
    shopbench_job,
    shopbench_missions_job,
    shopbench_scores_job,
    shopping_catalog_job,
    shopping_event_log_job,
    shopping_job,
    tooluse_job,
    webdocs_corpus_job,
    webdocs_job,
    webdocs_labels_job,
)
from pipelines.profiles import build_resources
from pipelines.schedules import nightly_webdocs_refresh
from pipelines.sensors import web_corpus_refresh_sensor, web_doc_labels_sensor, web_doc_shard_sensor

ASSET_MODULES = [
    assets.webdocs.intake,
    assets.webdocs.embeddings,
    assets.webdocs.corpus,
    assets.webdocs.taxonomy,
    assets.webdocs.students,
    assets.webdocs.labels,
    assets.shopping.catalog,
    assets.shopping.trajectories,
    assets.shopping.qa,
    assets.shopping.agent_eval,
    assets.shopbench.missions,
    assets.shopbench.evaluation,
    assets.tooluse.specs,
    assets.tooluse.trajectories,
    assets.tooluse.evaluation,
]
CHECK_MODULES = [assets.webdocs.checks, assets.shopping.checks, assets.shopbench.checks, assets.tooluse.checks]


def build_definitions(resources: dict[str, Any] | None = None) -> dg.Definitions:
    """Every asset, check, job, sensor and schedule, bound to a profile's resources."""
    return dg.Definitions(
        assets=dg.load_assets_from_modules(ASSET_MODULES),
        asset_checks=dg.load_asset_checks_from_modules(CHECK_MODULES),
        jobs=[
            webdocs_job,
            webdocs_corpus_job,
            webdocs_labels_job,
            shopping_catalog_job,
            shopping_job,
            shopping_event_log_job,
            shopbench_missions_job,
            shopbench_job,
            shopbench_scores_job,
            tooluse_job,
        ],
        sensors=[web_doc_shard_sensor, web_corpus_refresh_sensor, web_doc_labels_sensor],
        schedules=[nightly_webdocs_refresh],
        resources=resources if resources is not None else build_resources(),
    )


defs = build_definitions()
