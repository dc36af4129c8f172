"""The concepts chain as Dagster runs it: real instance and store, a tiny random Llama as the steered model,
one real web-doc shard for the SAE, and a fake judge (the only fake)."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest

from pipelines.definitions import build_definitions
from pipelines.partitions import web_doc_shards
from pipelines.profiles import build_resources
from tests.conftest import sample_records, write_jsonl
from tests.fakes import FakeJudgeResource
from training.webdocs.generative_student import byte_tokenizer, tiny_base

SHARD = "docs.jsonl"


@pytest.fixture
def tiny_model(assay_home, tmp_path, monkeypatch):
    folder = tiny_base(tmp_path / "tiny", byte_tokenizer(), layers=2, hidden=32)
    sizes = {"MODEL": str(folder), "LAYER": "1", "N": "6", "SAE_DOCS": "4", "SAE_STEPS": "4", "EVAL_PROMPTS": "1"}
    for name, value in sizes.items():
        monkeypatch.setenv(f"ASSAY_CONCEPTS_{name}", value)
    return folder


def _web_docs(instance) -> None:
    write_jsonl(Path(os.environ["ASSAY_WEB_DOCS_INPUT"]) / SHARD, sample_records("c4_en_sample_1000.jsonl", 6))
    instance.add_dynamic_partitions(web_doc_shards.name, [SHARD])
    defs = build_definitions(build_resources("local"))
    selection = [dg.AssetKey(k) for k in ("raw_web_docs", "web_docs", "web_docs_quarantine")]
    assert (
        defs.resolve_job_def("webdocs")
        .execute_in_process(instance=instance, partition_key=SHARD, asset_selection=selection)
        .success
    )


def test_concepts_chain_end_to_end(instance, tiny_model) -> None:
    _web_docs(instance)
    defs = build_definitions({**build_resources("local"), "llm": FakeJudgeResource()})
    run_config = {
        "ops": {
            "concept_vocabulary": {"config": {"unsafe_per_root": 1}},
            # A random tiny model's directions retrieve at chance level: no floor for it.
            "concept_dictionary": {"config": {"min_top1_over_chance": 0.0}},
            "dictionary_sae": {"config": {"k": 4, "free_latents": 8, "batch_size": 16}},
            "concept_steering_eval": {"config": {"max_new_tokens": 3}},
        }
    }
    run = defs.resolve_job_def("concepts").execute_in_process(instance=instance, run_config=run_config)
    assert run.success
    checks = run.get_asset_check_evaluations()
    assert len(checks) == 9 and all(check.passed for check in checks), [c.metadata for c in checks if not c.passed]

    vocabulary = run.output_for_node("concept_vocabulary")
    stimuli = run.output_for_node("concept_stimuli", "concept_stimuli")
    assert vocabulary.height == stimuli["synset_id"].n_unique() and vocabulary["unsafe"].sum() >= 1
    activations = run.output_for_node("concept_activations", "concept_activations")
    assert activations.height == stimuli.height and set(activations["layer"]) == {1}
    assert activations["truncated"].any()  # definitions are longer than the 32-token window

    event = instance.get_latest_materialization_event(dg.AssetKey("concept_dictionary")).asset_materialization
    assert event.metadata["concepts"].value == vocabulary.height
    assert 0.0 <= event.metadata["retrieval_top1"].value <= 1.0

    answers = run.output_for_node("concept_steering_eval")
    assert answers.height == 3 * 2 and set(answers["status"]) == {"met"}
    steering = instance.get_latest_materialization_event(dg.AssetKey("concept_steering_eval")).asset_materialization
    assert steering.metadata["none_kl"].value == pytest.approx(0.0, abs=1e-6)
    assert steering.metadata["elastic_net_harm_rate"].value == 1.0  # the fake judge says "met" to everything

    sae = instance.get_latest_materialization_event(dg.AssetKey("dictionary_sae")).asset_materialization
    assert np.isfinite(sae.metadata["dictionary_fvu"].value) and sae.metadata["dictionary_l0"].value <= 4
    annotations = run.output_for_node("sae_atom_annotations")
    assert annotations.height == vocabulary.height + 8
    inherited = annotations.filter(pl.col("origin") == "dictionary")["synset_id"].to_list()
    assert inherited == vocabulary["synset_id"].to_list()


def test_dictionary_for_another_model_is_refused(instance, tiny_model, tmp_path, monkeypatch) -> None:
    defs = build_definitions({**build_resources("local"), "llm": FakeJudgeResource()})
    keys = ["concept_vocabulary", "concept_stimuli", "concept_activations", "concept_dictionary"]
    selection = [dg.AssetKey(k) for k in (*keys, "concept_stimuli_quarantine", "concept_activations_quarantine")]
    config = {
        "ops": {
            "concept_vocabulary": {"config": {"unsafe_per_root": 1}},
            "concept_dictionary": {"config": {"min_top1_over_chance": 0.0}},
        }
    }
    assert (
        defs.resolve_job_def("concepts")
        .execute_in_process(instance=instance, asset_selection=selection, run_config=config)
        .success
    )
    other = tiny_base(tmp_path / "other", byte_tokenizer(), layers=2, hidden=32, seed=1)
    monkeypatch.setenv("ASSAY_CONCEPTS_MODEL", str(other))
    defs = build_definitions({**build_resources("local"), "llm": FakeJudgeResource()})
    result = defs.resolve_job_def("concepts").execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey("concept_steering_eval")], raise_on_error=False
    )
    assert not result.success
    message = str(result.all_events[-1].event_specific_data) + "".join(
        str(e.event_specific_data) for e in result.all_events if e.is_step_failure
    )
    assert f"built for model '{tiny_model}' layer 1" in message and f"steered model is '{other}' layer 1" in message
