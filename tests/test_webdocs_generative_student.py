"""The generative student: loss masking, learning on a tiny random Llama, store round trip, real SmolLM2."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as load_safetensors

from ops.common.packaged_models import smollm2_model_path
from training.webdocs.generative_student import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    CARD,
    IGNORE_INDEX,
    STUDENT_CONFIG,
    GenerativeConfig,
    byte_tokenizer,
    encode_example,
    generate,
    load_generative,
    prompt_ids,
    save_generative,
    tiny_base,
    train_generative_student,
)

TEXTS = [
    "The cat sat on the mat and looked at the garden.",
    "Stock prices fell sharply today after the central bank spoke.",
    "How to bake bread at home: flour, water, salt and yeast.",
    "A short proof of the Pythagorean theorem with similar triangles.",
]
TARGETS = ["a:636|b:2", "a:332|b:1", "a:641|b:3", "a:516|b:4"]
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 64-wide random Llama with a byte-level tokenizer, saved like any base model."""
    return tiny_base(tmp_path_factory.mktemp("tiny") / "base", byte_tokenizer())


@pytest.fixture(scope="module")
def overfit(tiny_folder: Path):
    """The tiny student trained to memorise the four examples."""
    config = GenerativeConfig(
        base_model=str(tiny_folder),
        target_modules=ALL_LINEAR,
        learning_rate=1e-2,
        lora_dropout=0.0,
        epochs=20,
        patience=20,
        batch_size=2,
        max_length=256,
    )
    return train_generative_student(TEXTS, TARGETS, TEXTS, TARGETS, config)


def test_labels_are_masked_exactly_on_prompt_tokens() -> None:
    tokenizer = byte_tokenizer()
    config = GenerativeConfig(base_model="unused", max_length=256)
    example = encode_example(tokenizer, TEXTS[1], TARGETS[1], config)
    prompt = prompt_ids(tokenizer, TEXTS[1], config, budget=256)
    answer = tokenizer(TARGETS[1], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]

    assert example.input_ids == prompt + answer
    assert example.labels == [IGNORE_INDEX] * len(prompt) + answer
    assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    assert tokenizer.decode(example.input_ids[len(prompt) :]) == TARGETS[1] + "<|im_end|>"


def test_long_documents_are_cut_to_the_budget_never_the_answer() -> None:
    tokenizer = byte_tokenizer()
    config = GenerativeConfig(base_model="unused", max_length=200, max_doc_chars=10_000)
    example = encode_example(tokenizer, "word " * 1000, TARGETS[0], config)

    assert len(example.input_ids) <= 200
    answer = [label for label in example.labels if label != IGNORE_INDEX]
    assert tokenizer.decode(answer) == TARGETS[0] + "<|im_end|>"
    assert tokenizer.decode(example.input_ids).count("word") > 10
    with pytest.raises(ValueError, match="does not fit"):
        encode_example(tokenizer, TEXTS[0], "x" * 300, config)


def test_tiny_student_memorises_four_examples(overfit) -> None:
    first, last = overfit.metrics[0], overfit.metrics[-1]

    assert last["train_loss"] < 0.1 * first["train_loss"]
    assert overfit.metrics[overfit.best_epoch - 1]["val_loss"] == min(m["val_loss"] for m in overfit.metrics)
    assert generate(overfit, TEXTS, max_new_tokens=24, batch_size=4) == TARGETS
    # Left padding: a document alone and in a batch with longer ones gives the same answer.
    assert generate(overfit, TEXTS[:1], max_new_tokens=24, batch_size=1) == TARGETS[:1]


def test_training_is_seeded(tiny_folder: Path) -> None:
    config = GenerativeConfig(base_model=str(tiny_folder), epochs=1, batch_size=2, max_length=256)
    first = train_generative_student(TEXTS, TARGETS, TEXTS[:2], TARGETS[:2], config)
    second = train_generative_student(TEXTS, TARGETS, TEXTS[:2], TARGETS[:2], config)
    other = train_generative_student(TEXTS, TARGETS, TEXTS[:2], TARGETS[:2], replace(config, seed=1))

    assert first.metrics[0]["val_loss"] == second.metrics[0]["val_loss"]
    assert first.metrics[0]["val_loss"] != other.metrics[0]["val_loss"]


def test_padding_does_not_change_the_loss(tiny_folder: Path) -> None:
    # Learning rate 0: the validation loss of the untouched base, in one padded batch or one doc at a time.
    config = GenerativeConfig(base_model=str(tiny_folder), learning_rate=0.0, epochs=1, max_length=256)
    targets = ["x", "a:1|b:22|c:333", "a:2", "a:3|b:4"]
    batched = train_generative_student(TEXTS[:1], TARGETS[:1], TEXTS, targets, replace(config, batch_size=4))
    single = train_generative_student(TEXTS[:1], TARGETS[:1], TEXTS, targets, replace(config, batch_size=1))

    assert batched.metrics[0]["val_loss"] == pytest.approx(single.metrics[0]["val_loss"], rel=1e-5)


def test_early_stopping_keeps_the_best_epoch(tiny_folder: Path) -> None:
    # A learning rate far too high makes the validation loss climb after the first epochs.
    config = GenerativeConfig(
        base_model=str(tiny_folder),
        target_modules=ALL_LINEAR,
        learning_rate=3.0,
        epochs=8,
        patience=1,
        batch_size=4,
        max_length=256,
    )
    trained = train_generative_student(TEXTS, TARGETS, TEXTS, TARGETS, config)
    val = [m["val_loss"] for m in trained.metrics]

    assert len(val) < 8
    assert val[-1] >= val[-2]
    assert trained.best_epoch == val.index(min(val)) + 1


def test_save_and_load_round_trip_generates_identically(overfit, tiny_folder: Path) -> None:
    files = save_generative(overfit, {"training data": "annotations v1", "train docs": 4})

    assert set(files) == {ADAPTER_WEIGHTS, ADAPTER_CONFIG, STUDENT_CONFIG, CARD}
    weights = load_safetensors(files[ADAPTER_WEIGHTS])
    assert weights and all("lora_" in name for name in weights)
    assert all(not name.endswith("embed_tokens.weight") for name in weights)
    assert json.loads(files[ADAPTER_CONFIG])["r"] == overfit.config.lora_r
    assert json.loads(files[STUDENT_CONFIG])["config"]["base_model"] == str(tiny_folder)
    card = files[CARD].decode()
    assert "annotations v1" in card and "base weights are not" in card

    loaded = load_generative(files, base_model_path=tiny_folder)
    assert loaded.best_epoch == overfit.best_epoch
    assert generate(loaded, TEXTS, max_new_tokens=24) == generate(overfit, TEXTS, max_new_tokens=24)
    logits = [
        model(input_ids=torch.tensor([prompt_ids(overfit.tokenizer, TEXTS[2], overfit.config, 256)])).logits
        for model in (overfit.model, loaded.model)
    ]
    torch.testing.assert_close(logits[0], logits[1], rtol=0, atol=0)


@pytest.mark.slow
def test_real_smollm2_lora_epoch_and_generation() -> None:
    gguf = smollm2_model_path()
    config = GenerativeConfig(base_model=str(gguf), epochs=1, batch_size=3, max_doc_chars=200, max_length=160)
    docs = [*TEXTS, "Rain is expected across the north on Friday.", "Install the package with pip and run it."]
    targets = [*TARGETS, "a:551|b:1", "a:005|b:3"]

    trained = train_generative_student(docs, targets, docs[:2], targets[:2], config)
    outputs = generate(trained, docs[:2], max_new_tokens=12, batch_size=2)

    assert trained.tokenizer.chat_template and trained.tokenizer.eos_token == "<|im_end|>"
    assert trained.metrics[0]["train_loss"] > 0 and trained.metrics[0]["val_loss"] > 0
    assert len(outputs) == 2 and all(isinstance(output, str) and output for output in outputs)
