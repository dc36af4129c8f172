"""Concept-dictionary maths without a model: vocabulary, stimuli, dictionary, elastic-net decomposition, atoms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy.optimize import minimize

from ops.concepts.atoms import annotate_atoms, cluster_nmi
from ops.concepts.decomposition import (
    ElasticNetSpec,
    decompose,
    mean_difference_direction,
    paper_objective,
    project_out,
    remove_concepts,
    sklearn_penalty,
    steerers,
)
from ops.concepts.dictionary import (
    DictionaryMismatchError,
    build_dictionary,
    dictionary_files,
    load_dictionary,
    norm_violations,
    retrieval_accuracy,
)
from ops.concepts.stimuli import TOO_FEW_STIMULI, StimulusRules, build_stimuli
from ops.concepts.vocabulary import UnknownSynsetError, hyponym_closure, read_wordnet, select_vocabulary

WORDNET = Path(__file__).resolve().parents[1] / "samples" / "wordnet_nouns" / "wordnet_nouns.jsonl.gz"
WEAPON, GUN, RIFLE = "n04565375", "n03467984", "n04090263"


@pytest.fixture(scope="module")
def wordnet() -> pl.DataFrame:
    return read_wordnet(WORDNET)


def test_vocabulary_ranks_by_frequency_and_marks_unsafe_hyponyms(wordnet: pl.DataFrame) -> None:
    vocabulary = select_vocabulary(wordnet, 20, unsafe_roots=[WEAPON], unsafe_per_root=3)
    ranked = vocabulary["freq_rank"].to_list()
    assert ranked == sorted(ranked) and vocabulary["synset_id"].n_unique() == vocabulary.height == 23
    assert vocabulary.head(20)["freq_rank"].to_list() == list(range(1, 21))
    unsafe = vocabulary.filter(pl.col("unsafe"))
    assert unsafe.height == 3 and set(unsafe["synset_id"]) <= hyponym_closure(wordnet, [WEAPON])
    assert {GUN, RIFLE} <= hyponym_closure(wordnet, [WEAPON])
    assert WEAPON not in hyponym_closure(wordnet, [GUN])


def test_unknown_synset_ids_raise_naming_them(wordnet: pl.DataFrame) -> None:
    with pytest.raises(UnknownSynsetError, match="n99999999"):
        select_vocabulary(wordnet, 5, unsafe_roots=[WEAPON], extra_ids=["n99999999"])
    with pytest.raises(UnknownSynsetError, match="n00000042"):
        hyponym_closure(wordnet, ["n00000042"])


def test_stimuli_split_and_quarantine_concepts_with_too_few(wordnet: pl.DataFrame) -> None:
    vocabulary = select_vocabulary(wordnet, 5, unsafe_roots=[])
    result = build_stimuli(vocabulary, StimulusRules(min_stimuli=8, max_stimuli=10, heldout_per_concept=2))
    assert result.concepts.accounted() and result.concepts.kept.height == 5
    per_concept = result.stimuli.group_by("synset_id").agg(pl.len(), (pl.col("split") == "heldout").sum().alias("h"))
    assert per_concept["len"].to_list() == [10] * 5 and per_concept["h"].to_list() == [2] * 5
    assert result.stimuli["image"].null_count() == result.stimuli.height
    few = build_stimuli(vocabulary, StimulusRules(min_stimuli=8, templates=("a {lemma}",)))
    assert few.stimuli.is_empty() and few.concepts.quarantined["reason"].to_list() == [TOO_FEW_STIMULI] * 5
    assert few.concepts.accounted()


def test_sklearn_scaling_matches_the_closed_form_for_an_orthonormal_dictionary() -> None:
    # For orthonormal D the paper's objective separates per atom: c_i = soft(D_i.y, alpha*tau) / (1 + alpha*(1-tau)).
    rng = np.random.default_rng(0)
    dictionary = np.linalg.qr(rng.normal(size=(6, 3)))[0].T  # 3 orthonormal rows in R^6
    y = np.array([2.0, -1.0, 0.5, 0.0, 0.3, -0.2]) @ np.eye(6)
    spec = ElasticNetSpec(alpha=0.5, tau=0.9)
    projections = dictionary @ y
    expected = np.sign(projections) * np.maximum(np.abs(projections) - 0.5 * 0.9, 0) / (1 + 0.5 * 0.1)
    codes = decompose(y, dictionary, spec)[0]
    assert np.allclose(codes, expected, atol=1e-6)
    assert sklearn_penalty(spec, 6) == (0.5 / 6, 0.9)


def test_hand_computed_two_atom_case() -> None:
    # D = I (2 atoms in R^2), y = (1, 0.05), alpha = 0.1, tau = 0.9: c1 = (1 - 0.09)/1.01, c2 = 0 (|0.05| < 0.09).
    codes = decompose(np.array([1.0, 0.05]), np.eye(2), ElasticNetSpec(alpha=0.1, tau=0.9))[0]
    assert codes == pytest.approx([0.91 / 1.01, 0.0], abs=1e-7)


def test_decomposition_minimises_the_paper_objective_for_a_correlated_dictionary() -> None:
    rng = np.random.default_rng(1)
    dictionary = rng.normal(size=(5, 12))
    dictionary /= np.linalg.norm(dictionary, axis=1, keepdims=True)
    y = rng.normal(size=12)
    spec = ElasticNetSpec(alpha=0.3, tau=0.7, tol=1e-10)
    codes = decompose(y, dictionary, spec)[0]
    reference = minimize(
        lambda c: paper_objective(y, dictionary, c, spec),
        np.zeros(5),
        method="Powell",
        options={"xtol": 1e-10, "ftol": 1e-12, "maxiter": 100000},
    )
    assert paper_objective(y, dictionary, codes, spec) <= reference.fun + 1e-6
    # An unscaled mapping (sklearn alpha = paper alpha) gives a different, worse solution.
    unscaled = decompose(y, dictionary, ElasticNetSpec(alpha=0.3 * 12, tau=0.7, tol=1e-10))[0]
    assert not np.allclose(unscaled, codes, atol=1e-3)


def test_removal_subtracts_only_the_unsafe_components() -> None:
    dictionary = np.eye(3)
    y = np.array([[2.0, 1.0, -3.0]])
    spec = ElasticNetSpec(alpha=1e-6, tau=0.9)
    removed = remove_concepts(y, dictionary, [2], spec)
    assert removed == pytest.approx(np.array([[2.0, 1.0, 0.0]]), abs=1e-4)
    half = remove_concepts(y, dictionary, [2], spec, strength=0.5)
    assert half == pytest.approx(np.array([[2.0, 1.0, -1.5]]), abs=1e-4)
    assert np.array_equal(remove_concepts(y, dictionary, [], spec), y)
    centered = remove_concepts(y, dictionary, [0], spec, center=np.array([2.0, 0.0, 0.0]))
    assert centered == pytest.approx(y, abs=1e-4)  # nothing of atom 0 is left after centering


def test_mean_difference_direction_and_projection() -> None:
    dictionary = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    direction = mean_difference_direction(dictionary, [0])
    assert direction == pytest.approx(np.array([1.0, -1.0]) / np.sqrt(2))
    projected = project_out(np.array([[3.0, 1.0]]), direction)
    assert float(projected[0] @ direction) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="both unsafe and safe"):
        mean_difference_direction(dictionary, [0, 1, 2])
    methods = steerers(dictionary, np.zeros(2), [0], ElasticNetSpec(), 1.0)
    assert methods["none"] is None and set(methods) == {"none", "mean_difference", "elastic_net"}


def _toy_dictionary(model_id: str = "m", layer: int = 3):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 16)) * 3
    rows, activations = [], []
    for concept in range(4):
        for index in range(6):
            rows.append({"synset_id": f"n{concept:08d}", "split": "heldout" if index >= 4 else "train"})
            activations.append(centers[concept] + rng.normal(size=16) * 0.3)
    frame = pl.DataFrame(rows)
    vocabulary = pl.DataFrame(
        {
            "synset_id": [f"n{c:08d}" for c in range(4)],
            "lemma": list("abcd"),
            "lexname": ["noun.x", "noun.x", "noun.y", "noun.y"],
            "definition": list("abcd"),
            "unsafe": [False, False, False, True],
        }
    )
    return build_dictionary(np.array(activations), frame, vocabulary, model_id, layer), np.array(activations), frame


def test_dictionary_is_unit_norm_and_retrieves_heldout_stimuli() -> None:
    dictionary, activations, frame = _toy_dictionary()
    assert norm_violations(dictionary.directions) == 0 and dictionary.concepts.height == 4
    assert dictionary.concepts["n_train"].to_list() == [4] * 4 and dictionary.unsafe_atoms() == [3]
    heldout = (frame["split"] == "heldout").to_numpy()
    accuracy = retrieval_accuracy(dictionary, activations[heldout], frame.filter(heldout)["synset_id"].to_list())
    assert accuracy["top1"] == 1.0 and accuracy["chance"] == 0.25 and accuracy["n"] == 8
    assert norm_violations(dictionary.directions * 2) == 4


def test_dictionary_files_round_trip_and_refuse_another_model_or_layer() -> None:
    dictionary, _, _ = _toy_dictionary("SmolLM2.gguf", 6)
    loaded = load_dictionary(dictionary_files(dictionary, {"stimuli_version": "v1"}))
    assert np.array_equal(loaded.directions, dictionary.directions) and loaded.concepts.equals(dictionary.concepts)
    loaded.require("SmolLM2.gguf", 6)
    with pytest.raises(DictionaryMismatchError, match=r"'SmolLM2.gguf' layer 6.*'Qwen/Qwen2.5-1.5B' layer 6"):
        loaded.require("Qwen/Qwen2.5-1.5B", 6)
    with pytest.raises(DictionaryMismatchError, match=r"layer 6.*layer 7"):
        loaded.require("SmolLM2.gguf", 7)


def test_atoms_inherit_or_take_the_nearest_concept() -> None:
    dictionary, _, _ = _toy_dictionary()
    free = dictionary.directions[[2]] + 0.01
    decoder = np.concatenate([dictionary.directions, free])
    codes = np.zeros((3, 5))
    codes[1, 4] = 2.0
    table = annotate_atoms(decoder, dictionary.directions, dictionary.concepts, codes, ["s0", "s1", "s2"], True)
    assert table["origin"].to_list() == ["dictionary"] * 4 + ["free"]
    assert table["lemma"].to_list() == ["a", "b", "c", "d", "c"]
    assert table["top_snippets"][4].to_list() == ["s1"] and table["top_snippets"][0].to_list() == []
    assert table["cosine"][:4].to_list() == pytest.approx([1.0] * 4)
    random_init = annotate_atoms(decoder, dictionary.directions, dictionary.concepts, codes, ["a", "b", "c"], False)
    assert random_init["origin"].to_list() == ["free"] * 5


def test_cluster_nmi_is_one_for_separated_groups() -> None:
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(size=(10, 8)) * 0.01 + 5, rng.normal(size=(10, 8)) * 0.01 - 5])
    assert cluster_nmi(vectors, ["x"] * 10 + ["y"] * 10) == pytest.approx(1.0)
    assert np.isnan(cluster_nmi(vectors, ["x"] * 20))
