"""The tool-use local sample's size knobs (issue 19): fewer BFCL questions per category and the cheapest
multi-turn tasks first, without breaking what the chain proves."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from ops.tooluse.backends import SimulatedBackend
from ops.tooluse.bfcl import SINGLE_TURN_CATEGORIES, load_single_turn, read_jsonl
from ops.tooluse.multi_turn_tables import TASK_SCHEMA, cheapest_tasks
from ops.tooluse.specs import load_bfcl_specs
from ops.tooluse.trajectories import bfcl_trajectories

BFCL_DIR = Path(__file__).resolve().parent.parent / "samples" / "bfcl_v3"


def test_per_category_reads_the_first_questions_of_each_category() -> None:
    examples = load_single_turn(BFCL_DIR, per_category=3)
    for category in SINGLE_TURN_CATEGORIES:
        first = [row["id"] for row in read_jsonl(BFCL_DIR / f"BFCL_v3_{category}.json")[:3]]
        assert [ex.id for ex in examples if ex.category == category] == first
    assert len(load_single_turn(BFCL_DIR, ("simple",))) == len(read_jsonl(BFCL_DIR / "BFCL_v3_simple.json"))


def test_limited_specs_serve_every_limited_question_as_the_full_pool_does() -> None:
    """The specs of the first N questions per category are exactly the tools those questions offer, so
    importing them as trajectories keeps and rejects the same examples as with every bundled spec."""
    examples = load_single_turn(BFCL_DIR, per_category=6)
    limited = load_bfcl_specs(BFCL_DIR, per_category=6)
    full = load_bfcl_specs(BFCL_DIR)
    assert limited.split.accounted() and 0 < limited.specs.height < full.specs.height
    offered = {(f.name, f.description) for ex in examples for f in ex.functions}
    assert {(s["name"], s["description"]) for s in map(json.loads, limited.specs["spec_json"])} == offered

    def imported(specs: pl.DataFrame) -> tuple[list[str], list[str]]:
        kept, rejects = bfcl_trajectories(examples, SimulatedBackend([json.loads(s) for s in specs["spec_json"]]))
        return sorted(kept["trajectory_id"]), sorted(rejects["record_id"])

    assert imported(limited.specs) == imported(full.specs)
    assert len(imported(limited.specs)[0]) > 0


def _task(task_id: str, turns: int, doc_chars: int) -> dict:
    row = {name: "" for name, dtype in TASK_SCHEMA.items() if dtype == pl.String()}
    return {**row, "task_id": task_id, "n_turns": turns, "n_truth_calls": turns, "functions_json": "x" * doc_chars}


def test_cheapest_tasks_prefers_short_multi_turn_tasks() -> None:
    tasks = pl.DataFrame(
        [_task("a", 1, 10), _task("b", 3, 10), _task("c", 2, 500), _task("d", 2, 100), _task("e", 2, 100)],
        schema=TASK_SCHEMA,
    )
    assert cheapest_tasks(tasks, 3)["task_id"].to_list() == ["d", "e", "c"]
    assert cheapest_tasks(tasks, 5)["task_id"].to_list() == ["d", "e", "c", "b", "a"]
    assert cheapest_tasks(tasks, 0).equals(tasks)


def test_batched_nearest_matches_one_search_per_vector(tmp_path) -> None:
    """`nearest` (one batched LanceDB search, used by the tool index and the shop's search engine) returns
    what one search per vector returns, in input order, for one vector and for none."""
    import lancedb
    import numpy as np

    from assets.vector_index import nearest

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(120, 8)).astype("float32")
    frame = pl.DataFrame({"item": [f"i{n}" for n in range(120)], "vector": vectors.tolist()})
    table = lancedb.connect(str(tmp_path)).create_table(
        "items", frame.with_columns(pl.col("vector").cast(pl.Array(pl.Float32, 8))).to_arrow()
    )
    queries = rng.normal(size=(9, 8)).astype("float32")
    batched = nearest(table, queries, 5, ["item"])
    single = [table.search(q).limit(5).select(["item", "_distance"]).to_arrow()["item"].to_pylist() for q in queries]
    assert [hit["item"].to_list() for hit in batched] == single
    assert all(hit["_distance"].is_sorted() for hit in batched)
    assert nearest(table, queries[:1], 5, ["item"])[0]["item"].to_list() == single[0]
    assert nearest(table, queries[:0], 5, ["item"]) == []
