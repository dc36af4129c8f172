"""Upcycling E -> mE per strategy (a static partition each), then continued pretraining of each result."""

import json
from dataclasses import asdict

import dagster as dg
import polars as pl

from assets.models import load_model_version, model_result
from assets.moe.store import GROUP, HISTORY_FILE, parquet_bytes, work_dir
from assets.moe.training import BASE_KEY, MoETrainingConfig, log_eval, run_metadata
from ops.moe.corpus import split_stream
from ops.moe.selection import check_expansion, parse_strategy, plan_sources
from pipelines.partitions import upcycling_strategies
from resources.artifact_store import ArtifactStoreResource
from resources.scale import ScaleResource
from training.moe.model import checkpoint_files, load_checkpoint
from training.moe.train import curve_frame, train, validation_windows
from training.moe.upcycle import preservation, upcycle

SOURCES_FILE = "sources.json"
PRESERVATION_FILE = "preservation.json"
EXPERT_LOAD_FILE = "expert_load.json"


class UpcycleConfig(dg.Config):
    """Router-row noise (times the source row's RMS), the FC1/FC2 combination rule, the softmax
    temperature and seed, and how many validation windows the function-preservation measure uses."""

    router_noise: float = 0.01
    combine: str = "fc1"
    temperature: float = 0.5
    seed: int = 0
    check_windows: int = 8


@dg.asset(
    partitions_def=upcycling_strategies,
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "safetensors"},
    deps=[BASE_KEY],
)
def upcycled_checkpoints(
    context: dg.AssetExecutionContext,
    config: UpcycleConfig,
    expert_utilities: pl.DataFrame,
    moe_pretraining_corpus: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """The base model grown to mE experts by this partition's strategy: experts (and their Adam
    moments) copied, router rows copied with noise (HF routers have no bias), top-K held; with the
    measured deviation from the base model's output on validation windows."""
    strategy = parse_strategy(context.partition_key)
    _, files = load_model_version(context.instance, artifact_store.get_store(), BASE_KEY)
    base = load_checkpoint(files)
    factor = check_expansion(base.config.num_local_experts, base.config.num_experts_per_tok, scale.moe_expansion_factor)
    sources = plan_sources(
        strategy, expert_utilities, factor, rule=config.combine, temperature=config.temperature, seed=config.seed
    )
    upcycled = upcycle(base, sources, config.router_noise, config.seed)
    windows = validation_windows(
        split_stream(moe_pretraining_corpus, "validation"), base.config.max_position_embeddings, config.check_windows
    )
    measured = preservation(base, upcycled, sources, windows)
    files = checkpoint_files(upcycled) | {
        SOURCES_FILE: json.dumps(sources).encode(),
        PRESERVATION_FILE: json.dumps(asdict(measured)).encode(),
    }
    metadata = {name: round(value, 6) for name, value in asdict(measured).items()}
    metadata |= {
        "experts": upcycled.config.num_local_experts,
        "top_k": upcycled.config.num_experts_per_tok,
        "sources": json.dumps(sources),
    }
    return model_result(context, artifact_store.get_store(), files, metadata)


@dg.asset(
    partitions_def=upcycling_strategies,
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "safetensors"},
    deps=["upcycled_checkpoints"],
)
def upcycling_cpt(
    context: dg.AssetExecutionContext,
    config: MoETrainingConfig,
    moe_pretraining_corpus: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """Continued pretraining of this strategy's upcycled model for `scale.moe_cpt_tokens` tokens with
    its inherited Adam state; the curve tracks validation loss, expert-load entropy and the cosine
    between duplicated experts and their sources (symmetry breaking). Resumes after a kill."""
    version, files = load_model_version(
        context.instance, artifact_store.get_store(), "upcycled_checkpoints", context.partition_key
    )
    upcycled, sources = load_checkpoint(files), json.loads(files[SOURCES_FILE])
    result = train(
        upcycled,
        split_stream(moe_pretraining_corpus, "train"),
        split_stream(moe_pretraining_corpus, "validation"),
        config.settings(scale.moe_cpt_tokens, warm_start=True),
        work_dir(context, version, config.model_dump_json(), str(scale.moe_cpt_tokens)),
        token_offset=int(upcycled.optimizer_meta["tokens"]),
        sources=sources,
        on_eval=log_eval(context, context.partition_key),
    )
    history = curve_frame(result.history, context.partition_key)
    files = checkpoint_files(result.checkpoint) | {
        HISTORY_FILE: parquet_bytes(history),
        SOURCES_FILE: files[SOURCES_FILE],
        EXPERT_LOAD_FILE: json.dumps(result.expert_load).encode(),
    }
    metadata = {
        **run_metadata(result),
        "duplicate_cosine_end": round(result.history[-1].duplicate_cosine, 4),
        "load_entropy_end": round(result.history[-1].load_entropy, 4),
    }
    return model_result(context, artifact_store.get_store(), files, metadata)
