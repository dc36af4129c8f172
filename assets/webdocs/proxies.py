"""Proxy LMs of the filter search: one partition per filter, trained on what the filter keeps."""

from collections.abc import Callable

import dagster as dg
import polars as pl
from upath import UPath

from assets.models import files_version
from assets.outputs import frame_output, png_metadata
from ops.common.plots import line_png
from ops.common.versioning import combine_versions
from ops.webdocs.filter_search import RUN_SCHEMA
from ops.webdocs.filters import kept_ids, label_table, to_spec
from ops.webdocs.proxy_data import contaminated_documents, target_sets, training_texts
from pipelines.partitions import curation_compounds, curation_filters
from resources.artifact_store import ArtifactStore, ArtifactStoreResource
from resources.scale import ScaleResource
from training.webdocs.proxy_lm import CheckpointIO, ProxyConfig, ProxyResult, model_files, train_seeds

GROUP = "webdocs"
CHECKPOINTS_KEY = ["proxy_checkpoints"]
SCRATCH = "_scratch"
ALL_SHARDS = dg.AssetIn(partition_mapping=dg.AllPartitionMapping())


class ProxyRunConfig(dg.Config):
    """Where the fixed target sets are (reasoning, code, knowledge; see its SOURCE.md)."""

    targets_folder: str = "samples/proxy_targets"


def proxy_config(scale: ScaleResource) -> ProxyConfig:
    """The profile's proxy shape and token budget."""
    return ProxyConfig(hidden=scale.proxy_hidden, layers=scale.proxy_layers, token_budget=scale.proxy_token_budget)


def _scratch_path(store: ArtifactStore, asset: str, partition: str, run_key: str, seed: int) -> UPath:
    return store.root / SCRATCH / asset / partition / f"{run_key}-seed{seed}.safetensors"


def _scratch(store: ArtifactStore, asset: str, partition: str, run_key: str) -> Callable[[int], CheckpointIO]:
    """Per seed, the resumable checkpoint of this run (keyed by data + config) in the store's scratch area;
    written to a partial file and renamed, so a kill mid-write leaves the previous checkpoint intact."""

    def checkpoint(seed: int) -> CheckpointIO:
        path = _scratch_path(store, asset, partition, run_key, seed)

        def save(payload: bytes) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            partial.write_bytes(payload)
            partial.rename(path)

        return CheckpointIO(load=lambda: path.read_bytes() if path.exists() else None, save=save)

    return checkpoint


def _rows(name: str, results: list[ProxyResult], kept: int, contaminated: int, version: str) -> pl.DataFrame:
    rows = [
        {
            "filter": name,
            "seed": result.config.seed,
            "target": target,
            "bits_per_byte": round(value, 6),
            "tokens_trained": result.tokens_trained,
            "kept_docs": kept,
            "parameters": result.parameters,
            "contaminated_docs": contaminated,
            "checkpoint_version": version,
        }
        for result in results
        for target, value in sorted(result.bits_per_byte.items())
    ]
    return pl.DataFrame(rows, schema=RUN_SCHEMA)


def run_filter_proxies(
    context: dg.AssetExecutionContext,
    config: ProxyRunConfig,
    filters: pl.DataFrame,
    docs: pl.DataFrame,
    labels: pl.LazyFrame,
    store: ArtifactStore,
    scale: ScaleResource,
) -> dg.Output:
    """Train this partition's filter's proxies (every seed), store weights + curves, return the bpb table."""
    name = context.partition_key
    row = filters.filter(pl.col("name") == name)
    if row.is_empty():
        raise ValueError(f"filter {name!r} is not in the current filter table: rematerialize it or drop the partition")
    spec = to_spec(row.row(0, named=True))
    ids = kept_ids(label_table(labels.collect(), docs["doc_id"]), spec)
    if not ids:
        raise ValueError(f"filter {name!r} keeps 0 documents: it is recorded, not trained")
    texts = training_texts(docs, ids, seed=0)
    targets = target_sets(config.targets_folder, scale.proxy_target_bytes)
    proxy = proxy_config(scale)
    seeds = list(range(scale.proxy_seeds))
    run_key = combine_versions([*ids, repr(proxy), *(f"{k}:{len(v)}" for k, v in targets.items())])
    asset = context.asset_key.path[-1]
    results = train_seeds(texts, targets, proxy, seeds, _scratch(store, asset, name, run_key), log=context.log.info)
    files = {f"seed{r.config.seed}.{file}": payload for r in results for file, payload in model_files(r).items()}
    version = files_version(files)
    store.write_files(CHECKPOINTS_KEY, f"{asset}.{name}", version, files, provenance={"run_id": context.run_id})
    for seed in seeds:  # the stored version supersedes the resumable checkpoints
        _scratch_path(store, asset, name, run_key, seed).unlink(missing_ok=True)
    seconds = sum(r.train_seconds for r in results)
    curve = {f"seed {r.config.seed} {t}": [p[f"bpb_{t}"] for p in r.curve] for r in results for t in targets}
    steps = [str(p["tokens"]) for p in results[0].curve]
    return frame_output(
        _rows(name, results, len(ids), contaminated_documents(texts, targets), version),
        {
            "expression": spec.expression,
            "kept_docs": len(ids),
            "seeds": len(seeds),
            "parameters": results[0].parameters,
            "tokens_per_run": results[0].tokens_trained,
            "resumed_from_steps": ", ".join(str(r.resumed_from_step) for r in results),
            "mean_bits_per_byte": round(
                sum(sum(r.bits_per_byte.values()) / len(targets) for r in results) / len(results), 4
            ),
            "tokens_per_s": round(sum(r.tokens_trained for r in results if r.train_seconds) / seconds, 1)
            if seconds
            else 0.0,
            "checkpoint": dg.MetadataValue.path(str(store.folder(CHECKPOINTS_KEY, f"{asset}.{name}", version))),
            "curves": png_metadata(
                line_png(steps, curve, f"proxy bits per byte: {name}", "bits per byte"), "proxy curves"
            ),
        },
    )


@dg.asset(
    partitions_def=curation_filters,
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "safetensors"},
    ins={"web_doc_labels": ALL_SHARDS},
    backfill_policy=dg.BackfillPolicy.multi_run(1),
)
def proxy_runs(
    context: dg.AssetExecutionContext,
    config: ProxyRunConfig,
    filter_candidates: pl.DataFrame,
    web_docs_dedup: pl.DataFrame,
    web_doc_labels: pl.LazyFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.Output:
    """Pass 1 of the filter search, one partition per filter or baseline: a tiny byte-level Llama trained
    from scratch on a fixed token budget of the deduplicated documents the filter keeps, for each seed;
    bits per byte on the reasoning, code and knowledge target sets. Weights and curves go to the store."""
    store = artifact_store.get_store()
    return run_filter_proxies(context, config, filter_candidates, web_docs_dedup, web_doc_labels, store, scale)


@dg.asset(
    partitions_def=curation_compounds,
    group_name=GROUP,
    code_version="1",
    kinds={"pytorch", "safetensors"},
    ins={"web_doc_labels": ALL_SHARDS},
    backfill_policy=dg.BackfillPolicy.multi_run(1),
)
def compound_proxy_runs(
    context: dg.AssetExecutionContext,
    config: ProxyRunConfig,
    compound_filters: pl.DataFrame,
    web_docs_dedup: pl.DataFrame,
    web_doc_labels: pl.LazyFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.Output:
    """Pass 2 of the filter search: the same proxy training as `proxy_runs`, one partition per AND / OR
    compound of pass 1's top filters (and each random baseline at a yield pass 1 did not train)."""
    store = artifact_store.get_store()
    return run_filter_proxies(context, config, compound_filters, web_docs_dedup, web_doc_labels, store, scale)
