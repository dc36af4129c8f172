"""ops.common: one definition of "the same text" and "the same table"."""

import polars as pl

from ops.common.text import dedup_key, normalize_text
from ops.common.versioning import combine_versions, frame_version


def test_normalize_removes_controls_and_folds_whitespace():
    raw = "Cafe\u0301\x00 menu\t\t  today\r\n\r\n\r\n\r\nnext\x07 line  \u200b"
    assert normalize_text(raw) == "Café menu today\n\nnext line"


def test_normalize_is_idempotent():
    text = "A  b\n\n\n\nc\u00a0d"
    assert normalize_text(normalize_text(text)) == normalize_text(text)


def test_dedup_key_ignores_case_and_spacing_only():
    assert dedup_key("Hello   World\n\nagain") == dedup_key("hello world again")
    assert dedup_key("hello world again") != dedup_key("hello world, again")


def test_frame_version_depends_on_content_not_chunking():
    frame = pl.DataFrame({"id": [1, 2, 3], "text": ["a", "b" * 40, None], "v": [[0.1], [0.2, 0.3], None]})
    rechunked = pl.concat([frame.head(1), frame.tail(2)], rechunk=False)
    assert rechunked.n_chunks() == 2
    assert frame_version(frame) == frame_version(rechunked)
    assert frame_version(frame) != frame_version(frame.with_columns(pl.col("id") + 1))
    assert frame_version(frame) != frame_version(frame.reverse())
    assert frame_version(frame) != frame_version(frame.rename({"id": "doc_id"}))
    assert frame_version(frame) != frame_version(frame.with_columns(pl.col("id").cast(pl.Int32)))


def test_combine_versions_is_ordered():
    assert combine_versions(["a", "b"]) != combine_versions(["b", "a"])
    assert combine_versions(["a", "b"]) == combine_versions(["a", "b"])
