"""Versioned, content-addressed artifact store: `<root>/<asset key>/[<partition>/]<version>/`.

Every version folder holds its data files and a `manifest.json` written last: a folder without a
manifest is an interrupted write and is never read. Versions are content hashes, so writing equal
content twice finds the existing folder and writes nothing; a new version never touches an old one.
The root is a local folder or any fsspec URL (s3://, gs://) through universal-pathlib; an S3-compatible
endpoint and its credentials come from the AWS environment variables (`resources/object_store.py`).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
import polars as pl
from upath import UPath

from ops.common.versioning import frame_version
from resources.object_store import fsspec_options

MANIFEST_NAME = "manifest.json"
FRAME_FILE = "data.parquet"
_LOCAL_PROTOCOLS = ("", "file", "local")


@dataclass(frozen=True)
class Manifest:
    """What a version folder holds and where it came from."""

    asset_key: str
    partition: str | None
    version: str
    rows: int | None
    schema: dict[str, str]
    files: list[str]
    code_version: str | None = None
    upstream_versions: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ArtifactNotFoundError(LookupError):
    """A requested asset version is not in the store (or its write never finished)."""


class ArtifactStore:
    """Reads and writes versioned artifacts under one root."""

    def __init__(self, root: str | Path) -> None:
        self.root = UPath(str(root), **fsspec_options(str(root)))

    def folder(self, asset_key: Sequence[str], partition: str | None, version: str) -> UPath:
        """Folder of one version of an asset (partition keys are URL-quoted to stay one level)."""
        path = self.root.joinpath(*asset_key)
        if partition is not None:
            path = path / quote(partition, safe="")
        return path / version

    def has_version(self, asset_key: Sequence[str], partition: str | None, version: str) -> bool:
        """True when that version was written completely."""
        return (self.folder(asset_key, partition, version) / MANIFEST_NAME).exists()

    def write_frame(
        self,
        asset_key: Sequence[str],
        partition: str | None,
        frame: pl.DataFrame,
        *,
        version: str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> tuple[Manifest, bool]:
        """Store a frame as Parquet; return its manifest and whether anything new was written."""
        version = version or frame_version(frame)

        def write(folder: UPath) -> list[str]:
            with (folder / FRAME_FILE).open("wb") as handle:
                frame.write_parquet(handle, compression="zstd", statistics=True)
            return [FRAME_FILE]

        schema = {name: str(dtype) for name, dtype in frame.schema.items()}
        return self._write_version(asset_key, partition, version, write, frame.height, schema, provenance)

    def write_files(
        self,
        asset_key: Sequence[str],
        partition: str | None,
        version: str,
        files: Mapping[str, bytes],
        *,
        provenance: Mapping[str, Any] | None = None,
    ) -> tuple[Manifest, bool]:
        """Store named binary files (model weights, cards, plots) as one version."""

        def write(folder: UPath) -> list[str]:
            for name, payload in files.items():
                (folder / name).write_bytes(payload)
            return sorted(files)

        return self._write_version(asset_key, partition, version, write, None, {}, provenance)

    def read_frame(self, asset_key: Sequence[str], partition: str | None, version: str) -> pl.DataFrame:
        """Read one stored version of a table."""
        manifest = self.manifest(asset_key, partition, version)
        if FRAME_FILE not in manifest.files:
            raise ArtifactNotFoundError(f"{'/'.join(asset_key)} version {version} holds no table")
        with (self.folder(asset_key, partition, version) / FRAME_FILE).open("rb") as handle:
            return pl.read_parquet(handle)

    def read_file(self, asset_key: Sequence[str], partition: str | None, version: str, name: str) -> bytes:
        """Read one named file of a stored version."""
        manifest = self.manifest(asset_key, partition, version)
        if name not in manifest.files:
            raise ArtifactNotFoundError(f"{'/'.join(asset_key)} version {version} has no file {name!r}")
        return (self.folder(asset_key, partition, version) / name).read_bytes()

    def manifest(self, asset_key: Sequence[str], partition: str | None, version: str) -> Manifest:
        """The manifest of a completely written version."""
        path = self.folder(asset_key, partition, version) / MANIFEST_NAME
        if not path.exists():
            where = "/".join(asset_key) + (f" partition {partition!r}" if partition is not None else "")
            raise ArtifactNotFoundError(f"{where} has no stored version {version!r} under {self.root}")
        return Manifest(**json.loads(path.read_text()))

    def versions(self, asset_key: Sequence[str], partition: str | None = None) -> list[Manifest]:
        """All complete versions of an asset (partition), oldest first."""
        base = self.root.joinpath(*asset_key)
        if partition is not None:
            base = base / quote(partition, safe="")
        if not base.exists():
            return []
        found = [
            Manifest(**json.loads((child / MANIFEST_NAME).read_text()))
            for child in base.iterdir()
            if child.is_dir() and (child / MANIFEST_NAME).exists()
        ]
        return sorted(found, key=lambda manifest: manifest.created_at)

    def _write_version(
        self,
        asset_key: Sequence[str],
        partition: str | None,
        version: str,
        write,
        rows: int | None,
        schema: dict[str, str],
        provenance: Mapping[str, Any] | None,
    ) -> tuple[Manifest, bool]:
        if self.has_version(asset_key, partition, version):
            return self.manifest(asset_key, partition, version), False
        final = self.folder(asset_key, partition, version)
        local = self.root.protocol in _LOCAL_PROTOCOLS
        # Locally: write a hidden sibling and rename it into place, so readers never see half a
        # version. Object stores have no rename: there the manifest, written last, marks completion.
        staging = final.with_name(f".{version}.{uuid.uuid4().hex[:8]}.partial") if local else final
        staging.mkdir(parents=True, exist_ok=True)
        files = write(staging)
        provenance = dict(provenance or {})
        manifest = Manifest(
            asset_key="/".join(asset_key),
            partition=partition,
            version=version,
            rows=rows,
            schema=schema,
            files=files,
            code_version=provenance.pop("code_version", None),
            upstream_versions=provenance.pop("upstream_versions", {}),
            run_id=provenance.pop("run_id", None),
            created_at=datetime.now(UTC).isoformat(),
            extra=provenance,
        )
        (staging / MANIFEST_NAME).write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True))
        if local:
            if final.exists():  # a concurrent writer finished the same content first
                shutil.rmtree(staging.path, ignore_errors=True)
                return self.manifest(asset_key, partition, version), False
            staging.rename(final)
        return manifest, True


class ArtifactStoreResource(dg.ConfigurableResource):
    """The project's artifact store; `root` is a folder or an fsspec URL (s3://bucket/prefix)."""

    root: str = ".assay/store"

    def get_store(self) -> ArtifactStore:
        """A store rooted at `root`."""
        return ArtifactStore(self.root)
