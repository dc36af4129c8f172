"""Curation logic without Dagster: dedup determinism, filters and compounds, bits per byte, resume, grammar."""

import itertools
import json
import math
import random

import numpy as np
import polars as pl
import pytest
import torch

from ops.webdocs.annotation import AnnotationError, parse_condensed
from ops.webdocs.dedup import DedupConfig, dedup_split, find_near_duplicates
from ops.webdocs.filter_search import pass2_table, proxy_compute, score_filters
from ops.webdocs.filters import (
    EMPTY,
    SELECTED,
    CandidateConfig,
    FilterError,
    FilterSpec,
    compound_filters,
    filter_candidates,
    kept_ids,
    label_table,
    random_name,
    trained,
)
from ops.webdocs.label_grammar import LabelGrammar
from ops.webdocs.proxy_data import contaminated_documents, target_sets
from ops.webdocs.taxonomy import vocabularies
from tests.conftest import REPO_ROOT, sample_records
from training.webdocs.mlp_filter import predictions_frame
from training.webdocs.proxy_lm import (
    CheckpointIO,
    ProxyConfig,
    bits_per_byte,
    encode_documents,
    encode_text,
    load_proxy,
    model_files,
    train_proxy,
    train_seeds,
)

torch.set_num_threads(1)


def corpus_with_duplicates() -> list[dict]:
    """40 real documents plus a lightly edited copy of one and an exact copy of another, in a later shard."""
    docs = [
        {"doc_id": f"c4-{i:03d}", "text": r["text"]}
        for i, r in enumerate(sample_records("c4_en_sample_1000.jsonl", 40))
    ]
    docs.append({"doc_id": "b-edited", "text": docs[3]["text"].replace(" the ", " teh ", 1) + " Thanks for reading."})
    docs.append({"doc_id": "a-copy", "text": docs[7]["text"]})
    return docs


def test_dedup_keeps_smallest_id_and_names_what_was_duplicated():
    result = dedup_split(pl.DataFrame(corpus_with_duplicates()).lazy(), DedupConfig())
    assert result.accounted() and result.rows_in == 42
    pairs = dict(zip(result.quarantined["record_id"], result.quarantined["duplicate_of"], strict=True))
    # "a-copy" < "c4-007" and "b-edited" < "c4-003": the smallest id of each cluster is kept
    assert pairs == {"c4-007": "a-copy", "c4-003": "b-edited"}
    assert set(result.quarantined["reason"]) == {"near_duplicate"}
    assert "a-copy" in result.kept["doc_id"].to_list()


def test_dedup_is_the_same_whatever_order_the_shards_arrive_in():
    docs = corpus_with_duplicates()
    shards = [docs[:15], docs[15:30], docs[30:]]
    outcomes = set()
    for order in itertools.permutations(shards):
        frames = [pl.DataFrame(shard) for shard in order]
        random.Random(len(outcomes)).shuffle(frames[0].rows())  # row order inside a shard does not matter either
        duplicates, rows_in = find_near_duplicates(frames, DedupConfig())
        outcomes.add((json.dumps(duplicates, sort_keys=True), rows_in))
    assert len(outcomes) == 1


def test_dedup_rejects_a_repeated_id():
    docs = [{"doc_id": "x", "text": "one text"}, {"doc_id": "x", "text": "another text"}]
    with pytest.raises(ValueError, match="'x' appears twice"):
        find_near_duplicates([pl.DataFrame(docs)], DedupConfig())


def fake_labels(n: int, seed: int = 0) -> pl.DataFrame:
    """`web_doc_labels`-shaped rows with seeded random probabilities (a stand-in for the MLP filter)."""
    rng = np.random.default_rng(seed)
    vocab = vocabularies()
    probs = {d: rng.dirichlet(np.ones(len(codes)), size=n).astype(np.float32) for d, codes in vocab.items()}
    return predictions_frame([f"d{i:03d}" for i in range(n)], probs, vocab)


def test_label_table_flattens_primaries_and_probabilities():
    table = label_table(fake_labels(20))
    assert table.height == 20
    assert {"timeliness__primary", "timeliness__secondary", "timeliness__p1", "reasoning_depth__p5"} <= set(
        table.columns
    )
    assert "timeliness__p-1" not in table.columns


def test_filters_yields_and_clear_errors():
    table = label_table(fake_labels(100))
    depth = FilterSpec("deep", "reasoning_depth__primary IN ('3', '4', '5')")
    expected = table.filter(pl.col("reasoning_depth__primary").is_in(["3", "4", "5"]))["doc_id"].sort().to_list()
    assert kept_ids(table, depth) == expected
    with pytest.raises(FilterError, match=r"'broken'.*does not parse"):
        kept_ids(table, FilterSpec("broken", "reasoning_depth__primary IN ('3'"))
    with pytest.raises(FilterError, match=r"'typo'.*unknown column"):
        kept_ids(table, FilterSpec("typo", "reasoning_dept__primary = '3'"))
    with pytest.raises(FilterError, match="'two'"):
        kept_ids(table, FilterSpec("two", "TRUE; DROP TABLE labels"))


def test_candidates_choose_in_range_filters_record_empty_ones_and_add_baselines():
    table = label_table(fake_labels(200))
    config = CandidateConfig(max_filters=3)
    frame = filter_candidates(table, config, {"nothing": "timeliness__p1 > 2.0"})
    chosen = frame.filter((pl.col("status") == SELECTED) & (pl.col("kind") == "single"))
    assert chosen.height == 3 and chosen["dimension"].n_unique() == 3
    assert ((chosen["yield"] >= config.min_yield) & (chosen["yield"] <= config.max_yield)).all()
    empty = frame.filter(pl.col("name") == "nothing").row(0, named=True)
    assert empty["status"] == EMPTY and empty["kept_docs"] == 0 and "nothing" not in trained(frame)
    names = set(trained(frame))
    assert "none" in names and set(chosen["baseline"]) <= names
    with pytest.raises(FilterError, match="'bad'"):
        filter_candidates(table, config, {"bad": "no_such_column > 1"})


def test_compounds_are_and_or_of_top_filters_with_consistent_yields():
    table = label_table(fake_labels(200))
    candidates = filter_candidates(table, CandidateConfig(max_filters=3), {})
    singles = candidates.filter((pl.col("kind") == "single") & (pl.col("status") == SELECTED))
    pass1 = singles.with_columns(rank=pl.int_range(1, singles.height + 1)).drop("kept_docs", "total_docs", "status")
    compounds = compound_filters(table, pass1, top_k=3, step=0.1, known_baselines=trained(candidates))
    filters = compounds.filter(pl.col("kind") == "compound")
    assert filters.height == 6  # 3 pairs x (AND, OR)
    rows = {row["name"]: row for row in filters.iter_rows(named=True)}
    for first, second in itertools.combinations(singles.iter_rows(named=True), 2):
        a, b = first["kept_docs"], second["kept_docs"]
        both = rows[f"{first['name']}__and__{second['name']}"]
        either = rows[f"{first['name']}__or__{second['name']}"]
        assert both["kept_docs"] <= min(a, b) and max(a, b) <= either["kept_docs"] <= a + b
        assert both["kept_docs"] + either["kept_docs"] == a + b  # |A and B| + |A or B| = |A| + |B|
        assert either["baseline"] == random_name(either["yield"], 0.1)
    assert "none" not in compounds["name"].to_list()  # pass 1's baselines are reused


def test_scores_pair_seeds_against_the_random_baseline():
    filters = pl.DataFrame(
        {
            "name": ["f", "random_y0.30", "none"],
            "kind": ["single", "random", "none"],
            "dimension": ["d", "", ""],
            "expression": ["x = 1", "random", "TRUE"],
            "kept_docs": [30, 30, 100],
            "total_docs": [100] * 3,
            "yield": [0.3, 0.3, 1.0],
            "baseline": ["random_y0.30", None, None],
            "status": ["selected"] * 3,
        }
    )
    runs = pl.DataFrame(
        {
            "filter": ["f", "f", "random_y0.30", "random_y0.30", "none", "none"],
            "seed": [0, 1, 0, 1, 0, 1],
            "target": ["code"] * 6,
            "bits_per_byte": [5.0, 5.2, 5.5, 5.9, 5.1, 5.3],
        }
    )
    table = score_filters(runs, filters)
    row = table.row(0, named=True)
    assert row["name"] == "f" and row["rank"] == 1
    assert row["delta_vs_random"] == pytest.approx(-0.6)  # mean of (5.0-5.5, 5.2-5.9)
    assert row["delta_spread"] == pytest.approx(np.std([-0.5, -0.7], ddof=1))
    assert row["delta_vs_none"] == pytest.approx(-0.1)
    final = pass2_table(table, table.clear())
    assert final["chosen"].to_list() == [True]
    no_filter = score_filters(runs, filters, kinds=("none",))
    fallback = pass2_table(table.clear(), table.clear(), no_filter)  # no single filter had a usable yield
    assert fallback["name"].to_list() == ["none"] and fallback["chosen"].to_list() == [True]
    assert proxy_compute(7, 4, 4, 2, 1000) == {
        "two_pass_runs": 11,
        "two_pass_tokens": 22_000,
        "full_grid_runs": 16,
        "full_grid_tokens": 32_000,
    }


class FakeUniformLM(torch.nn.Module):
    """Equal logits for every token: exactly log2(vocab) bits per predicted byte."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids):
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, self.vocab)})()


class FakeHalfSureLM(torch.nn.Module):
    """Puts probability 1/2 on the byte after the current one (b -> b + 1) and spreads the rest evenly."""

    def forward(self, input_ids):
        vocab = 257
        logits = torch.full((*input_ids.shape, vocab), math.log(0.5 / (vocab - 1)))
        logits.scatter_(-1, (input_ids + 1).clamp(max=vocab - 1).unsqueeze(-1), math.log(0.5))
        return type("Out", (), {"logits": logits})()


def test_bits_per_byte_on_hand_checked_cases():
    ids = encode_text("abcdefghij" * 5)  # 50 bytes, each followed by its successor except j -> a
    assert bits_per_byte(FakeUniformLM(257), ids, seq_len=16) == pytest.approx(math.log2(257))
    # bytes 2..50 are predicted once each (windows of 17 overlap by one byte): 45 successors at 1 bit and
    # 4 "j -> a" at -log2(0.5 / 256) = 9 bits
    assert bits_per_byte(FakeHalfSureLM(), ids, seq_len=16) == pytest.approx((45 * 1 + 4 * 9) / 49)


def test_training_resumes_to_the_same_weights_after_a_crash():
    stream = encode_documents([r["text"] for r in sample_records("c4_en_sample_1000.jsonl", 10)])
    targets = {"code": encode_text((REPO_ROOT / "samples/proxy_targets/code.txt").read_text()[:600])}
    config = ProxyConfig(
        hidden=32, layers=1, heads=2, seq_len=32, batch_size=4, token_budget=32 * 4 * 6, checkpoint_every=2
    )
    whole = train_proxy(stream, targets, config)
    saved: dict[str, bytes] = {}

    def crash_after_first(payload: bytes) -> None:
        saved["checkpoint"] = payload
        raise KeyboardInterrupt  # stands in for kill -9 right after a checkpoint

    with pytest.raises(KeyboardInterrupt):
        train_proxy(stream, targets, config, save_checkpoint=crash_after_first)
    resumed = train_proxy(stream, targets, config, load_checkpoint=lambda: saved["checkpoint"])
    assert resumed.resumed_from_step == 2
    for (name, a), b in zip(whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert resumed.bits_per_byte == whole.bits_per_byte
    reloaded = load_proxy(model_files(resumed))
    assert bits_per_byte(reloaded, targets["code"], 32) == pytest.approx(resumed.bits_per_byte["code"], abs=1e-5)


def test_seeds_differ_and_target_sets_are_not_in_the_training_text():
    texts = [r["text"] for r in sample_records("c4_en_sample_1000.jsonl", 10)]
    targets = target_sets(REPO_ROOT / "samples/proxy_targets", max_bytes=500)
    assert set(targets) == {"reasoning", "code", "knowledge"} and all(
        0 < len(t.encode()) <= 500 for t in targets.values()
    )
    config = ProxyConfig(hidden=32, layers=1, heads=2, seq_len=32, batch_size=2, token_budget=128)
    results = train_seeds(texts, targets, config, [0, 1], lambda seed: CheckpointIO(lambda: None, lambda payload: None))
    assert results[0].bits_per_byte != results[1].bits_per_byte
    assert contaminated_documents(texts, targets) == 0
    assert contaminated_documents(["prefix " + targets["reasoning"][:400]], targets) == 1


def test_every_complete_grammar_line_parses():
    grammar = LabelGrammar()
    rng = random.Random(0)
    for _ in range(300):  # random walks through the automaton, stopping when complete
        state, line = grammar.start, ""
        while True:
            options = [c for c in sorted(grammar.alphabet) if grammar.advance(state, c) is not None]
            if grammar.is_complete(state) and (not options or rng.random() < 0.3):
                break
            assert options, f"dead end after {line!r}"
            char = rng.choice(options)
            state, line = grammar.advance(state, char), line + char
        assert len(line) <= grammar.max_chars
        parse_condensed(line)
    assert grammar.advance(grammar.start, "fdc:5|bcp:9") is None
    with pytest.raises(AnnotationError):
        parse_condensed("fdc:5|bcp:3")
