"""The filter-search benchmark at a tiny size: every figure is produced and adds up (no timing asserted)."""

import json

import polars as pl
import pytest

from benchmarks.filter_search import kendall, main, perturbed

pytestmark = pytest.mark.slow


def test_tiny_benchmark_writes_every_figure(tmp_path):
    out = tmp_path / "filter_search.json"
    argv = "--synthetic --docs 80 --seeds 2 --filters 2 --top-k 2 --small-tokens 256 --large-tokens 256"
    argv += f" --target-bytes 300 --dedup-base 15 --dedup-scales 1,2 --out {out}"
    assert main(argv.split()) == 0
    records = json.loads(out.read_text())
    kinds = {record["record"] for record in records}
    assert {"machine", "corpus", "pass1", "rank_agreement", "pass2", "compute", "dedup", "proxy_speed"} <= kinds
    pass1 = [r for r in records if r["record"] == "pass1"]
    assert {r["size"] for r in pass1} == {"small", "large"} and all(r["seeds"] == 2 for r in pass1)
    assert sum(r["chosen"] for r in records if r["record"] == "pass2") == 1
    dedup = {r["scale"]: r for r in records if r["record"] == "dedup"}
    assert dedup["1x"]["documents"] == 15 and dedup["2x"]["documents"] == 30
    assert 0 < dedup["2x"]["duplicates_found"] <= 15


def test_perturbed_copies_have_unique_ids_and_differ_slightly():
    frames = list(perturbed(["one two three four five six seven eight nine ten " * 5], copies=3, batch=2))
    rows = pl.concat(frames)
    assert rows["doc_id"].n_unique() == 3 and rows["text"].n_unique() == 3


def test_kendall_tau_of_identical_and_reversed_rankings():
    first = pl.DataFrame({"name": ["a", "b", "c"], "delta_vs_random": [-0.3, -0.1, 0.2]})
    assert kendall(first, first) == pytest.approx(1.0)
    assert kendall(first, first.with_columns(pl.col("delta_vs_random") * -1)) == pytest.approx(-1.0)
