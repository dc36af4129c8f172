"""Concept-dictionary figures with the packaged SmolLM2-135M on this CPU: cost, SAE init, atom NMI, steering.

The questions it answers:
1. cost: stimulus activations/s (batched, forward stopped after the hooked layer) and SAE training steps/s.
2. dictionary: held-out top-1/top-5 retrieval of the concept directions vs chance.
3. SAE: held-out FVU vs training steps at equal L0 (the same TopK k) for the dictionary-initialised SAE
   (concept atoms + free latents) vs the same SAE from random init, on token activations of the bundled
   C4 sample at the dictionary's layer; dead latents and mean atom drift at the end.
4. NMI between KMeans clusters of atoms (decoder rows) and the WordNet lexicographer files of the concepts
   the atoms are named after (inherited, or nearest concept for free / random-init atoms).
5. steering: harm vs utility over removal strength for elastic-net removal of unsafe concepts (PaCE),
   mean-difference projection and ablation of the SAE latents that inherit unsafe concepts. Harm is the mean
   per-token log-probability of JBB's affirmative target ("Sure, here is ...") after each harmful prompt
   (a compliance score that needs no judge; the asset `concept_steering_eval` uses the rubric judge);
   utility cost is the mean KL from the unsteered model on the benign prompts.
SmolLM2-135M's own safety behaviour is weak: the figures check the pipeline and compare methods on one
small model; they are not evidence about steering large models.

    python -m benchmarks.concepts [--concepts 60] [--docs 16] [--steps 60] [--prompts 4] [--model PATH]

Prints one JSON object per line and writes them all to `benchmarks/results/concepts.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from benchmarks.embedding_throughput import emit, machine_info, peak_rss_mib
from ops.concepts.atoms import annotate_atoms, cluster_nmi
from ops.concepts.decomposition import ElasticNetSpec, mean_difference_direction, project_out, remove_concepts
from ops.concepts.dictionary import build_dictionary, retrieval_accuracy
from ops.concepts.safety import read_safety_prompts
from ops.concepts.stimuli import StimulusRules, build_stimuli
from ops.concepts.vocabulary import read_wordnet, select_vocabulary
from training.concepts.activations import activation_matrix, load_model, stimulus_activations, token_activations
from training.concepts.sae import INITS, SaeSettings, ablate_latents, atom_drift, latent_codes, train_both
from training.concepts.steering import target_logprob, utility

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "concepts.json"
WORDNET = REPO / "samples" / "wordnet_nouns" / "wordnet_nouns.jsonl.gz"
SAFETY = REPO / "samples" / "safety_prompts"
WEB = REPO / "samples" / "web_docs" / "c4_en_sample_1000.jsonl"


def web_texts(count: int) -> list[str]:
    """The first `count` documents of the bundled C4 sample."""
    with WEB.open(encoding="utf-8") as handle:
        return [json.loads(next(handle))["text"] for _ in range(count)]


def nmi_by_init(trained: dict, directions: np.ndarray, concepts: pl.DataFrame) -> dict[str, float]:
    """NMI of atom clusters vs lexicographer files of the atoms' concepts, per init."""
    result = {}
    for init in INITS:
        decoder = trained[init].sae.W_dec.detach().numpy()
        table = annotate_atoms(decoder, directions, concepts, np.zeros((0, len(decoder))), [], init == "dictionary")
        result[init] = cluster_nmi(decoder, table["lexname"].to_list())
    return result


def steering_curve(model, tokenizer, dictionary, sae, prompts: pl.DataFrame, strengths, layer: int) -> list[dict]:
    """Harm (target log-prob on harmful prompts) and KL on benign prompts per method and strength."""
    harmful, benign = prompts.filter(pl.col("kind") == "harmful"), prompts.filter(pl.col("kind") == "benign")
    unsafe = dictionary.unsafe_atoms()
    direction = mean_difference_direction(dictionary.directions, unsafe)
    spec = ElasticNetSpec()
    methods = {
        "elastic_net": lambda s: lambda h: remove_concepts(h, dictionary.directions, unsafe, spec, s, dictionary.mean),
        "mean_difference": lambda s: lambda h: project_out(h, direction, s),
        "sae_latents": lambda s: ablate_latents(sae, unsafe, s),
    }
    rows = []
    for method, make in methods.items():
        for strength in strengths:
            steerer = make(strength) if strength > 0 else None
            started = time.perf_counter()
            harm = target_logprob(model, tokenizer, harmful["prompt"], harmful["target"], layer, steerer)
            kl = utility(model, tokenizer, benign["prompt"].to_list(), layer, steerer).kl
            rows.append(
                {
                    "method": method,
                    "strength": strength,
                    "harm_target_logprob": round(harm, 4),
                    "benign_kl": round(kl, 5),
                    "seconds": round(time.perf_counter() - started, 2),
                }
            )
    return rows


def run_benchmark(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every part in order, one process (the model is loaded once)."""
    torch.set_num_threads(args.threads)
    records: list[dict[str, Any]] = []
    emit(machine_info(), records)
    started = time.perf_counter()
    model, tokenizer, model_id = load_model(args.model, cache_dir=str(args.model_cache))
    emit({"record": "load", "model_id": model_id, "seconds": round(time.perf_counter() - started, 1)}, records)
    layer = min(args.layer, len(model.model.layers) - 1)

    vocabulary = select_vocabulary(read_wordnet(WORDNET), args.concepts, unsafe_per_root=args.unsafe_per_root)
    stimuli = build_stimuli(vocabulary, StimulusRules(max_stimuli=8)).stimuli
    started = time.perf_counter()
    result = stimulus_activations(model, tokenizer, stimuli, [layer], model_id, args.max_tokens, args.batch_size)
    seconds = time.perf_counter() - started
    emit(
        {
            "record": "activations",
            "stimuli": stimuli.height,
            "seconds": round(seconds, 2),
            "activations_per_s": round(stimuli.height / seconds, 2),
            "quarantined": result.quarantined.height,
        },
        records,
    )

    activations = activation_matrix(result.kept)
    dictionary = build_dictionary(activations, result.kept, vocabulary, model_id, layer)
    heldout = (result.kept["split"] == "heldout").to_numpy()
    accuracy = retrieval_accuracy(dictionary, activations[heldout], result.kept.filter(heldout)["synset_id"].to_list())
    emit(
        {
            "record": "dictionary",
            "concepts": len(dictionary.directions),
            "unsafe_concepts": len(dictionary.unsafe_atoms()),
            **{k: round(v, 4) for k, v in accuracy.items()},
        },
        records,
    )

    texts = web_texts(args.docs)
    tokens, where = token_activations(model, tokenizer, texts, layer, args.doc_tokens)
    token_heldout = np.array([index >= len(texts) - max(1, len(texts) // 5) for index, _ in where])
    settings = SaeSettings(
        k=args.k,
        free_latents=args.free_latents,
        steps=args.steps,
        batch_size=args.sae_batch,
        eval_every=max(1, args.steps // 10),
    )
    trained = train_both(tokens, token_heldout, dictionary.directions, settings)
    for init in INITS:
        emit(
            {
                "record": "sae",
                "init": init,
                "tokens": int((~token_heldout).sum()),
                "k": args.k,
                "curve": [{k: round(v, 4) for k, v in point.items()} for point in trained[init].curve],
                "steps_per_s": round(args.steps / trained[init].seconds, 2),
            },
            records,
        )
    drift = atom_drift(trained["dictionary"], dictionary.directions)
    nmi = nmi_by_init(trained, dictionary.directions, dictionary.concepts)
    emit(
        {
            "record": "atoms",
            "mean_atom_drift": round(float(drift.mean()), 4),
            "nmi_dictionary_init": round(nmi["dictionary"], 4),
            "nmi_random_init": round(nmi["random"], 4),
            "dictionary_init_fired": round(
                float((latent_codes(trained["dictionary"].sae, tokens) > 0).any(0).mean()), 4
            ),
        },
        records,
    )

    prompts = read_safety_prompts(SAFETY, args.prompts)
    curve = steering_curve(model, tokenizer, dictionary, trained["dictionary"].sae, prompts, args.strengths, layer)
    for row in curve:
        emit({"record": "steering", **row}, records)
    emit(
        {
            "record": "summary",
            "peak_rss_mib": peak_rss_mib(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        records,
    )
    return records


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help='"" = packaged SmolLM2-135M GGUF; else a folder or HF id')
    parser.add_argument("--model-cache", type=Path, default=REPO / ".assay" / "cache" / "models")
    parser.add_argument("--layer", type=int, default=6)
    parser.add_argument("--concepts", type=int, default=60)
    parser.add_argument("--unsafe-per-root", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--docs", type=int, default=16)
    parser.add_argument("--doc-tokens", type=int, default=64)
    parser.add_argument("--k", type=int, default=16)
    parser.add_argument("--free-latents", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--sae-batch", type=int, default=256)
    parser.add_argument("--prompts", type=int, default=4)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    records = run_benchmark(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
