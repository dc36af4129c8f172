"""The filter-search benchmark at a tiny size: every figure is produced and adds up (no timing asserted); the
random-subset noise floor on hand-checked numbers."""

import json
import math

import polars as pl
import pytest

from benchmarks.filter_search import against_noise, kendall, main, noise_floor, perturbed, random_draws
from ops.webdocs.filters import FILTERS_SCHEMA


@pytest.mark.slow
def test_tiny_benchmark_writes_every_figure(tmp_path):
    out = tmp_path / "filter_search.json"
    argv = "--synthetic --docs 80 --seeds 2 --filters 2 --top-k 2 --small-tokens 256 --large-tokens 256"
    argv += f" --target-bytes 300 --random-draws 2 --dedup-base 15 --dedup-scales 1,2 --out {out}"
    assert main(argv.split()) == 0
    records = json.loads(out.read_text())
    kinds = {record["record"] for record in records}
    assert {"machine", "corpus", "pass1", "rank_agreement", "pass2", "compute", "dedup", "proxy_speed"} <= kinds
    pass1 = [r for r in records if r["record"] == "pass1"]
    assert {r["size"] for r in pass1} == {"small", "large"} and all(r["seeds"] == 2 for r in pass1)
    assert all(math.isfinite(r["noise_z"]) for r in pass1)
    floors = [r for r in records if r["record"] == "noise_floor"]
    assert {r["size"] for r in floors} == {"small", "large"}
    assert all(r["subsets"] == 3 and len(r["draw_deltas"]) == 2 for r in floors)
    assert {r["baseline"] for r in records if r["record"] == "pass2"} <= {r["baseline"] for r in floors}
    assert sum(r["chosen"] for r in records if r["record"] == "pass2") == 1
    assert len([r for r in records if r["record"] == "label_summary"]) == 14
    dedup = {r["scale"]: r for r in records if r["record"] == "dedup"}
    assert dedup["1x"]["documents"] == 15 and dedup["2x"]["documents"] == 30
    assert 0 < dedup["2x"]["duplicates_found"] <= 15


def _filters(rows: list[tuple[str, str, int, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        [
            {"name": n, "kind": k, "dimension": "", "expression": n, "kept_docs": kept, "total_docs": 10}
            | {"yield": kept / 10, "baseline": b, "status": "selected"}
            for n, k, kept, b in rows
        ],
        schema=FILTERS_SCHEMA,
    )


def test_random_draws_are_other_subsets_of_the_same_size():
    table = pl.DataFrame({"doc_id": [f"d{i:02d}" for i in range(10)]})
    filters = _filters(
        [("f", "single", 3, "random_y0.30"), ("random_y0.30", "random", 3, None), ("none", "none", 10, None)]
    )
    draws, ids = random_draws(table, filters, 3)
    assert draws["name"].to_list() == [f"random_y0.30_draw{d}" for d in (1, 2, 3)]
    assert set(draws["baseline"]) == {"random_y0.30"} and set(draws["kind"]) == {"random"}
    assert all(len(kept) == 3 and set(kept) <= set(table["doc_id"]) for kept in ids.values())
    assert len({tuple(kept) for kept in ids.values()}) > 1


def test_noise_floor_and_z_score_on_hand_checked_numbers():
    # mean bpb over targets and seeds: base 5.0, draw1 5.1, draw2 4.9 -> pool mean 5.0, sd 0.1; filter 4.8
    scores = {"random_y0.30": (5.0, 5.0), "random_y0.30_draw1": (5.0, 5.2), "random_y0.30_draw2": (4.9, 4.9)}
    scores["f"] = (4.7, 4.9)
    runs = pl.DataFrame(
        [
            {"filter": name, "seed": seed, "target": target, "bits_per_byte": value + offset}
            for name, values in scores.items()
            for seed, value in enumerate(values)
            for target, offset in (("code", 0.5), ("knowledge", -0.5))
        ]
    )
    draws = _filters(
        [("random_y0.30_draw1", "random", 3, "random_y0.30"), ("random_y0.30_draw2", "random", 3, "random_y0.30")]
    )
    floor = noise_floor(runs, draws)
    row = floor.row(0, named=True)
    assert row["baseline"] == "random_y0.30" and row["subsets"] == 3
    assert row["random_mean_bpb"] == pytest.approx(5.0) and row["random_sd_bpb"] == pytest.approx(0.1)
    assert row["draw_deltas"] == pytest.approx([0.1, -0.1])
    assert row["z_needed"] == pytest.approx(4.303 * math.sqrt(4 / 3), abs=1e-3)  # t(0.975, 2 df), 3 subsets
    pass1 = pl.DataFrame({"name": ["f"], "baseline": ["random_y0.30"], "mean_bpb": [4.8]})
    scored = against_noise(pass1, floor).row(0, named=True)
    assert scored["delta_vs_random_mean"] == pytest.approx(-0.2) and scored["noise_z"] == pytest.approx(-2.0)


def test_perturbed_copies_have_unique_ids_and_differ_slightly():
    frames = list(perturbed(["one two three four five six seven eight nine ten " * 5], copies=3, batch=2))
    rows = pl.concat(frames)
    assert rows["doc_id"].n_unique() == 3 and rows["text"].n_unique() == 3


def test_kendall_tau_of_identical_and_reversed_rankings():
    first = pl.DataFrame({"name": ["a", "b", "c"], "delta_vs_random": [-0.3, -0.1, 0.2]})
    assert kendall(first, first) == pytest.approx(1.0)
    assert kendall(first, first.with_columns(pl.col("delta_vs_random") * -1)) == pytest.approx(-1.0)
