"""The upcycling operator: function preservation, shapes, Adam-state copy, the duplicate caps, bad input."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from ops.moe.selection import (
    check_expansion,
    duplicate_counts,
    expert_sources,
    greedy_duplicates,
    softmax_duplicates,
    uniform_duplicates,
)
from training.moe.model import ArchitectureError, MoEShape, checkpoint_files, expert_keys, load_checkpoint
from training.moe.train import TrainSettings, duplicate_cosine, fresh_checkpoint, train
from training.moe.upcycle import copy_invariants, preservation, upcycle, without_router_noise

SEQ = 16


@pytest.fixture(scope="module")
def trained():
    """A tiny 4-expert top-2 MoE after a few Adam steps (so it has moments to copy)."""
    torch.set_num_threads(1)
    shape = MoEShape(layers=2, hidden=16, heads=2, kv_heads=1, intermediate=24, experts=4, top_k=2, seq_len=SEQ)
    stream = np.random.default_rng(0).integers(0, 256, size=4000).astype(np.uint16)
    settings = TrainSettings(tokens=6 * 4 * SEQ, batch_size=4, lr=1e-2, eval_every=100, eval_windows=2)
    return train(fresh_checkpoint(shape.config(), 0), stream, stream, settings).checkpoint


def _batch(seed: int = 1) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, size=(3, SEQ)).astype(np.int64))


def _with_top_k(checkpoint, top_k):
    config = copy.deepcopy(checkpoint.config)
    config.num_experts_per_tok = top_k
    return type(checkpoint)(config, checkpoint.weights, checkpoint.exp_avg, checkpoint.exp_avg_sq, checkpoint.step, {})


def test_top1_upcycling_is_function_preserving(trained):
    base = _with_top_k(trained, 1)
    sources = [expert_sources(greedy_duplicates([0.4, 0.1, 0.3, 0.2], 2))] * 2
    upcycled = upcycle(base, sources, router_noise=0.0, seed=0)
    with torch.no_grad():
        before = base.model()(input_ids=_batch()).logits
        after = upcycled.model()(input_ids=_batch()).logits
    assert torch.allclose(before, after, atol=1e-5), float((before - after).abs().max())


def test_router_noise_moves_only_replica_rows_and_is_measured(trained):
    sources = [expert_sources(uniform_duplicates(4, 2))] * 2
    upcycled = upcycle(trained, sources, router_noise=0.01, seed=3)
    router = expert_keys(0)[2]
    assert torch.equal(upcycled.weights[router][:4], trained.weights[router])
    replica_shift = (upcycled.weights[router][4:] - trained.weights[router]).abs()
    assert 0 < float(replica_shift.max()) < 0.1 * float(trained.weights[router].abs().max())
    assert torch.equal(without_router_noise(upcycled, sources).weights[router][4:], trained.weights[router])
    measured = preservation(trained, upcycled, sources, _batch())
    assert measured.top1_exact_max_abs_diff <= 1e-5
    assert measured.topk_max_abs_diff > 0  # top-2 may now pick two copies of one expert: not exact


def test_uniform_copy_under_top2_equals_the_source_under_top1(trained):
    """With every expert duplicated and no noise, top-2 picks both copies of the best expert: the
    upcycled top-2 model computes exactly the source's top-1 function (why top-K > 1 is not preserved)."""
    sources = [expert_sources(uniform_duplicates(4, 2))] * 2
    upcycled = upcycle(trained, sources, router_noise=0.0, seed=0)
    with torch.no_grad():
        top1 = _with_top_k(trained, 1).model()(input_ids=_batch()).logits
        top2 = upcycled.model()(input_ids=_batch()).logits
    assert torch.allclose(top1, top2, atol=1e-5)


def test_shapes_and_optimizer_state_copy(trained):
    sources = [[0, 1, 2, 3, 2, 2, 2, 0], [0, 1, 2, 3, 1, 3, 3, 3]]
    upcycled = upcycle(trained, sources, router_noise=0.01, seed=0)
    assert all(copy_invariants(trained, upcycled, sources).values()), copy_invariants(trained, upcycled, sources)
    fc1, fc2, router = expert_keys(1)
    assert upcycled.weights[fc1].shape == (8, 48, 16) and upcycled.weights[fc2].shape == (8, 16, 24)
    assert upcycled.weights[router].shape == (8, 16)
    assert torch.equal(upcycled.exp_avg_sq[fc2][5], trained.exp_avg_sq[fc2][3])
    assert torch.equal(upcycled.exp_avg[router][4], trained.exp_avg[router][1])
    assert upcycled.step == trained.step > 0
    assert duplicate_cosine(upcycled.model(), sources) == pytest.approx(1.0)  # symmetric before any CPT
    reloaded = load_checkpoint(checkpoint_files(upcycled))
    assert reloaded.config.num_local_experts == 8 and reloaded.config.num_experts_per_tok == 2
    assert torch.equal(reloaded.exp_avg_sq[fc1], upcycled.exp_avg_sq[fc1])


def test_caps_and_selection_counts():
    assert greedy_duplicates([0.1, 0.5, 0.3, 0.2], 2) == [0, 3, 1, 0]
    assert greedy_duplicates([0.1, 0.5, 0.3, 0.2], 3) == [0, 3, 3, 2]
    assert uniform_duplicates(4, 3) == [2, 2, 2, 2]
    drawn = softmax_duplicates([1.0, 0.0, 0.0, 0.0], 4, temperature=0.01, seed=0)
    assert drawn[0] == 3 and sum(drawn) == 12 and max(drawn) <= 3
    assert duplicate_counts([expert_sources([0, 3, 1, 0])]) == [[0, 3, 1, 0]]
    with pytest.raises(ValueError, match=r"m=5 .* max_duplicates=3"):
        greedy_duplicates([1.0, 2.0], 5)


@pytest.mark.parametrize("factor", [1, 0, 2.5, 2.0, True, "2"])
def test_expansion_factor_must_be_an_integer_of_at_least_two(factor):
    with pytest.raises(ValueError, match=f"m={factor!r}"):
        check_expansion(4, 2, factor)


def test_top_k_above_experts_is_refused():
    with pytest.raises(ValueError, match="top-K=5 exceeds the number of experts E=4"):
        check_expansion(4, 5, 2)
    with pytest.raises(ArchitectureError, match="top_k=3 exceeds the number of experts E=2"):
        MoEShape(experts=2, top_k=3)


def test_checkpoint_of_another_architecture_is_refused(trained):
    files = checkpoint_files(trained)
    config = json.loads(files["config.json"])
    config.update(model_type="llama", architectures=["LlamaForCausalLM"])
    files["config.json"] = json.dumps(config).encode()
    with pytest.raises(ArchitectureError, match=r"model_type=.llama.*LlamaForCausalLM"):
        load_checkpoint(files)
    with pytest.raises(ArchitectureError, match="lacks"):
        load_checkpoint({"config.json": files["config.json"]})
