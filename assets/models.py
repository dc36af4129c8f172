"""Model artifacts (weights, configs, cards) as versioned files in the artifact store."""

import dagster as dg

from ops.common.text import sha256_hex
from ops.common.versioning import combine_versions
from resources.artifact_store import ArtifactStore
from resources.io_manager import ARTIFACT_PATH, ARTIFACT_VERSION, latest_materialization, recorded_version


def files_version(files: dict[str, bytes]) -> str:
    """Content version of a set of named files."""
    return combine_versions(f"{name}:{sha256_hex(files[name])}" for name in sorted(files))


def model_result(
    context: dg.AssetExecutionContext, store: ArtifactStore, files: dict[str, bytes], metadata: dict
) -> dg.MaterializeResult:
    """Store a model's files as one version of the asset (partition) and report it as the data version."""
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


def load_model_files(instance: dg.DagsterInstance, store: ArtifactStore, key: str) -> dict[str, bytes]:
    """The files of the version that the model asset's latest materialization recorded."""
    return load_model_version(instance, store, key)[1]


def load_model_version(
    instance: dg.DagsterInstance, store: ArtifactStore, key: str, partition: str | None = None
) -> tuple[str, dict[str, bytes]]:
    """The version and files that a model asset (partition)'s latest materialization recorded."""
    asset_key = dg.AssetKey(key)
    version = recorded_version(latest_materialization(instance, asset_key, partition))
    if version is None:
        where = f" partition {partition!r}" if partition else ""
        raise dg.DagsterInvariantViolationError(f"{key}{where} has no recorded model version: materialize it first")
    manifest = store.manifest(asset_key.path, partition, version)
    return version, {name: store.read_file(asset_key.path, partition, version, name) for name in manifest.files}
