"""Model files of the moe assets in the artifact store, per partition, and their resumable work folders."""

from __future__ import annotations

import io
import os
from pathlib import Path

import dagster as dg
import polars as pl

from ops.common.versioning import combine_versions

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


def work_dir(context: dg.AssetExecutionContext, *inputs: str) -> Path:
    """Folder of a training run's in-progress checkpoints, keyed by asset, partition and inputs, under
    `$ASSAY_HOME/work`; a rerun with equal inputs resumes from what a killed run left there."""
    partition = context.partition_key if context.has_partition_key else "all"
    home = Path(os.environ.get("ASSAY_HOME", ".assay"))
    return home / "work" / context.asset_key.to_python_identifier() / partition / combine_versions(inputs)
