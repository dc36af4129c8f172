"""Hooks, steering and the SAE on a tiny random Llama (real transformers classes, seconds on CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from ops.concepts.decomposition import ElasticNetSpec, remove_concepts
from training.concepts.activations import (
    NON_FINITE,
    captured,
    load_model,
    pooled_activations,
    stimulus_activations,
    token_activations,
    token_snippets,
)
from training.concepts.sae import SaeSettings, ablate_latents, atom_drift, load_sae, new_sae, sae_files, train_both
from training.concepts.steering import generate, steered, steered_answers, utility
from training.webdocs.generative_student import byte_tokenizer, tiny_base


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    folder = tiny_base(tmp_path_factory.mktemp("tiny") / "base", byte_tokenizer(), layers=2, hidden=32)
    return load_model(str(folder))


def test_pooled_activations_match_the_output_hidden_states_and_record_truncation(tiny) -> None:
    model, tokenizer, model_id = tiny
    texts = ["a dog", "a much longer sentence about a cat"]
    pooled = pooled_activations(model, tokenizer, texts, [0, 1], max_tokens=12)
    assert pooled.n_tokens == [5, 12] and pooled.truncated == [False, True]
    ids = tokenizer("a dog", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        reference = model(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    # hidden_states[i + 1] is the output of decoder layer i (the last one after the final norm in HF).
    assert np.allclose(pooled.by_layer[0][0], reference[1][0].mean(dim=0).numpy(), atol=1e-5)
    assert model_id.endswith("base")


def test_nan_activations_are_quarantined_and_rows_accounted(tiny) -> None:
    model, tokenizer, model_id = tiny
    stimuli = pl.DataFrame(
        {"stimulus_id": ["s1", "s2"], "synset_id": ["n1", "n2"], "split": ["train", "heldout"], "text": ["ok", "bad"]}
    )
    clean = stimulus_activations(model, tokenizer, stimuli, [1], model_id, max_tokens=8)
    assert clean.kept.height == 2 and clean.quarantined.is_empty()

    def poison(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden[1] = float("nan")  # the second text of the batch ("bad", longer than "ok")

    handle = model.model.layers[1].register_forward_hook(poison)
    try:
        result = stimulus_activations(model, tokenizer, stimuli, [1], model_id, max_tokens=8)
    finally:
        handle.remove()
    assert result.accounted() and result.kept["stimulus_id"].to_list() == ["s1"]
    assert result.quarantined["reason"].to_list() == [NON_FINITE] and result.quarantined["record_id"][0] == "s2@1"


def test_capture_refuses_a_missing_layer(tiny) -> None:
    model, _, _ = tiny
    with pytest.raises(ValueError, match=r"0\.\.1"), captured(model, [5]):
        pass


def test_steering_hook_changes_hidden_states_and_identity_changes_nothing(tiny) -> None:
    model, tokenizer, _ = tiny
    ids = torch.tensor([tokenizer("hello there", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        base = model(input_ids=ids).logits
        with steered(model, 0, lambda hidden: hidden):
            same = model(input_ids=ids).logits
        with steered(model, 0, lambda hidden: hidden * 0.0):
            zeroed = model(input_ids=ids).logits
    assert torch.allclose(base, same, atol=1e-5) and not torch.allclose(base, zeroed, atol=1e-3)
    assert utility(model, tokenizer, ["hello there friend"], 0, None).kl == pytest.approx(0.0)
    assert utility(model, tokenizer, ["hello there friend"], 0, lambda h: h * 0.0).kl > 0


def test_elastic_net_removal_runs_at_generation_time(tiny) -> None:
    model, tokenizer, _ = tiny
    rng = np.random.default_rng(0)
    dictionary = rng.normal(size=(4, 32))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    calls = []

    def removal(hidden: np.ndarray) -> np.ndarray:
        calls.append(hidden.shape)
        return remove_concepts(hidden, dictionary, [0, 1], ElasticNetSpec(), 1.0)

    answers = generate(model, tokenizer, ["hi", "tell me"], 3, 1, removal)
    assert len(answers) == 2 and len(calls) == 3  # the prompt once, then one call per new token
    prompts = pl.DataFrame({"prompt_id": ["p"], "kind": ["benign"], "prompt": ["hi"]})
    table = steered_answers(model, tokenizer, prompts, {"none": None, "elastic_net": removal}, 1, 2)
    assert table["answer_id"].to_list() == ["none:p", "elastic_net:p"]


def test_sae_dictionary_init_and_training(tiny) -> None:
    model, tokenizer, _ = tiny
    texts = ["the cat sat on the mat", "dogs bark at night", "a quick brown fox", "rain in spain"] * 4
    activations, where = token_activations(model, tokenizer, texts, 1, max_tokens=16)
    assert activations.shape == (len(where), 32)
    snippets = token_snippets(tokenizer, texts, where[:3], before=2)
    assert snippets[0] == "[t]" and snippets[2] == "th[e]"
    rng = np.random.default_rng(0)
    dictionary = rng.normal(size=(6, 32)).astype(np.float32)
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    settings = SaeSettings(k=4, free_latents=10, steps=6, batch_size=32, eval_every=3)
    sae = new_sae(32, settings, "dictionary", dictionary, activations.mean(axis=0))
    assert torch.allclose(sae.W_dec[:6], torch.from_numpy(dictionary), atol=1e-6)
    assert torch.allclose(sae.encoder.weight, sae.W_dec) and sae.num_latents == 16
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(16), atol=1e-5)
    heldout = np.array([index >= 12 for index, _ in where])
    trained = train_both(activations, heldout, dictionary, settings)
    assert [p["step"] for p in trained["dictionary"].curve] == [0, 3, 6]
    assert all(result.curve[0]["fvu"] <= 1.5 for result in trained.values())  # calibrated: no overshoot
    for result in trained.values():
        assert all(np.isfinite(p["fvu"]) and p["l0"] <= 4 for p in result.curve)
    drift = atom_drift(trained["dictionary"], dictionary)
    assert drift.shape == (6,) and np.all(drift >= -1e-6) and np.all(drift < 1.0)
    files = sae_files(trained["dictionary"], {"note": "test"})
    loaded = load_sae(files, "dictionary")
    assert torch.allclose(loaded.W_dec, trained["dictionary"].sae.W_dec)
    steered_away = ablate_latents(loaded, [0, 1])(activations[:5].astype(np.float64))
    assert steered_away.shape == (5, 32)
    with pytest.raises(ValueError, match="held-out"):
        train_both(activations, np.zeros(len(where), dtype=bool), dictionary, settings)


def test_tiny_folder_is_a_real_path(tiny) -> None:
    assert Path(tiny[2]).exists()
