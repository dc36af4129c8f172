"""Model files of the moe assets in the artifact store, per partition, and their resumable work folders."""

from __future__ import annotations

import io
import os
from pathlib import Path

import dagster as dg
import polars as pl

from assets.models import files_version
from ops.common.versioning import combine_versions
from resources.artifact_store import ArtifactStore
from resources.io_manager import ARTIFACT_PATH, ARTIFACT_VERSION, latest_materialization, recorded_version

GROUP = "moe"
HISTORY_FILE = "history.parquet"


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """A frame as Parquet bytes, to store next to a model's files."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def read_parquet_file(files: dict[str, bytes], name: str) -> pl.DataFrame:
    """A Parquet file of a stored model version as a frame."""
    return pl.read_parquet(io.BytesIO(files[name]))


def files_result(
    context: dg.AssetExecutionContext, store: ArtifactStore, files: dict[str, bytes], metadata: dict
) -> dg.MaterializeResult:
    """Store files as one content version of the asset (partition) and report it as the data version."""
    version = files_version(files)
    partition = context.partition_key if context.has_partition_key else None
    key = context.asset_key
    _, written = store.write_files(
        key.path,
        partition,
        version,
        files,
        provenance={"code_version": context.assets_def.code_versions_by_key.get(key), "run_id": context.run_id},
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            ARTIFACT_VERSION: version,
            ARTIFACT_PATH: dg.MetadataValue.path(str(store.folder(key.path, partition, version))),
            "artifact_written": written,
            "files": ", ".join(sorted(files)),
            **metadata,
        },
    )


def load_files(
    instance: dg.DagsterInstance, store: ArtifactStore, key: str, partition: str | None = None
) -> tuple[str, dict[str, bytes]]:
    """The version and files that an asset (partition)'s latest materialization recorded."""
    asset_key = dg.AssetKey(key)
    version = recorded_version(latest_materialization(instance, asset_key, partition))
    if version is None:
        where = f" partition {partition!r}" if partition else ""
        raise dg.DagsterInvariantViolationError(f"{key}{where} has no recorded version: materialize it first")
    manifest = store.manifest(asset_key.path, partition, version)
    return version, {name: store.read_file(asset_key.path, partition, version, name) for name in manifest.files}


def work_dir(context: dg.AssetExecutionContext, *inputs: str) -> Path:
    """Folder of a training run's in-progress checkpoints, keyed by asset, partition and inputs, under
    `$ASSAY_HOME/work`; a rerun with equal inputs resumes from what a killed run left there."""
    partition = context.partition_key if context.has_partition_key else "all"
    home = Path(os.environ.get("ASSAY_HOME", ".assay"))
    return home / "work" / context.asset_key.to_python_identifier() / partition / combine_versions(inputs)
