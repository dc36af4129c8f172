"""Steering the frozen model with the concept dictionary, judged by the shared rubric engine."""

import os
from pathlib import Path

import dagster as dg
import polars as pl

from assets.concepts.dictionary import GROUP, REPO_ROOT
from assets.models import load_model_files
from assets.outputs import frame_output, markdown_table, png_metadata
from ops.common.plots import grouped_bar_png
from ops.common.threads import torch_threads
from ops.concepts.decomposition import ElasticNetSpec, steerers
from ops.concepts.dictionary import load_dictionary
from ops.concepts.safety import behaviour_rates, judge_items, read_safety_prompts
from ops.rubrics.grading import grade
from resources.artifact_store import ArtifactStoreResource
from resources.llm import LLMResource
from resources.scale import ScaleResource
from training.concepts.activations import load_model
from training.concepts.steering import steered_answers, utility_table

SAFETY_PROMPTS = os.environ.get("ASSAY_SAFETY_PROMPTS", str(REPO_ROOT / "samples" / "safety_prompts"))


class SteeringConfig(dg.Config):
    """Elastic-net alpha and tau (the paper's scaling), removal strength, the steered layer (-1: the
    dictionary's), prompts per kind (0: the profile's), answer length, the prompt folder, and torch threads
    (0: the cores free right now; two threads spin against each other on a shared CPU, as
    `ResponsesConfig.torch_threads` says)."""

    alpha: float = 0.1
    tau: float = 0.9
    strength: float = 1.0
    layer: int = -1
    prompts_per_kind: int = 0
    max_new_tokens: int = 32
    prompts_folder: str = SAFETY_PROMPTS
    torch_threads: int = 0


@dg.asset(
    group_name=GROUP, code_version="1", kinds={"pytorch", "llm", "polars"}, deps=["concept_dictionary"], pool="llm"
)
def concept_steering_eval(
    context: dg.AssetExecutionContext,
    config: SteeringConfig,
    scale: ScaleResource,
    llm: LLMResource,
    artifact_store: ArtifactStoreResource,
) -> dg.Output:
    """Harmful and benign prompts answered with no steering, mean-difference steering and PaCE-style removal
    of unsafe concepts' elastic-net components (generation-time hook); harm and refusal judged by the rubric
    engine (the profile's LLM, a separate llama.cpp instance locally); utility as KL / perplexity on benign text."""
    dictionary = load_dictionary(load_model_files(context.instance, artifact_store.get_store(), "concept_dictionary"))
    model, tokenizer, model_id = load_model(
        scale.concepts_model, scale.training_device, cache_dir=scale.concepts_model_cache
    )
    layer = dictionary.layer if config.layer < 0 else config.layer
    dictionary.require(model_id, layer)
    spec = ElasticNetSpec(config.alpha, config.tau)
    methods = steerers(dictionary.directions, dictionary.mean, dictionary.unsafe_atoms(), spec, config.strength)
    prompts = read_safety_prompts(Path(config.prompts_folder), config.prompts_per_kind or scale.concepts_eval_prompts)
    with torch_threads(config.torch_threads):
        answers = steered_answers(model, tokenizer, prompts, methods, layer, config.max_new_tokens)
    grades = grade(llm, judge_items(answers, model_id), explanation_max_chars=scale.judge_explanation_max_chars or None)
    with torch_threads(config.torch_threads):
        benign = prompts.filter(pl.col("kind") == "benign")["prompt"].to_list()
        utility = utility_table(model, tokenizer, benign, methods, layer)
    rates = behaviour_rates(answers, grades, list(methods)).join(utility, on="method")
    scored = answers.join(grades.select(pl.col("response_id").alias("answer_id"), "status"), on="answer_id")
    chart = grouped_bar_png(
        rates["method"].to_list(),
        {name: rates[name].fill_nan(0.0).to_list() for name in ("harm_rate", "refusal_rate", "kl")},
        f"Steering {model_id} layer {layer} (judge {llm.model_id})",
        "rate / KL",
    )
    return frame_output(
        scored,
        {
            "model_id": model_id,
            "layer": layer,
            "judge": llm.model_id,
            "rates": markdown_table(rates),
            **{
                f"{row['method']}_{name}": round(float(row[name]), 4)
                for row in rates.iter_rows(named=True)
                for name in ("harm_rate", "refusal_rate", "kl", "perplexity_ratio")
            },
            "chart": png_metadata(chart, "harm rate, refusal rate and KL per steering method"),
        },
    )
