"""The versioned artifact store: content versions, no overwrite, any version readable."""

import polars as pl
import pytest

from ops.common.versioning import frame_version
from resources.artifact_store import MANIFEST_NAME, ArtifactNotFoundError, ArtifactStore

KEY = ("webdocs", "web_docs")


def files_under(root) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_equal_content_writes_nothing_new(tmp_path):
    store = ArtifactStore(tmp_path)
    frame = pl.DataFrame({"doc_id": ["a", "b"], "text": ["x", "y"]})
    manifest, written = store.write_frame(KEY, "shard.jsonl", frame, provenance={"run_id": "r1"})
    before = files_under(tmp_path)
    again, written_again = store.write_frame(KEY, "shard.jsonl", frame.clone(), provenance={"run_id": "r2"})
    assert written and not written_again
    assert again.version == manifest.version == frame_version(frame)
    assert again.run_id == "r1"  # the first write is kept, untouched
    assert files_under(tmp_path) == before


def test_new_version_keeps_old_and_both_read_back(tmp_path):
    store = ArtifactStore(tmp_path)
    old = pl.DataFrame({"doc_id": ["a"], "n": [1]})
    new = pl.DataFrame({"doc_id": ["a", "b"], "n": [1, 2]})
    old_manifest, _ = store.write_frame(
        KEY, None, old, provenance={"code_version": "1", "upstream_versions": {"raw": "v0"}}
    )
    new_manifest, _ = store.write_frame(KEY, None, new)
    assert old_manifest.version != new_manifest.version
    assert store.read_frame(KEY, None, old_manifest.version).equals(old)
    assert store.read_frame(KEY, None, new_manifest.version).equals(new)
    assert [m.version for m in store.versions(KEY)] == [old_manifest.version, new_manifest.version]
    stored = store.manifest(KEY, None, old_manifest.version)
    assert stored.rows == 1 and stored.code_version == "1" and stored.upstream_versions == {"raw": "v0"}
    assert stored.schema == {"doc_id": "String", "n": "Int64"}


def test_partition_keys_are_one_folder_level(tmp_path):
    store = ArtifactStore(tmp_path)
    manifest, _ = store.write_frame(KEY, "a/b c.jsonl", pl.DataFrame({"x": [1]}))
    folder = store.folder(KEY, "a/b c.jsonl", manifest.version)
    assert folder.parent.parent == tmp_path / "webdocs" / "web_docs"
    assert (folder / MANIFEST_NAME).exists()


def test_interrupted_write_is_invisible(tmp_path):
    store = ArtifactStore(tmp_path)
    folder = store.folder(KEY, None, "deadbeef")
    folder.mkdir(parents=True)
    (folder / "data.parquet").write_bytes(b"half a file")
    assert not store.has_version(KEY, None, "deadbeef")
    assert store.versions(KEY) == []
    with pytest.raises(ArtifactNotFoundError, match="deadbeef"):
        store.read_frame(KEY, None, "deadbeef")


def test_binary_files_round_trip(tmp_path):
    store = ArtifactStore(tmp_path)
    manifest, written = store.write_files(
        ("webdocs", "mlp_filter"), None, "v1", {"model.safetensors": b"\x00\x01", "card.md": b"# card"}
    )
    assert written and manifest.files == ["card.md", "model.safetensors"]
    assert store.read_file(("webdocs", "mlp_filter"), None, "v1", "card.md") == b"# card"
