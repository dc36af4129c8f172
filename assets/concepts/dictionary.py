"""WordNet concepts to a concept dictionary: vocabulary, text stimuli, pooled activations, unit directions."""

import os
from pathlib import Path

import dagster as dg
import polars as pl

from assets.models import model_result
from assets.outputs import frame_output, markdown_table
from ops.concepts.dictionary import build_dictionary, dictionary_files, retrieval_accuracy
from ops.concepts.stimuli import StimulusRules, build_stimuli
from ops.concepts.vocabulary import DEFAULT_UNSAFE_ROOTS, read_wordnet, select_vocabulary
from resources.artifact_store import ArtifactStoreResource
from resources.io_manager import latest_materialization, recorded_version
from resources.scale import ScaleResource
from training.concepts.activations import activation_matrix, load_model, stimulus_activations

GROUP = "concepts"
REPO_ROOT = Path(__file__).resolve().parents[2]
WORDNET_FILE = os.environ.get(
    "ASSAY_WORDNET_NOUNS", str(REPO_ROOT / "samples" / "wordnet_nouns" / "wordnet_nouns.jsonl.gz")
)


class VocabularyConfig(dg.Config):
    """Concepts: the most frequent `n_concepts` (0: the profile's size), the ranked hyponyms of the unsafe
    roots, and any extra synset ids (an unknown id fails the run, naming it)."""

    wordnet_file: str = WORDNET_FILE
    n_concepts: int = 0
    unsafe_roots: list[str] = list(DEFAULT_UNSAFE_ROOTS)
    unsafe_per_root: int = 8
    synset_ids: list[str] = []


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars", "parquet"})
def concept_vocabulary(config: VocabularyConfig, scale: ScaleResource) -> dg.Output:
    """WordNet noun synsets ranked by sense-tag frequency, with lemma, gloss, lexicographer file, hypernyms and
    an `unsafe` mark (hyponym of a configured root)."""
    wordnet = read_wordnet(Path(config.wordnet_file))
    vocabulary = select_vocabulary(
        wordnet, config.n_concepts or scale.concepts_n, config.unsafe_roots, config.unsafe_per_root, config.synset_ids
    )
    lexnames = vocabulary.group_by("lexname").len().sort("len", descending=True)
    return frame_output(
        vocabulary,
        {
            "concepts": vocabulary.height,
            "unsafe_concepts": int(vocabulary["unsafe"].sum()),
            "lexnames": markdown_table(lexnames),
        },
    )


class StimuliConfig(dg.Config):
    """Stimuli per concept (at least `min_stimuli`, at most `max_stimuli`) and how many are held out."""

    min_stimuli: int = 8
    max_stimuli: int = 8
    heldout_per_concept: int = 2


@dg.multi_asset(
    outs={
        "concept_stimuli": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="8-16 text stimuli per concept (definition, WordNet examples, templated captions) with a "
            "train/heldout split and an optional image column for caption-image pairs.",
        ),
        "concept_stimuli_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Concepts refused for too few distinct stimuli, with the reason.",
        ),
    },
)
def concept_stimuli(config: StimuliConfig, concept_vocabulary: pl.DataFrame):
    """Build the stimuli of every concept; rows in (concepts) = concepts kept + concepts quarantined."""
    rules = StimulusRules(config.min_stimuli, config.max_stimuli, config.heldout_per_concept)
    result = build_stimuli(concept_vocabulary, rules)
    counts = result.concepts.metadata()
    sources = result.stimuli.group_by("source").len().sort("source")
    yield frame_output(result.stimuli, {**counts, "by_source": markdown_table(sources)}, "concept_stimuli")
    yield frame_output(result.concepts.quarantined, counts, "concept_stimuli_quarantine")


class ActivationsConfig(dg.Config):
    """Layers to capture (empty: the profile's layer), the window in tokens, batch size and pooling."""

    layers: list[int] = []
    max_tokens: int = 32
    batch_size: int = 32
    pooling: str = "mean"


@dg.multi_asset(
    outs={
        "concept_activations": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"pytorch", "polars", "parquet"},
            description="Pooled hidden states per stimulus and layer of the steered model, with model id, layer, "
            "token count and whether the stimulus was truncated to the window.",
        ),
        "concept_activations_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="(stimulus, layer) pairs whose pooled activation had NaN or inf values.",
        ),
    },
    pool="gpu",
)
def concept_activations(
    context: dg.AssetExecutionContext, config: ActivationsConfig, concept_stimuli: pl.DataFrame, scale: ScaleResource
):
    """Run every stimulus through the model with forward hooks on the chosen layers (stopping after the
    deepest); rows in (stimuli x layers) = kept + quarantined."""
    model, tokenizer, model_id = load_model(
        scale.concepts_model, scale.training_device, cache_dir=scale.concepts_model_cache
    )
    layers = config.layers or [scale.concepts_layer]
    context.log.info(f"{concept_stimuli.height} stimuli through {model_id} layers {layers}")
    result = stimulus_activations(
        model, tokenizer, concept_stimuli, layers, model_id, config.max_tokens, config.batch_size, config.pooling
    )
    counts = {
        **result.metadata(),
        "model_id": model_id,
        "layers": str(layers),
        "truncated": int(result.kept["truncated"].sum()),
    }
    yield frame_output(result.kept, counts, "concept_activations")
    yield frame_output(result.quarantined, counts, "concept_activations_quarantine")


class DictionaryConfig(dg.Config):
    """The layer whose activations form the dictionary (-1: the profile's layer), and the held-out top-1
    retrieval the blocking check demands, as a multiple of chance (0 only for untrained test models)."""

    layer: int = -1
    min_top1_over_chance: float = 2.0


@dg.asset(group_name=GROUP, code_version="1", kinds={"numpy", "safetensors"})
def concept_dictionary(
    context: dg.AssetExecutionContext,
    config: DictionaryConfig,
    concept_activations: pl.DataFrame,
    concept_vocabulary: pl.DataFrame,
    scale: ScaleResource,
    artifact_store: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """The concept dictionary: one unit-norm direction per concept (mean of its centered train activations);
    safetensors + concept Parquet + model card; held-out retrieval accuracy recorded."""
    layer = scale.concepts_layer if config.layer < 0 else config.layer
    frame = concept_activations.filter(pl.col("layer") == layer)
    if frame.is_empty():
        raise ValueError(f"concept_activations has no rows for layer {layer}: capture it first")
    model_id = frame["model_id"][0]
    activations = activation_matrix(frame)
    dictionary = build_dictionary(activations, frame, concept_vocabulary, model_id, layer)
    heldout = (frame["split"] == "heldout").to_numpy()
    accuracy = retrieval_accuracy(dictionary, activations[heldout], frame.filter(heldout)["synset_id"].to_list())
    upstream = upstream_version(context, "concept_activations")
    card = {"stimuli_activations_version": upstream, **{f"heldout_{k}": v for k, v in accuracy.items()}}
    files = dictionary_files(dictionary, card)
    metadata = {
        "model_id": model_id,
        "layer": layer,
        "concepts": len(dictionary.directions),
        "unsafe_concepts": len(dictionary.unsafe_atoms()),
        "retrieval_top1": round(accuracy["top1"], 4),
        "retrieval_top5": round(accuracy["top5"], 4),
        "retrieval_chance": round(accuracy["chance"], 4),
        "retrieval_floor": round(config.min_top1_over_chance * accuracy["chance"], 4),
        "heldout_stimuli": accuracy["n"],
    }
    return model_result(context, artifact_store.get_store(), files, metadata)


def upstream_version(context: dg.AssetExecutionContext, key: str) -> str:
    """The artifact version of `key`'s latest materialization (for model cards)."""
    return str(recorded_version(latest_materialization(context.instance, dg.AssetKey(key), None)))
