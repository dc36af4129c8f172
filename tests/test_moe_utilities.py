"""Utility formulas, FC1/FC2 combination, the report's figures and the corpus, on hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import torch

from ops.moe.corpus import EOS_ID, byte_tokens, split_stream, tokenize_corpus
from ops.moe.report import (
    CURVE_SCHEMA,
    KEEP_E_RUN,
    SCRATCH_RUN,
    compute_saved,
    gap_closure,
    tokens_to_reach,
    upcycling_report,
)
from ops.moe.selection import combine, layer_scores, parse_strategy, plan_sources, utility_scores
from training.moe.model import MoEShape, expert_keys
from training.moe.train import TrainSettings, fresh_checkpoint, load_entropy, train
from training.moe.utilities import calibration_gradients, expert_utilities


def test_utility_formulas_by_hand():
    scores = utility_scores(weight_norm=3.0, grad_norm=2.0, v_norm=4.0, eps=0.0)
    assert scores == {"weight_norm": 3.0, "saliency": 6.0, "grad_sq": 4.0, "fisher": 1.0}
    assert utility_scores(1.0, 0.5, 0.0, eps=1e-8)["fisher"] == pytest.approx(0.25 / 1e-8)


def test_fc_combination_rules_by_hand():
    fc1, fc2 = [1.0, 3.0], [2.0, 2.0]  # normalized: [0.25, 0.75] and [0.5, 0.5]
    assert combine(fc1, fc2, "fc1") == [1.0, 3.0]
    assert combine(fc1, fc2, "mean") == pytest.approx([0.375, 0.625])
    assert combine(fc1, fc2, "product") == pytest.approx([0.125, 0.375])
    assert combine(fc1, fc2, "max") == pytest.approx([0.5, 0.75])
    assert combine(fc1, fc2, "min") == pytest.approx([0.25, 0.5])
    with pytest.raises(ValueError, match="combine rule"):
        combine(fc1, fc2, "sum")


def test_expert_utilities_match_independent_norms():
    torch.set_num_threads(1)
    shape = MoEShape(layers=1, hidden=16, heads=2, kv_heads=1, intermediate=24, experts=4, top_k=2, seq_len=16)
    stream = np.random.default_rng(0).integers(0, 256, size=3000).astype(np.uint16)
    base = train(
        fresh_checkpoint(shape.config(), 0), stream, stream, TrainSettings(tokens=4 * 64, batch_size=4)
    ).checkpoint
    batches = [torch.from_numpy(stream[:64].astype(np.int64)).view(4, 16)]
    table = expert_utilities(base, batches, eps=1e-8)
    grad = calibration_gradients(base, batches)[expert_keys(0)[1]][2]  # FC2 of expert 2
    weight, v = base.weights[expert_keys(0)[1]][2], base.exp_avg_sq[expert_keys(0)[1]][2]
    row = table.filter((pl.col("expert") == 2) & (pl.col("fc") == "fc2")).row(0, named=True)
    g, w, vn = float(torch.linalg.norm(grad)), float(torch.linalg.norm(weight)), float(torch.linalg.norm(v))
    assert row["weight_norm"] == pytest.approx(w, rel=1e-5)
    assert row["saliency"] == pytest.approx(w * g, rel=1e-5)
    assert row["grad_sq"] == pytest.approx(g * g, rel=1e-5)
    assert row["fisher"] == pytest.approx(g * g / (vn + 1e-8), rel=1e-5)
    assert table.height == 1 * 4 * 2
    greedy = plan_sources(parse_strategy("greedy-saliency"), table, 2)
    best = int(np.argmax(layer_scores(table, "saliency", "fc1")[0]))
    assert greedy[0][4:].count(best) == 3


def test_gap_closure_and_compute_saved_by_hand():
    assert gap_closure(3.0, 2.5, 2.0) == pytest.approx(0.5)
    assert gap_closure(3.0, 3.0, 2.0) == 0.0 and gap_closure(3.0, 2.0, 2.0) == 1.0
    assert math.isnan(gap_closure(2.0, 1.5, 2.5))
    assert compute_saved(150, 200) == pytest.approx(0.25)
    assert math.isnan(compute_saved(None, 200))
    assert load_entropy([[0.5, 0.5], [1.0, 0.0]]) == pytest.approx(0.5)


def _curve(run: str, tokens: list[int], losses: list[float]) -> list[dict]:
    return [
        {
            "run": run,
            "step": i,
            "tokens": t,
            "train_loss": 0.0,
            "val_loss": v,
            "load_entropy": 1.0,
            "duplicate_cosine": math.nan,
        }
        for i, (t, v) in enumerate(zip(tokens, losses, strict=True))
    ]


def test_report_rows_by_hand():
    rows = _curve(KEEP_E_RUN, [100, 200], [3.0, 2.8]) + _curve(SCRATCH_RUN, [0, 100, 200], [5.0, 3.0, 2.4])
    rows += _curve("greedy-fisher", [100, 150, 200], [2.9, 2.4, 2.3])
    curves = pl.DataFrame(rows, schema=CURVE_SCHEMA)
    assert tokens_to_reach(curves.filter(pl.col("run") == "greedy-fisher"), 2.4) == 150
    report = {row["run"]: row for row in upcycling_report(curves).iter_rows(named=True)}
    assert report["greedy-fisher"]["gap_closure"] == pytest.approx((2.8 - 2.3) / (2.8 - 2.4))
    assert report["greedy-fisher"]["compute_saved"] == pytest.approx(1 - 150 / 200)
    assert report[KEEP_E_RUN]["gap_closure"] == 0.0 and report[SCRATCH_RUN]["gap_closure"] == 1.0


def test_corpus_tokens_split_and_quarantine():
    assert byte_tokens("hé") == [104, 195, 169, EOS_ID]
    docs = pl.DataFrame({"doc_id": [f"d{i}" for i in range(40)] + ["short"], "text": ["x" * 100] * 40 + ["tiny"]})
    result = tokenize_corpus(docs, min_tokens=64, validation_fraction=0.25, seed=0)
    assert result.accounted() and result.quarantined["record_id"].to_list() == ["short"]
    assert result.quarantined["reason"].to_list() == ["too_short"]
    assert set(result.kept["split"]) == {"train", "validation"}
    grown = tokenize_corpus(pl.concat([docs, pl.DataFrame({"doc_id": ["new"], "text": ["y" * 100]})]), 64, 0.25, 0)
    before = dict(zip(result.kept["doc_id"], result.kept["split"], strict=True))
    after = dict(zip(grown.kept["doc_id"], grown.kept["split"], strict=True))
    assert all(after[doc] == side for doc, side in before.items())
    assert len(split_stream(result.kept, "train")) == 101 * (result.kept["split"] == "train").sum()
