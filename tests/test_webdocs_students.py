"""The MLP filter and the encoder student on small synthetic problems with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from safetensors.torch import load as load_safetensors

from training.webdocs import encoder_student, mlp_filter
from training.webdocs.encoder_student import EncoderConfig, load_encoder, save_encoder, train_encoder_student
from training.webdocs.mlp_filter import (
    MLPConfig,
    class_weights,
    load_mlp,
    multitask_loss,
    predict_labels,
    predict_proba,
    predictions_frame,
    save_mlp,
    train_mlp_filter,
)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared CPU the thread handoffs cost ~40x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Two small dimensions: "topic" is balanced over three codes, "rare" is 90% one code; "-1" is allowed.
VOCABULARIES = {"topic": ["-1", "1", "2", "3"], "rare": ["-1", "5", "51"]}
SMALL = MLPConfig(hidden_sizes=(32,), dropout=0.0, learning_rate=1e-2, batch_size=64, max_epochs=40, patience=3)


def separable(
    rows: int, seed: int, dim: int = 16
) -> tuple[np.ndarray, dict[str, list[str]], dict[str, list[str | None]]]:
    """Unit vectors around three topic centres; `rare` is "51" where feature 0 is high (about 10%).

    The secondary topic is the centre the vector leans towards second (via feature 1's sign).
    """
    rng = np.random.default_rng(seed)
    centres = np.eye(dim, dtype=np.float32)[2:5] * 3
    topic = rng.integers(0, 3, rows)
    x = centres[topic] + rng.normal(0, 0.5, (rows, dim)).astype(np.float32)
    x[:, 0] = rng.normal(0, 1, rows)
    x[:, 1] = rng.choice([-1.0, 1.0], rows)
    rare = np.where(x[:, 0] > 1.28, "51", "5")
    secondary = [str((t + (1 if s > 0 else 2)) % 3 + 1) for t, s in zip(topic, x[:, 1], strict=True)]
    labels = {"topic": [str(t + 1) for t in topic], "rare": rare.tolist()}
    return x, labels, {"topic": secondary, "rare": [None] * rows}


@pytest.fixture(scope="module")
def trained() -> mlp_filter.TrainedMLP:
    train_x, train_labels, _ = separable(600, seed=1)
    val_x, val_labels, _ = separable(300, seed=2)
    return train_mlp_filter(train_x, train_labels, val_x, val_labels, VOCABULARIES, SMALL)


def test_mlp_learns_a_separable_problem_and_beats_the_constant_baseline(
    trained: mlp_filter.TrainedMLP,
) -> None:
    val_x, val_labels, _ = separable(300, seed=2)
    predicted = predict_labels(trained, val_x)
    for dimension in VOCABULARIES:
        accuracy = np.mean(np.array(predicted[dimension]) == np.array(val_labels[dimension]))
        assert accuracy >= 0.9, (dimension, accuracy)
        assert accuracy == pytest.approx(trained.best_metrics.val_accuracy[dimension])
        assert accuracy > trained.baseline_accuracy[dimension]
    assert trained.baseline_accuracy["topic"] < 0.45  # three balanced codes: the constant answer is ~1/3
    assert trained.best_metrics.val_accuracy["topic"] > trained.baseline_accuracy["topic"] + 0.5
    assert trained.parameter_count == 16 * 32 + 32 + 32 * 7 + 7


def test_class_weights_are_inverse_frequency_clipped_and_change_the_loss() -> None:
    targets = np.array([1] * 90 + [2] * 10)
    np.testing.assert_allclose(class_weights(targets, 3, max_weight=10.0), [10.0, 1.0, 9.0])
    np.testing.assert_allclose(class_weights(targets, 3, max_weight=5.0), [5.0, 1.0, 5.0])

    logits = torch.tensor([[0.0, 2.0, 0.0], [0.0, 2.0, 0.0]])  # both rows predict the majority code
    target = torch.tensor([1, 2])
    weights = torch.tensor([5.0, 1.0, 5.0])
    plain = multitask_loss(logits, [3], [target], [None])
    weighted = multitask_loss(logits, [3], [target], [weights])
    log_p = torch.log_softmax(logits, dim=1)
    expected = -(1.0 * log_p[0, 1] + 5.0 * log_p[1, 2]) / 6.0  # weighted mean, as PyTorch defines it
    assert float(weighted) == pytest.approx(float(expected), rel=1e-6)
    assert float(weighted) > float(plain) + 0.5  # the misclassified rare row now dominates


def test_early_stopping_stops_and_keeps_the_best_epoch() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    noise = {
        "topic": rng.choice(["1", "2", "3"], 300).tolist(),
        "rare": rng.choice(["5", "51"], 300).tolist(),
    }
    config = MLPConfig(hidden_sizes=(256,), dropout=0.0, learning_rate=1e-2, max_epochs=60, patience=2)
    result = train_mlp_filter(
        x[:200],
        {d: v[:200] for d, v in noise.items()},
        x[200:],
        {d: v[200:] for d, v in noise.items()},
        VOCABULARIES,
        config,
    )
    assert len(result.history) < config.max_epochs
    assert len(result.history) == result.best_epoch + config.patience
    best_loss = min(m.val_loss for m in result.history)
    assert result.best_metrics.val_loss == best_loss
    # The kept weights are the best epoch's: recompute its validation loss from the predictions.
    probs = predict_proba(result, x[200:])
    losses = []
    for dimension, vocabulary in VOCABULARIES.items():
        train_codes = mlp_filter.encode_labels(noise[dimension][:200], vocabulary, dimension)
        weights = class_weights(train_codes, len(vocabulary), config.max_class_weight)
        codes = mlp_filter.encode_labels(noise[dimension][200:], vocabulary, dimension)
        row_weights = weights[codes]
        picked = probs[dimension][np.arange(100), codes]
        losses.append(-(row_weights * np.log(picked)).sum() / row_weights.sum())
    assert np.mean(losses) == pytest.approx(best_loss, rel=1e-4)


def test_training_is_seeded() -> None:
    train_x, train_labels, _ = separable(200, seed=3)
    val_x, val_labels, _ = separable(100, seed=4)
    config = MLPConfig(hidden_sizes=(16,), max_epochs=3, seed=7)
    first = save_mlp(train_mlp_filter(train_x, train_labels, val_x, val_labels, VOCABULARIES, config))
    second = save_mlp(train_mlp_filter(train_x, train_labels, val_x, val_labels, VOCABULARIES, config))
    assert first == second


def test_mlp_save_load_round_trip_predicts_identically(trained: mlp_filter.TrainedMLP) -> None:
    files = save_mlp(trained, card_fields={"training data version": "abc123", "embedding model": "e5-small"})
    assert set(files) == {"model.safetensors", "config.json", "card.md"}
    config = json.loads(files["config.json"])
    assert config["vocabularies"] == VOCABULARIES
    assert config["input_dim"] == 16
    assert config["config"]["hidden_sizes"] == [32]
    card = files["card.md"].decode()
    assert "| training data version | abc123 |" in card
    assert "| training documents | 600 |" in card
    assert "| topic | 4 |" in card

    loaded = load_mlp(files)
    x, _, _ = separable(50, seed=9)
    for dimension, probs in predict_proba(trained, x).items():
        np.testing.assert_array_equal(predict_proba(loaded, x)[dimension], probs)
    assert loaded.history == trained.history
    assert loaded.best_epoch == trained.best_epoch
    assert save_mlp(loaded, {"training data version": "abc123", "embedding model": "e5-small"}) == files


def test_probabilities_sum_to_one_on_any_batch(trained: mlp_filter.TrainedMLP) -> None:
    x = np.random.default_rng(5).normal(size=(53, 16)).astype(np.float32)
    whole = predict_proba(trained, x)
    streamed = predict_proba(trained, x, batch_size=7)
    for dimension, vocabulary in VOCABULARIES.items():
        assert whole[dimension].shape == (53, len(vocabulary))
        assert whole[dimension].dtype == np.float32
        np.testing.assert_allclose(whole[dimension].sum(axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(streamed[dimension], whole[dimension], atol=1e-6)
    empty = predict_proba(trained, np.zeros((0, 16), dtype=np.float32))
    assert empty["topic"].shape == (0, 4)
    with pytest.raises(ValueError, match="columns"):
        predict_proba(trained, np.zeros((2, 8), dtype=np.float32))


def test_predictions_frame_columns_and_secondary_threshold() -> None:
    probabilities = {
        "topic": np.array([[0.1, 0.6, 0.3, 0.0], [0.05, 0.9, 0.05, 0.0], [0.4, 0.5, 0.1, 0.0]], dtype=np.float32),
        "rare": np.array([[0.0, 0.2, 0.8], [1.0, 0.0, 0.0], [0.1, 0.7, 0.2]], dtype=np.float32),
    }
    frame = predictions_frame(["a", "b", "c"], probabilities, VOCABULARIES, secondary_threshold=0.2)
    assert frame.columns == [
        "doc_id",
        "topic__primary",
        "topic__secondary",
        "topic__probs",
        "rare__primary",
        "rare__secondary",
        "rare__probs",
    ]
    assert frame.schema["topic__primary"] == pl.String
    assert frame.schema["topic__secondary"] == pl.String
    assert frame.schema["topic__probs"] == pl.List(pl.Float32)
    assert frame["topic__primary"].to_list() == ["1", "1", "1"]
    assert frame["topic__secondary"].to_list() == [
        "2",
        None,
        None,
    ]  # 0.05 < 0.2; the abstain code is never kept
    assert frame["rare__primary"].to_list() == ["51", "-1", "5"]
    assert frame["rare__secondary"].to_list() == ["5", None, "51"]
    assert frame["rare__probs"].to_list()[0] == pytest.approx([0.0, 0.2, 0.8])


def test_secondary_weight_teaches_the_head_to_rank_the_secondary_second() -> None:
    train_x, train_labels, train_secondary = separable(600, seed=1)
    val_x, val_labels, val_secondary = separable(300, seed=2)
    with pytest.raises(ValueError, match="secondary"):
        train_mlp_filter(train_x, train_labels, val_x, val_labels, VOCABULARIES, MLPConfig(secondary_weight=0.3))
    # With weight w the optimum gives the secondary w / (1 + w) = 1/3 of the mass, above the 0.2 threshold.
    config = MLPConfig(**{**SMALL.__dict__, "secondary_weight": 0.5})
    result = train_mlp_filter(
        train_x,
        train_labels,
        val_x,
        val_labels,
        VOCABULARIES,
        config,
        train_secondary=train_secondary,
        val_secondary=val_secondary,
    )
    probabilities = predict_proba(result, val_x)
    ranked_second = np.argsort(-probabilities["topic"], axis=1)[:, 1]
    expected = [VOCABULARIES["topic"].index(code) for code in val_secondary["topic"]]
    assert np.mean(ranked_second == np.array(expected)) >= 0.8
    frame = predictions_frame([str(i) for i in range(300)], probabilities, VOCABULARIES)
    assert np.mean(np.array(frame["topic__primary"].to_list()) == np.array(val_labels["topic"])) >= 0.85
    assert np.mean(np.array(frame["topic__secondary"].to_list()) == np.array(val_secondary["topic"])) >= 0.75
    assert frame["rare__secondary"].null_count() >= 250  # no secondary was taught there


def test_unknown_codes_are_rejected() -> None:
    x, labels, _ = separable(20, seed=0)
    labels["topic"][3] = "7"
    with pytest.raises(ValueError, match=r"topic.*'7'"):
        train_mlp_filter(x, labels, x, labels, VOCABULARIES, SMALL)


# --- encoder student -------------------------------------------------------------------------------

WORDS = [
    "the",
    "a",
    "river",
    "city",
    "music",
    "market",
    "garden",
    "history",
    "train",
    "paper",
    "window",
    "story",
    "bread",
    "light",
]
ENCODER_VOCABULARIES = {"volcano": ["-1", "1", "2"], "recipe": ["-1", "1"]}


def keyword_texts(count: int, seed: int) -> tuple[list[str], dict[str, list[str]]]:
    """Random word salads; `volcano` is "1" when the text mentions a volcano, `recipe` likewise."""
    rng = np.random.default_rng(seed)
    texts, labels = [], {"volcano": [], "recipe": []}
    for _ in range(count):
        words = list(rng.choice(WORDS, 8))
        has_volcano, has_recipe = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
        if has_volcano:
            words.insert(int(rng.integers(0, 8)), "volcano")
        if has_recipe:
            words.insert(int(rng.integers(0, 8)), "recipe")
        texts.append(" ".join(words))
        labels["volcano"].append("1" if has_volcano else "2")
        labels["recipe"].append("1" if has_recipe else "-1")
    return texts, labels


@pytest.fixture(scope="module")
def tiny_encoder_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return encoder_student.write_tiny_random_encoder(tmp_path_factory.mktemp("tiny-bert"))


def test_tiny_encoder_trains_and_round_trips(tiny_encoder_path: str) -> None:
    train_texts, train_labels = keyword_texts(64, seed=0)
    val_texts, val_labels = keyword_texts(32, seed=1)
    config = EncoderConfig(max_length=32, epochs=4, learning_rate=3e-3, head_learning_rate=1e-2, batch_size=8)
    trained = train_encoder_student(
        train_texts, train_labels, val_texts, val_labels, ENCODER_VOCABULARIES, config, tiny_encoder_path
    )
    assert 1 <= trained.best_epoch <= len(trained.history) <= 4
    assert trained.history[-1].train_loss < trained.history[0].train_loss
    assert trained.best_metrics.mean_val_accuracy >= 0.7  # the constant answer scores ~0.53 here
    assert trained.best_metrics.mean_val_accuracy > np.mean(list(trained.baseline_accuracy.values())) + 0.15
    assert trained.parameter_count < 2_000_000

    files = save_encoder(trained, card_fields={"training data version": "v1"})
    assert {"model.safetensors", "config.json", "card.md", "tokenizer.json"} <= set(files)
    config_json = json.loads(files["config.json"])
    assert config_json["base_model_id"] == Path(tiny_encoder_path).name
    assert config_json["encoder_config"]["hidden_size"] == 32
    assert "| training data version | v1 |" in files["card.md"].decode()
    assert any(name.startswith("encoder.") for name in load_safetensors(files["model.safetensors"]))

    loaded = load_encoder(files)
    probe = [*val_texts[:5], "volcano recipe", ""]
    original, restored = (
        encoder_student.predict_proba(trained, probe),
        encoder_student.predict_proba(loaded, probe),
    )
    for dimension in ENCODER_VOCABULARIES:
        np.testing.assert_array_equal(restored[dimension], original[dimension])
        np.testing.assert_allclose(original[dimension].sum(axis=1), 1.0, atol=1e-5)
    assert encoder_student.predict_labels(loaded, probe, batch_size=3) == encoder_student.predict_labels(trained, probe)


@pytest.mark.slow
def test_real_minilm_fine_tunes_for_one_epoch() -> None:
    train_texts, train_labels = keyword_texts(16, seed=2)
    val_texts, val_labels = keyword_texts(8, seed=3)
    config = EncoderConfig(max_length=32, epochs=1, batch_size=8)
    trained = train_encoder_student(train_texts, train_labels, val_texts, val_labels, ENCODER_VOCABULARIES, config)
    assert trained.base_model_id == encoder_student.PACKAGED_BASE_MODEL_ID
    assert len(trained.history) == 1 and trained.best_epoch == 1
    assert trained.model.encoder.config.hidden_size == 384
    base = load_safetensors((Path(encoder_student.packaged_minilm_path()) / "model.safetensors").read_bytes())
    name = next(key for key in base if key.endswith("encoder.layer.0.attention.self.query.weight"))
    assert not torch.equal(trained.model.encoder.state_dict()[name.removeprefix("bert.")], base[name])
    predicted = encoder_student.predict_labels(trained, val_texts)
    assert all(set(codes) <= set(ENCODER_VOCABULARIES[d]) for d, codes in predicted.items())
