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
    """Store a model's files as one version and report it as the asset's data version."""
    version = files_version(files)
    key = context.asset_key
    _, written = store.write_files(
        key.path,
        None,
        version,
        files,
        provenance={"code_version": context.assets_def.code_versions_by_key.get(key), "run_id": context.run_id},
    )
    return dg.MaterializeResult(
        data_version=dg.DataVersion(version),
        metadata={
            ARTIFACT_VERSION: version,
            ARTIFACT_PATH: dg.MetadataValue.path(str(store.folder(key.path, None, version))),
            "artifact_written": written,
            "files": ", ".join(sorted(files)),
            **metadata,
        },
    )


def load_model_files(instance: dg.DagsterInstance, store: ArtifactStore, key: str) -> dict[str, bytes]:
    """The files of the version that the model asset's latest materialization recorded."""
    asset_key = dg.AssetKey(key)
    version = recorded_version(latest_materialization(instance, asset_key, None))
    if version is None:
        raise dg.DagsterInvariantViolationError(f"{key} has no recorded model version: materialize it first")
    manifest = store.manifest(asset_key.path, None, version)
    return {name: store.read_file(asset_key.path, None, version, name) for name in manifest.files}
