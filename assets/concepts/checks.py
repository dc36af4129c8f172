"""Blocking checks on the concept artifacts: nothing lost, no NaN, unit-norm directions one per concept that
retrieve held-out stimuli better than chance, steering counts that add up, SAEs that load with sane metrics."""

import dagster as dg
import numpy as np
import polars as pl

from assets.models import load_model_files
from assets.quarantine import accounting, recorded_rows_in
from ops.common.expectations import between, columns_exist, in_set, not_null, unique
from ops.common.quarantine import quarantine_suite
from ops.concepts.atoms import ANNOTATIONS_SCHEMA, ORIGINS
from ops.concepts.dictionary import load_dictionary, norm_violations
from ops.concepts.stimuli import SOURCES, SPLITS, STIMULI_REASONS, STIMULI_SCHEMA
from ops.concepts.vocabulary import VOCABULARY_SCHEMA
from ops.rubrics.grading import GRADE_STATUSES
from resources.artifact_store import ArtifactStoreResource
from resources.io_manager import latest_materialization
from resources.quality import QualityResource
from training.concepts.activations import ACTIVATION_REASONS, ACTIVATIONS_SCHEMA
from training.concepts.sae import INITS, load_sae

DICTIONARY_SOUND = "unit norms, no NaN, one direction per concept, held-out retrieval at least the floor"
STEERING_COMPLETE = "one answer per (method, prompt); every answer graded or marked ungraded; finite KL"
SAE_SOUND = "both SAEs load; finite FVU; L0 <= k; unit-norm decoder rows"


def _problems_result(name: str, problems: list[str], metadata: dict) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems, metadata={name: not problems, "problems": "; ".join(problems) or "none", **metadata}
    )


@dg.asset_check(asset="concept_vocabulary", blocking=True, description="Unique synset ids with lemma and gloss.")
def concept_vocabulary_valid(concept_vocabulary: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [*columns_exist(list(VOCABULARY_SCHEMA)), unique("synset_id"), not_null("lemma"), not_null("lexname")]
    return quality.validate(concept_vocabulary, "concept_vocabulary", suite).to_check_result()


@dg.asset_check(
    asset="concept_stimuli",
    blocking=True,
    additional_ins={"concept_stimuli_quarantine": dg.AssetIn()},
    description="Unique stimuli of known sources and splits; concepts in = concepts kept + quarantined.",
)
def concept_stimuli_valid(
    context: dg.AssetCheckExecutionContext,
    concept_stimuli: pl.DataFrame,
    concept_stimuli_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    kept = concept_stimuli["synset_id"].n_unique()
    accounted, counts = accounting(
        recorded_rows_in(context, "concept_stimuli"), kept, concept_stimuli_quarantine.height
    )
    suite = [
        *columns_exist(list(STIMULI_SCHEMA)),
        unique("stimulus_id"),
        not_null("text"),
        in_set("source", SOURCES),
        in_set("split", SPLITS),
    ]
    return quality.validate(concept_stimuli, "concept_stimuli", suite).to_check_result(
        extra=accounted, metadata={**counts, "counted_in": "concepts"}
    )


@dg.asset_check(
    asset="concept_activations",
    blocking=True,
    additional_ins={"concept_activations_quarantine": dg.AssetIn()},
    description="One finite activation per (stimulus, layer) kept; (stimulus, layer) pairs in = kept + quarantined.",
)
def concept_activations_valid(
    context: dg.AssetCheckExecutionContext,
    concept_activations: pl.DataFrame,
    concept_activations_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    rows_in = recorded_rows_in(context, "concept_activations")
    accounted, counts = accounting(rows_in, concept_activations.height, concept_activations_quarantine.height)
    finite = bool(np.isfinite(np.asarray(concept_activations["activation"].to_list(), dtype=np.float32)).all())
    duplicates = concept_activations.select("stimulus_id", "layer").is_duplicated().sum()
    suite = [*columns_exist(list(ACTIVATIONS_SCHEMA)), not_null("model_id"), between("n_tokens", 1, None)]
    return quality.validate(concept_activations, "concept_activations", suite).to_check_result(
        extra={
            **accounted,
            "every kept activation is finite": finite,
            "one row per (stimulus, layer)": duplicates == 0,
        },
        metadata=counts,
    )


@dg.asset_check(asset="concept_dictionary", blocking=True, description=f"{DICTIONARY_SOUND}.")
def concept_dictionary_sound(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource
) -> dg.AssetCheckResult:
    dictionary = load_dictionary(load_model_files(context.instance, artifact_store.get_store(), "concept_dictionary"))
    event = latest_materialization(context.instance, dg.AssetKey("concept_dictionary"), None)
    top1 = event.metadata["retrieval_top1"].value if event is not None else float("nan")
    floor = event.metadata["retrieval_floor"].value if event is not None else float("nan")
    problems = []
    if not np.isfinite(dictionary.directions).all() or not np.isfinite(dictionary.mean).all():
        problems.append("NaN or inf in the directions or the mean")
    if (bad := norm_violations(dictionary.directions)) > 0:
        problems.append(f"{bad} directions are not unit-norm")
    concepts = dictionary.concepts
    if concepts["synset_id"].n_unique() != concepts.height or concepts.height != len(dictionary.directions):
        problems.append(f"{concepts.height} concept rows for {len(dictionary.directions)} directions (or repeats)")
    if not top1 >= floor:
        problems.append(f"held-out retrieval top-1 {top1} is below the floor {floor} (a multiple of chance)")
    return _problems_result(DICTIONARY_SOUND, problems, {"retrieval_top1": top1, "concepts": concepts.height})


@dg.asset_check(asset="concept_steering_eval", blocking=True, description=f"{STEERING_COMPLETE}.")
def concept_steering_eval_complete(context: dg.AssetCheckExecutionContext, concept_steering_eval: pl.DataFrame):
    event = latest_materialization(context.instance, dg.AssetKey("concept_steering_eval"), None)
    problems = []
    per_prompt = concept_steering_eval.group_by("prompt_id").len()["len"].unique().to_list()
    if len(per_prompt) != 1 or per_prompt[0] != concept_steering_eval["method"].n_unique():
        problems.append(f"answers per prompt {per_prompt} differ from the number of methods")
    if not concept_steering_eval["status"].is_in(list(GRADE_STATUSES)).all():
        problems.append("answers with an unknown grade status")
    kls = {k: v.value for k, v in (event.metadata.items() if event else []) if k.endswith("_kl")}
    if not kls or not all(np.isfinite(v) and v >= -1e-6 for v in kls.values()):
        problems.append(f"KL not finite and non-negative: {kls}")
    return _problems_result(STEERING_COMPLETE, problems, {"answers": concept_steering_eval.height})


@dg.asset_check(asset="dictionary_sae", blocking=True, description=f"{SAE_SOUND}.")
def dictionary_sae_sound(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource
) -> dg.AssetCheckResult:
    files = load_model_files(context.instance, artifact_store.get_store(), "dictionary_sae")
    event = latest_materialization(context.instance, dg.AssetKey("dictionary_sae"), None)
    problems = []
    for init in INITS:
        sae = load_sae(files, init)
        norms = sae.W_dec.detach().norm(dim=1).numpy()
        if not np.allclose(norms, 1.0, atol=1e-3):
            problems.append(f"{init}: decoder rows not unit-norm")
        fvu = event.metadata[f"{init}_fvu"].value if event else float("nan")
        l0 = event.metadata[f"{init}_l0"].value if event else float("nan")
        if not np.isfinite(fvu) or not l0 <= sae.cfg.k:
            problems.append(f"{init}: FVU {fvu}, L0 {l0} (k={sae.cfg.k})")
    return _problems_result(SAE_SOUND, problems, {})


@dg.asset_check(asset="sae_atom_annotations", blocking=True, description="Every atom named, once, known origin.")
def sae_atom_annotations_valid(sae_atom_annotations: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [
        *columns_exist(list(ANNOTATIONS_SCHEMA)),
        unique("atom"),
        not_null("synset_id"),
        in_set("origin", ORIGINS),
        between("cosine", -1.0001, 1.0001),
    ]
    return quality.validate(sae_atom_annotations, "sae_atom_annotations", suite).to_check_result()


def _quarantine_check(asset: str, reasons: tuple[str, ...]) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset, name=f"{asset}_valid", blocking=True, description="Quarantine rows with a known reason."
    )
    def check(frame: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
        suite = quarantine_suite(reasons)
        return quality.validate(frame, asset, suite).to_check_result()

    return check


quarantine_checks = [
    _quarantine_check("concept_stimuli_quarantine", STIMULI_REASONS),
    _quarantine_check("concept_activations_quarantine", ACTIVATION_REASONS),
]
