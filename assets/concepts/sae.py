"""The dictionary-initialised TopK SAE on web-corpus activations, and every atom named after a concept."""

import io
import json

import dagster as dg
import numpy as np
import polars as pl
from safetensors.numpy import load, save

from assets.concepts.dictionary import GROUP, upstream_version
from assets.models import load_model_files, model_result
from assets.outputs import frame_output, markdown_table, png_metadata
from ops.common.plots import line_png
from ops.concepts.atoms import annotate_atoms, cluster_nmi
from ops.concepts.dictionary import load_dictionary
from resources.artifact_store import ArtifactStoreResource
from resources.scale import ScaleResource
from training.concepts.activations import load_model, token_activations, token_snippets
from training.concepts.sae import INITS, SaeSettings, atom_drift, latent_codes, load_sae, sae_files, train_both

TOKENS_FILE, ACTIVATIONS_FILE, METRICS_FILE = "web_tokens.parquet", "web_activations.safetensors", "metrics.json"


class DictionarySaeConfig(dg.Config):
    """TopK k (equal L0 for both inits), free latents, steps and documents (0: the profile's), tokens per
    document, the share of documents held out for FVU, seed."""

    k: int = 16
    free_latents: int = 256
    steps: int = 0
    batch_size: int = 256
    docs: int = 0
    max_tokens: int = 64
    heldout_fraction: float = 0.2
    seed: int = 0


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "safetensors"}, deps=["concept_dictionary"], pool="gpu")
def dictionary_sae(
    context: dg.AssetExecutionContext,
    config: DictionarySaeConfig,
    web_docs: pl.LazyFrame,
    scale: ScaleResource,
    artifact_store: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """TopK SAEs (eai-sparsify) on token activations of the web corpus (every shard) at the dictionary's layer:
    decoder rows initialised from the concept dictionary plus free latents, vs the same SAE from random init.
    FVU on held-out documents, L0, dead latents, drift of each atom from its concept."""
    store = artifact_store.get_store()
    dictionary = load_dictionary(load_model_files(context.instance, store, "concept_dictionary"))
    model, tokenizer, model_id = load_model(
        scale.concepts_model, scale.training_device, cache_dir=scale.concepts_model_cache
    )
    dictionary.require(model_id, dictionary.layer)
    limit = config.docs or scale.concepts_sae_docs
    docs = web_docs.select("doc_id", "text").sort("doc_id")
    docs = (docs.head(limit) if limit else docs).collect()
    texts = docs["text"].to_list()
    activations, where = token_activations(model, tokenizer, texts, dictionary.layer, config.max_tokens)
    first_heldout = len(texts) - max(1, round(len(texts) * config.heldout_fraction))
    heldout = np.array([index >= first_heldout for index, _ in where])
    settings = SaeSettings(
        config.k,
        config.free_latents,
        config.steps or scale.concepts_sae_steps,
        config.batch_size,
        seed=config.seed,
        eval_every=max(1, (config.steps or scale.concepts_sae_steps) // 10),
    )
    trained = train_both(activations, heldout, dictionary.directions, settings, context.log.info)
    drift = atom_drift(trained["dictionary"], dictionary.directions)
    tokens = pl.DataFrame(
        {
            "doc_id": [docs["doc_id"][i] for i, _ in where],
            "position": [p for _, p in where],
            "heldout": heldout,
            "snippet": token_snippets(tokenizer, texts, where),
        }
    )
    metrics = {init: {**trained[init].curve[-1], "seconds": trained[init].seconds} for init in INITS}
    metrics["dictionary"]["mean_atom_drift"] = float(drift.mean())
    card = {
        "dictionary_version": upstream_version(context, "concept_dictionary"),
        "model_id": model_id,
        "layer": dictionary.layer,
        "tokens": len(where),
        "documents": len(texts),
    }
    files = {name: data for init in INITS for name, data in sae_files(trained[init], card).items()}
    files[TOKENS_FILE] = _parquet(tokens)
    files[ACTIVATIONS_FILE] = save({"activations": activations.astype(np.float16)})
    files[METRICS_FILE] = json.dumps({**metrics, "curves": {i: trained[i].curve for i in INITS}}, indent=2).encode()
    steps = [str(int(point["step"])) for point in trained["dictionary"].curve]
    chart = line_png(
        steps, {i: [p["fvu"] for p in trained[i].curve] for i in INITS}, f"Held-out FVU at k={config.k}", "FVU"
    )
    return model_result(
        context,
        store,
        files,
        {
            **{
                f"{init}_{name}": round(float(value), 4)
                for init in INITS
                for name, value in metrics[init].items()
                if name != "step"
            },
            "tokens": len(where),
            "heldout_tokens": int(heldout.sum()),
            "model_id": model_id,
            "layer": dictionary.layer,
            "fvu_curve": png_metadata(chart, "held-out FVU vs steps, dictionary vs random init"),
        },
    )


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


@dg.asset(
    group_name=GROUP, code_version="1", kinds={"polars", "parquet"}, deps=["dictionary_sae", "concept_dictionary"]
)
def sae_atom_annotations(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource) -> dg.Output:
    """Every atom of the dictionary-initialised SAE named: dictionary atoms inherit their concept, free atoms get
    the nearest concept (cosine) and their top-activating web snippets; NMI of atom clusters vs lexicographer
    files for both inits."""
    store = artifact_store.get_store()
    dictionary = load_dictionary(load_model_files(context.instance, store, "concept_dictionary"))
    files = load_model_files(context.instance, store, "dictionary_sae")
    activations = load(files[ACTIVATIONS_FILE])["activations"].astype(np.float32)
    snippets = pl.read_parquet(io.BytesIO(files[TOKENS_FILE]))["snippet"].to_list()
    tables, nmi = {}, {}
    for init in INITS:
        sae = load_sae(files, init)
        decoder = sae.W_dec.detach().numpy()
        tables[init] = annotate_atoms(
            decoder,
            dictionary.directions,
            dictionary.concepts,
            latent_codes(sae, activations),
            snippets,
            init == "dictionary",
        )
        nmi[init] = cluster_nmi(decoder, tables[init]["lexname"].to_list())
    annotations = tables["dictionary"]
    origins = annotations.group_by("origin").agg(pl.len(), pl.col("cosine").mean().alias("mean_cosine"))
    return frame_output(
        annotations,
        {
            "origins": markdown_table(origins.sort("origin")),
            **{f"nmi_{init}_init": round(value, 4) for init, value in nmi.items()},
            "free_atoms_mean_cosine": round(
                float(annotations.filter(pl.col("origin") == "free")["cosine"].mean() or 0.0), 4
            ),
        },
    )
