"""IO manager that stores polars frames as versioned Parquet artifacts and loads exact versions.

The asset computes its content version (see `assets/outputs.py`) and reports it as its Dagster
`DataVersion` and as the `artifact_version` metadata entry; this IO manager writes that version
into the artifact store with a manifest of its provenance. Loading never guesses "the newest
folder": it reads the version that the upstream's latest materialization recorded, so what a run
consumed is exactly what Dagster says it consumed.
"""

from collections.abc import Sequence

import dagster as dg
import polars as pl

from ops.common.versioning import frame_version
from resources.artifact_store import FRAME_FILE, ArtifactStoreResource
from resources.object_store import object_store_options

ARTIFACT_VERSION = "artifact_version"
ARTIFACT_PATH = "artifact_path"


def latest_materialization(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partition: str | None
) -> dg.AssetMaterialization | None:
    """The latest materialization of an asset (partition), or None if it was never materialized."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition] if partition else None),
        limit=1,
    ).records
    return records[0].asset_materialization if records else None


def materialized_partition_files(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Parquet files of the latest version of each materialized partition, and the partitions never
    materialized; for corpus-wide steps that summarize whatever partitions exist so far."""
    files, missing = [], []
    for partition in partitions:
        event = latest_materialization(instance, asset_key, partition)
        if event is None or ARTIFACT_PATH not in event.metadata:
            missing.append(partition)
        else:
            files.append(f"{event.metadata[ARTIFACT_PATH].value}/{FRAME_FILE}")
    return files, missing


def recorded_version(materialization: dg.AssetMaterialization | None) -> str | None:
    """The artifact version a materialization recorded, if it recorded one."""
    if materialization is None:
        return None
    entry = materialization.metadata.get(ARTIFACT_VERSION)
    return None if entry is None else str(getattr(entry, "value", entry))


class VersionedParquetIOManager(dg.ConfigurableIOManager):
    """Polars frames in, Parquet versions out; see the module docstring."""

    store: ArtifactStoreResource

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame | None) -> None:
        if obj is None:
            return
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(
                f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                "this IO manager stores polars DataFrames"
            )
        partition = context.partition_key if context.has_partition_key else None
        version = recorded_version_from_output(context) or frame_version(obj)
        provenance = {
            "code_version": context.asset_spec.code_version,
            "upstream_versions": _upstream_versions(context, partition),
            "run_id": context.run_id,
        }
        store = self.store.get_store()
        _, written = store.write_frame(context.asset_key.path, partition, obj, version=version, provenance=provenance)
        context.add_output_metadata(
            {
                ARTIFACT_PATH: dg.MetadataValue.path(str(store.folder(context.asset_key.path, partition, version))),
                "artifact_written": written,
            }
        )

    def load_input(self, context: dg.InputContext) -> pl.DataFrame | pl.LazyFrame:
        asset_key = context.asset_key
        partitions = list(context.asset_partition_keys) if context.has_asset_partitions else [None]
        store = self.store.get_store()
        folders = []
        for partition in partitions:
            version = recorded_version(latest_materialization(context.instance, asset_key, partition))
            if version is None:
                where = f" partition {partition!r}" if partition else ""
                raise dg.DagsterInvariantViolationError(
                    f"{asset_key.to_user_string()}{where} has no recorded artifact version: materialize it first"
                )
            store.manifest(asset_key.path, partition, version)  # raises a clear error if missing
            folders.append(store.folder(asset_key.path, partition, version) / FRAME_FILE)
        if context.dagster_type.typing_type is pl.LazyFrame:
            paths = [str(folder) for folder in folders]
            return pl.scan_parquet(paths, storage_options=object_store_options(paths[0]) or None)
        frames = []
        for folder in folders:
            with folder.open("rb") as handle:
                frames.append(pl.read_parquet(handle))
        return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def recorded_version_from_output(context: dg.OutputContext) -> str | None:
    """The version the asset already computed and attached to its Output, if any."""
    entry = (context.output_metadata or {}).get(ARTIFACT_VERSION)
    return None if entry is None else str(getattr(entry, "value", entry))


def _upstream_versions(context: dg.OutputContext, partition: str | None) -> dict[str, str]:
    """Data versions of the asset's dependencies as the instance records them now."""
    instance = context.step_context.instance
    versions = {}
    for dep in context.asset_spec.deps:
        event = latest_materialization(instance, dep.asset_key, partition) if partition else None
        event = event or latest_materialization(instance, dep.asset_key, None)
        tag = event.tags.get("dagster/data_version") if event is not None and event.tags else None
        if tag:
            versions[dep.asset_key.to_user_string()] = tag
    return versions
