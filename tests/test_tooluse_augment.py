"""COVERT stage 2 invariants (oracle byte-identical, distractors never named like an oracle tool, oracle still
scores 1), noisy-output variants, determinism, and policy evaluation scored from fake outputs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from ops.common.llm import ChatRequest, ChatResult
from ops.rubrics.criteria import Criterion
from ops.rubrics.grading import grade
from ops.tooluse.augment import (
    AUGMENT_REJECT_SCHEMA,
    AUGMENTATIONS,
    OUTPUT_KINDS,
    QUERY_KINDS,
    augment,
    augment_all,
    distractor_candidates,
    oracle_invariant_violations,
    oracle_reward,
    render_oracle_calls,
)
from ops.tooluse.backends import SimulatedBackend
from ops.tooluse.bfcl import load_single_turn, parse_ground_truth
from ops.tooluse.policy_eval import (
    JUDGE_CRITERIA,
    accuracy_table,
    judge_items,
    policy_requests,
    rl_environment_rows,
    score_policy,
)
from ops.tooluse.reward import normalize_string, tool_reward
from ops.tooluse.trajectories import AUGMENTED_TRAJECTORY_SCHEMA, bfcl_trajectories, spec_dict
from tests.fakes import Answer, FakeJudge, FakeLLM, OffSchema

JUDGE_COSTS = {"prompt_tokens": 50, "completion_tokens": 5, "latency_s": 0.01}

BFCL_DIR = Path(__file__).resolve().parent.parent / "samples" / "bfcl_v3"
LOCAL_KINDS = tuple(k for k in AUGMENTATIONS if k not in QUERY_KINDS)


@cache
def _bundle() -> tuple[pl.DataFrame, tuple[dict[str, Any], ...]]:
    """Every 4th bundled BFCL trajectory (all categories) and the pool of all bundled tool specs."""
    examples = load_single_turn(BFCL_DIR)
    functions = [f for e in examples for f in e.functions]
    trajectories, _ = bfcl_trajectories(examples, SimulatedBackend(functions))
    pool = {json.dumps(spec_dict(f), sort_keys=True): spec_dict(f) for f in functions}
    return trajectories.gather_every(4), tuple(pool.values())


def _words(name: str) -> set[str]:
    return set(name.replace(".", "_").lower().split("_"))


def fake_similar_tools(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Stands in for the LanceDB neighbours, adversarially: the tool itself, a copy renamed to normalize like
    it, a copy with the same body, then pool tools sharing a name word."""
    _, pool = _bundle()
    renamed = {**spec, "name": spec["name"].upper().replace("_", "-").replace(".", "_")}
    same_body = {**spec, "name": "totally_different_name"}
    sharing = [s for s in pool if _words(s["name"]) & _words(spec["name"])][:5]
    return [spec, renamed, same_body, *sharing]


class FakeRewriteLLM(FakeLLM):
    """Rewrites queries (`indirect_query` / `ambiguous_query`) and answers consistency checks.

    `refuse` holds base ids whose indirect rewrite the consistency check rejects; `broken` base ids get
    a non-JSON rewrite, which the resource reports as an "invalid JSON" error."""

    def __init__(self, refuse: frozenset[str] = frozenset(), broken: frozenset[str] = frozenset()) -> None:
        super().__init__(model_id="fake-rewriter", prompt_tokens=40, completion_tokens=12, latency_s=0.01)
        self.refuse, self.broken = refuse, broken

    def answer(self, request: ChatRequest) -> Answer:
        base_id, kind = request.request_id.rsplit("|", 1)
        shown = json.loads(request.messages[1]["content"])
        if kind == "consistency":
            return {"oracle_still_correct": base_id not in self.refuse}
        if base_id in self.broken:
            return "Sure! Here is"
        if kind == "ambiguous_query":
            return {"query": "Can you work that out for me? " + shown["user_request"].split(" ")[0] + " ..."}
        return {"query": "I was wondering, " + shown["user_request"]}


@cache
def _augmented() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    bases, pool = _bundle()
    result = augment_all(bases, pool, fake_similar_tools, FakeRewriteLLM(), AUGMENTATIONS, seed=7)
    return bases, result.rows, result.rejects


def test_every_augmented_oracle_is_byte_identical_and_scores_one() -> None:
    bases, rows, rejects = _augmented()
    assert rows.schema == pl.Schema(AUGMENTED_TRAJECTORY_SCHEMA)
    assert rejects.schema == pl.Schema(AUGMENT_REJECT_SCHEMA)
    assert set(rows["augmentation"]) == set(AUGMENTATIONS)
    base_oracles = dict(zip(bases["trajectory_id"], bases["oracle_json"], strict=True))
    for row in rows.iter_rows(named=True):
        assert row["oracle_json"].encode() == base_oracles[row["base_trajectory_id"]].encode()
        assert row["trajectory_id"] == f"{row['base_trajectory_id']}~{row['augmentation']}"
        assert oracle_reward(row["oracle_json"], row["tools_json"]).score == 1.0
    assert oracle_invariant_violations(bases, rows).height == 0
    assert rows["trajectory_id"].n_unique() == rows.height


def test_distractors_are_never_named_like_an_oracle_tool() -> None:
    bases, rows, _ = _augmented()
    base_tools = {r["trajectory_id"]: json.loads(r["tools_json"]) for r in bases.iter_rows(named=True)}
    distractor_rows = rows.filter(pl.col("augmentation").str.starts_with("distractor"))
    assert distractor_rows.height > 100
    for row in distractor_rows.iter_rows(named=True):
        offered = json.loads(row["tools_json"])
        original = base_tools[row["base_trajectory_id"]]
        added = [t for t in offered if t not in original]
        assert 1 <= len(added) <= 3
        assert all(t in offered for t in original)
        oracle_names = {normalize_string(c.name) for c in parse_ground_truth(json.loads(row["oracle_json"]))}
        keys = [normalize_string(t["name"]) for t in offered]
        assert len(keys) == len(set(keys)), "two offered tools normalize to the same name"
        assert not {normalize_string(t["name"]) for t in added} & oracle_names
        assert "totally_different_name" not in {t["name"] for t in added}  # same body as an oracle tool


def test_distractor_candidates_filter_by_normalized_name_and_body() -> None:
    tool = {"name": "math.factorial", "description": "n!", "parameters": {"type": "dict", "properties": {}}}
    candidates = [
        {**tool, "name": "math_factorial"},
        {**tool, "name": "Math-Factorial"},
        {**tool, "name": "fact"},
        {"name": "math.gamma", "description": "gamma", "parameters": {"type": "dict", "properties": {}}},
        {"name": "MATH.GAMMA", "description": "again", "parameters": {"type": "dict", "properties": {}}},
    ]
    kept = distractor_candidates([tool], ["math.factorial"], candidates)
    assert [t["name"] for t in kept] == ["math.gamma"]


def test_no_call_bases_get_no_distractors_and_broken_oracles_are_not_augmented() -> None:
    bases, rows, rejects = _augmented()
    irrelevant = set(bases.filter(pl.col("category") == "irrelevance")["trajectory_id"])
    assert irrelevant
    assert not rows.filter(
        pl.col("base_trajectory_id").is_in(irrelevant) & pl.col("augmentation").str.starts_with("distractor")
    ).height
    reasons = rejects.filter(pl.col("base_trajectory_id").is_in(irrelevant)).group_by("augmentation").agg("reason")
    assert {r["augmentation"]: set(r["reason"]) for r in reasons.iter_rows(named=True)} == {
        **{k: {"no_call_oracle"} for k in ("distractor_similar", "distractor_random", "ambiguous_query")},
        **{k: {"no_tool_outputs"} for k in OUTPUT_KINDS},
    }
    # an indirect rewrite of a no-call example is kept: the consistency check said no call is still right
    assert rows.filter(
        pl.col("base_trajectory_id").is_in(irrelevant) & (pl.col("augmentation") == "indirect_query")
    ).height

    broken = bases.row(0, named=True) | {"trajectory_id": "broken", "oracle_json": '[{"no_such_tool": {}}]'}
    result = augment(broken, [], fake_similar_tools, None, LOCAL_KINDS, seed=0)
    assert result.rows.height == 0
    assert set(result.rejects["reason"]) == {"base_oracle_fails"}
    assert result.rejects.height == len(LOCAL_KINDS)


def test_noisy_output_variants() -> None:
    bases, rows, _ = _augmented()
    base_outputs = {r["trajectory_id"]: json.loads(r["tool_outputs_json"]) for r in bases.iter_rows(named=True)}
    by_kind = {k: rows.filter(pl.col("augmentation") == k) for k in OUTPUT_KINDS}
    for kind, frame in by_kind.items():
        assert frame.height > 100, kind
        for row in frame.iter_rows(named=True):
            original, noisy = base_outputs[row["base_trajectory_id"]], json.loads(row["tool_outputs_json"])
            assert [o["name"] for o in noisy] == [o["name"] for o in original]
            assert (
                row["tools_json"]
                == bases.filter(pl.col("trajectory_id") == row["base_trajectory_id"])["tools_json"].item()
            )
            if kind == "noisy_extra_fields":
                for before, after in zip(original, noisy, strict=True):
                    body = before["output"] if isinstance(before["output"], dict) else {"result": before["output"]}
                    assert {k: after["output"][k] for k in body} == body
                    assert len(after["output"]) == len(body) + 4
            elif kind == "format_xml":
                assert all(ET.fromstring(o["output"].split("?>", 1)[1]).tag == "response" for o in noisy)
            elif kind == "format_text":
                assert all(o["output"].startswith(f"Result of {o['name']}:\n") for o in noisy)
            elif kind == "truncated_output":
                for before, after in zip(original, noisy, strict=True):
                    assert after["output"].endswith("...[truncated]")
                    assert json.dumps(before["output"], sort_keys=True, separators=(",", ":")).startswith(
                        after["output"].removesuffix("...[truncated]")
                    )
            expected = "detect_error" if kind == "erroneous_output" else "call"
            assert row["expected_behaviour"] == expected
            if kind == "erroneous_output":
                assert sum(a != b for a, b in zip(original, noisy, strict=True)) == 1
                assert row["final_answer"] is None


def test_query_rewrites_and_consistency_check() -> None:
    bases, pool = _bundle()
    sample = bases.filter(pl.col("category") == "simple").head(6)
    ids = sample["trajectory_id"].to_list()
    client = FakeRewriteLLM(refuse=frozenset(ids[:2]), broken=frozenset(ids[2:3]))
    result = augment_all(sample, pool, fake_similar_tools, client, QUERY_KINDS, seed=1)
    indirect = result.rows.filter(pl.col("augmentation") == "indirect_query")
    ambiguous = result.rows.filter(pl.col("augmentation") == "ambiguous_query")
    assert sorted(indirect["base_trajectory_id"]) == sorted(ids[3:])
    assert sorted(ambiguous["base_trajectory_id"]) == sorted(ids[:2] + ids[3:])
    assert set(indirect["expected_behaviour"]) == {"call"}
    assert set(ambiguous["expected_behaviour"]) == {"ask_clarification"}
    assert all(q.startswith("I was wondering, ") for q in indirect["query"])
    reasons = {(r["base_trajectory_id"], r["augmentation"]): r["reason"] for r in result.rejects.iter_rows(named=True)}
    assert reasons == {
        (ids[0], "indirect_query"): "oracle_not_preserved",
        (ids[1], "indirect_query"): "oracle_not_preserved",
        (ids[2], "indirect_query"): "llm_error",
        (ids[2], "ambiguous_query"): "llm_error",
    }
    assert set(result.rejects.filter(pl.col("reason") == "llm_error")["detail"].str.slice(0, 12)) == {"invalid JSON"}
    # one batch of rewrites per kind, one batch of consistency checks, each showing the oracle calls
    consistency = [r for r in client.requests if r.request_id.endswith("|consistency")]
    assert len(consistency) == 5  # every parsed indirect rewrite is checked
    assert json.loads(consistency[0].messages[1]["content"])["reference_calls"]
    with pytest.raises(ValueError, match="LLM client"):
        augment_all(sample, pool, fake_similar_tools, None, ("indirect_query",))


def test_augmentation_is_deterministic_for_a_seed() -> None:
    bases, pool = _bundle()
    sample = bases.head(40)
    first = augment_all(sample, pool, fake_similar_tools, None, LOCAL_KINDS, seed=3)
    again = augment_all(sample, list(reversed(pool)), fake_similar_tools, None, LOCAL_KINDS, seed=3)
    other = augment_all(sample, pool, fake_similar_tools, None, LOCAL_KINDS, seed=4)
    assert first.rows.equals(again.rows) and first.rejects.equals(again.rejects)
    assert not first.rows.equals(other.rows)
    assert first.rows["oracle_json"].to_list() == other.rows["oracle_json"].to_list()
    # one base's draws do not depend on which other bases are augmented with it
    alone = augment(sample.row(5, named=True), pool, fake_similar_tools, None, LOCAL_KINDS, seed=3)
    assert alone.rows.equals(first.rows.filter(pl.col("base_trajectory_id") == sample["trajectory_id"][5]))


def test_invariant_check_catches_tampering() -> None:
    bases, rows, _ = _augmented()
    distractor = rows.filter(pl.col("augmentation") == "distractor_random").head(1)
    row = distractor.row(0, named=True)
    oracle_names = {c.name for c in parse_ground_truth(json.loads(row["oracle_json"]))}
    without_oracle = [t for t in json.loads(row["tools_json"]) if t["name"] not in oracle_names]
    tampered = pl.concat(
        [
            distractor.with_columns(
                pl.col("oracle_json").str.replace(r"\]$", " ]"), pl.lit("a").alias("trajectory_id")
            ),
            distractor.with_columns(
                pl.lit(json.dumps(without_oracle)).alias("tools_json"), pl.lit("b").alias("trajectory_id")
            ),
            distractor.with_columns(pl.lit("nobody").alias("base_trajectory_id"), pl.lit("c").alias("trajectory_id")),
        ]
    )
    found = oracle_invariant_violations(bases, tampered)
    assert dict(zip(found["trajectory_id"], found["violation"], strict=True)) == {
        "a": "oracle_changed",
        "b": "oracle_fails_reward",
        "c": "base_missing",
    }


# ---------------------------------------------------------------- policy evaluation


def _eval_frame() -> pl.DataFrame:
    bases, rows, _ = _augmented()
    simple = bases.filter(pl.col("category") == "simple").head(2)
    irrelevant = bases.filter(pl.col("category") == "irrelevance").head(1)
    base_rows = pl.concat([simple, irrelevant]).with_columns(
        pl.col("trajectory_id").alias("base_trajectory_id"),
        pl.lit("none").alias("augmentation"),
        pl.lit("call").alias("expected_behaviour"),
    )
    first = simple["trajectory_id"][0]
    special = rows.filter(
        (pl.col("base_trajectory_id") == first)
        & pl.col("augmentation").is_in(["erroneous_output", "ambiguous_query", "format_xml", "distractor_similar"])
    ).sort("augmentation")
    return pl.concat([base_rows, special])


def _result(request_id: str, text: str | None, error: str | None = None) -> ChatResult:
    return ChatResult(request_id, text, None, error, 100, 20, 0.05, False)


def test_policy_requests_show_tools_query_and_outputs() -> None:
    frame = _eval_frame()
    requests = {r.request_id: r for r in policy_requests(frame)}
    assert set(requests) == set(frame["trajectory_id"])
    for row in frame.iter_rows(named=True):
        messages = requests[row["trajectory_id"]].messages
        assert messages[0]["role"] == "system" and messages[1] == {"role": "user", "content": row["query"]}
        for tool in json.loads(row["tools_json"]):
            assert json.dumps(tool["name"]) in messages[0]["content"]
        if row["augmentation"] == "erroneous_output":
            assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
            assert row["tool_outputs_json"] in messages[3]["content"]
        elif row["augmentation"] == "format_xml":
            assert len(messages) == 2 and "<?xml" in messages[0]["content"]
        else:
            assert len(messages) == 2 and "earlier in this session" not in messages[0]["content"]


def test_score_policy_with_fake_outputs_and_judge() -> None:
    frame = _eval_frame()
    rows = {(r["category"], r["augmentation"]): r for r in frame.iter_rows(named=True)}
    ids = frame["trajectory_id"].to_list()
    simple_ids = frame.filter((pl.col("category") == "simple") & (pl.col("augmentation") == "none"))[
        "trajectory_id"
    ].to_list()
    by_id = {r["trajectory_id"]: r for r in frame.iter_rows(named=True)}

    def oracle_text(trajectory_id: str) -> str:
        row = by_id[trajectory_id]
        return json.dumps(render_oracle_calls(json.loads(row["oracle_json"]), json.loads(row["tools_json"])))

    erroneous = rows[("simple", "erroneous_output")]["trajectory_id"]
    ambiguous = rows[("simple", "ambiguous_query")]["trajectory_id"]
    outputs = {
        simple_ids[0]: oracle_text(simple_ids[0]),
        simple_ids[1]: '[{"name": "no_such_function", "arguments": {}}]',
        rows[("irrelevance", "none")]["trajectory_id"]: "None of these functions can answer that.",
        rows[("simple", "format_xml")]["trajectory_id"]: "calc(",
        rows[("simple", "distractor_similar")]["trajectory_id"]: oracle_text(simple_ids[0]),
        erroneous: "The tool returned an error, so I could not get the result.",
        ambiguous: oracle_text(simple_ids[0]),
    }
    results = [_result(i, outputs.get(i)) for i in ids]
    items = judge_items(frame, results, model="fake-policy")
    assert [i.response_id for i in items] == [erroneous]  # the ambiguous row answered with a call: no judge
    item = items[0]
    prompt = {r.request_id: r for r in policy_requests(frame)}[erroneous].messages
    assert item.conversation == (*prompt, {"role": "assistant", "content": outputs[erroneous]})
    assert (item.criterion.criterion_id, item.criterion.text) == ("detect_error", JUDGE_CRITERIA["detect_error"])
    assert (item.criterion.weight, item.criterion.required, item.turn_index, item.model) == (
        1.0,
        True,
        1,
        "fake-policy",
    )
    judge = FakeJudge({"explanation": "It reports the tool error.", "criteria_met": True}, **JUDGE_COSTS)
    grades = grade(judge, items)
    # one engine call per judged row, whose prompt holds the criterion and the policy's reply
    assert len(judge.requests) == 1
    assert JUDGE_CRITERIA["detect_error"] in judge.requests[0].messages[1]["content"]
    assert outputs[erroneous] in judge.requests[0].messages[1]["content"]
    scored = {r["trajectory_id"]: r for r in score_policy(frame, results, grades).iter_rows(named=True)}
    assert {i: (scored[i]["outcome"], scored[i]["reward"]) for i in ids} == {
        simple_ids[0]: ("match", 1.0),
        simple_ids[1]: ("wrong_function", 0.0),
        rows[("irrelevance", "none")]["trajectory_id"]: ("correct_abstention", 1.0),
        rows[("simple", "format_xml")]["trajectory_id"]: ("unparseable", 0.0),
        rows[("simple", "distractor_similar")]["trajectory_id"]: ("match", 1.0),
        erroneous: ("behaviour_shown", 1.0),
        ambiguous: ("unexpected_call", 0.0),
    }
    assert scored[erroneous]["detail"] == "judge: It reports the tool error."
    missing = grade(FakeJudge({"explanation": "It presents a result.", "criteria_met": False}, **JUDGE_COSTS), items)
    unsure = OffSchema({"explanation": "Unsure.", "criteria_met": "maybe"})
    maybe = grade(FakeJudge(unsure, **JUDGE_COSTS), items, max_attempts=2)
    for judged, outcome in ((missing, "behaviour_missing"), (maybe, "judge_ungraded")):
        row = score_policy(frame, results, judged).filter(pl.col("trajectory_id") == erroneous).row(0, named=True)
        assert (row["outcome"], row["reward"]) == (outcome, 0.0)
    assert "after 2 attempt(s)" in row["detail"] and "'maybe'" in row["detail"]
    unjudged = score_policy(frame, results)
    assert unjudged.filter(pl.col("trajectory_id") == erroneous)["outcome"].item() == "judge_missing"
    failed = score_policy(frame, [_result(i, None, "timeout") for i in ids])
    assert set(failed["outcome"]) == {"llm_error"} and failed["reward"].sum() == 0.0

    table = accuracy_table(score_policy(frame, results, grades))
    cells = {(r["dimension"], r["group"]): (r["n"], r["accuracy"]) for r in table.iter_rows(named=True)}
    assert cells[("all", "all")] == (7, 4 / 7)
    assert cells[("category", "irrelevance")] == (1, 1.0)
    assert cells[("category", "simple")] == (6, 3 / 6)
    assert cells[("augmentation", "none")] == (3, 2 / 3)
    assert cells[("augmentation", "erroneous_output")] == (1, 1.0)
    assert cells[("augmentation", "ambiguous_query")] == (1, 0.0)


def test_rl_environment_rows_feed_the_trl_reward() -> None:
    frame = _eval_frame()
    env = rl_environment_rows(frame)
    assert len(env) == frame.height
    assert json.loads(json.dumps(env)) == env  # JSONL-ready
    for item, row in zip(env, frame.iter_rows(named=True), strict=True):
        assert item["prompt"][1]["content"] == row["query"]
        if item["expected_behaviour"] == "call":
            assert item["reward"]["name"] == "ops.tooluse.reward.tool_reward"
            calls = render_oracle_calls(item["oracle"]["ground_truth"], item["tools"])
            # the oracle's own calls (or no call, for irrelevance) earn 1; a call to a tool not offered earns 0
            assert tool_reward([json.dumps(calls), "not_a_tool(x=1)"], [item["oracle"]] * 2) == [1.0, 0.0]
        else:
            assert item["reward"]["name"] == "ops.tooluse.policy_eval.judge_reward"
            params = item["reward"]["params"]
            assert params["behaviour"] == item["expected_behaviour"]
            assert params["grader"] == "ops.rubrics.grading.grade"
            # the export carries what a trainer needs to rebuild the rubric criterion the judge grades
            criterion = Criterion(item_id=item["id"], **params["criterion"])
            assert criterion.text == JUDGE_CRITERIA[item["expected_behaviour"]] and criterion.weight == 1.0
            assert criterion.turn_index == sum(m["role"] == "assistant" for m in item["prompt"])


def test_rewrite_bases_skip_no_call_oracles_and_are_seeded():
    from ops.tooluse.sampling import rewrite_bases

    base = pl.DataFrame({"trajectory_id": [f"t{i}" for i in range(10)], "oracle_json": ["[]", '[{"f": {}}]'] * 5})
    chosen = rewrite_bases(base, 3, seed=0)
    assert chosen.height == 3 and (chosen["oracle_json"] != "[]").all()
    assert chosen["trajectory_id"].to_list() == rewrite_bases(base, 3, seed=0)["trajectory_id"].to_list()
    assert rewrite_bases(base, 0, seed=0).height == 5
