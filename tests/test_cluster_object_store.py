"""The artifact store and LanceDB on an S3-compatible endpoint (moto's server), configured only by environment."""

from __future__ import annotations

import dagster as dg
import polars as pl
import pyarrow as pa
import pytest

from assets.outputs import frame_output
from resources.artifact_store import ArtifactNotFoundError, ArtifactStore, ArtifactStoreResource
from resources.io_manager import VersionedParquetIOManager
from resources.lancedb import LanceDBResource, table_exists
from resources.object_store import fsspec_options, object_store_options
from tests.cluster_fixtures import S3Endpoint, s3_endpoint  # noqa: F401


def test_artifact_store_writes_versions_to_s3(s3_endpoint: S3Endpoint) -> None:  # noqa: F811
    store = ArtifactStoreResource(root=f"s3://{s3_endpoint.bucket}/store").get_store()
    frame = pl.DataFrame({"doc_id": ["a", "b"], "score": [0.5, 1.5]})
    manifest, written = store.write_frame(["web_docs"], "shard/1.jsonl", frame, provenance={"run_id": "r1"})
    assert written and manifest.rows == 2 and manifest.run_id == "r1"
    _, again = store.write_frame(["web_docs"], "shard/1.jsonl", frame)
    assert not again  # content-addressed: the same content is found, not rewritten
    assert store.read_frame(["web_docs"], "shard/1.jsonl", manifest.version).equals(frame)
    assert [found.version for found in store.versions(["web_docs"], "shard/1.jsonl")] == [manifest.version]
    keys = s3_endpoint.keys("store/web_docs/")
    assert any(key.endswith(f"{manifest.version}/data.parquet") for key in keys)
    assert any(key.endswith(f"{manifest.version}/manifest.json") for key in keys)
    store.write_files(["model"], None, "v1", {"weights.bin": b"\x00\x01"})
    assert store.read_file(["model"], None, "v1", "weights.bin") == b"\x00\x01"
    with pytest.raises(ArtifactNotFoundError, match="no stored version"):
        store.read_frame(["web_docs"], "shard/1.jsonl", "missing")


def test_a_version_without_manifest_is_not_read_on_s3(s3_endpoint: S3Endpoint) -> None:  # noqa: F811
    store = ArtifactStore(f"s3://{s3_endpoint.bucket}/store")
    (store.folder(["web_docs"], None, "half") / "data.parquet").write_bytes(b"interrupted")
    assert not store.has_version(["web_docs"], None, "half")
    assert store.versions(["web_docs"]) == []


def test_io_manager_round_trips_through_s3(s3_endpoint: S3Endpoint) -> None:  # noqa: F811
    @dg.asset
    def numbers() -> dg.Output:
        return frame_output(pl.DataFrame({"n": [1, 2, 3]}))

    @dg.asset
    def doubled(numbers: pl.DataFrame) -> dg.Output:
        return frame_output(numbers.with_columns(pl.col("n") * 2))

    @dg.asset(io_manager_key="mem_io_manager")
    def total(numbers: pl.LazyFrame, doubled: pl.DataFrame) -> int:
        return int(numbers.select(pl.col("n").sum()).collect().item()) + int(doubled["n"].sum())

    store = ArtifactStoreResource(root=f"s3://{s3_endpoint.bucket}/io")
    resources = {"io_manager": VersionedParquetIOManager(store=store), "mem_io_manager": dg.mem_io_manager}
    result = dg.materialize([numbers, doubled, total], resources=resources)
    assert result.success and result.output_for_node("total") == 18
    assert any(key.endswith("data.parquet") for key in s3_endpoint.keys("io/numbers/"))


def test_lancedb_tables_live_on_s3(s3_endpoint: S3Endpoint) -> None:  # noqa: F811
    resource = LanceDBResource(uri=f"s3://{s3_endpoint.bucket}/lancedb")
    schema = pa.schema([pa.field("doc_id", pa.string()), pa.field("vector", pa.list_(pa.float32(), 2))])
    table = resource.table("vectors", schema)
    table.add(pa.table({"doc_id": ["a", "b"], "vector": [[1.0, 0.0], [0.0, 1.0]]}, schema=schema))
    assert table_exists(resource.connect(), "vectors")
    assert resource.connect().open_table("vectors").count_rows() == 2
    assert any(key.startswith("lancedb/vectors.lance/") for key in s3_endpoint.keys("lancedb/"))


def test_options_come_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://objects.internal:9000")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    assert fsspec_options("s3://b/p") == {"endpoint_url": "http://objects.internal:9000"}
    assert object_store_options("s3://b/p") == {
        "aws_access_key_id": "key",
        "aws_secret_access_key": "secret",
        "region": "eu-west-1",
        "endpoint": "http://objects.internal:9000",
        "allow_http": "true",
    }
    assert fsspec_options("/local/folder") == {} and object_store_options("/local/folder") == {}
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "https://s3.example")
    assert "allow_http" not in object_store_options("s3://b/p")
