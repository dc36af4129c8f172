"""Blocking checks of the moe artifacts: GE suites on the tables, and the invariants that make the
numbers mean something (no document lost, models load, the operator copies exactly, the report adds up)."""

import json
import math

import dagster as dg
import polars as pl

from assets.models import load_model_version
from assets.moe.store import HISTORY_FILE, read_parquet_file
from assets.moe.training import BASE_KEY
from assets.moe.upcycling import SOURCES_FILE
from assets.quarantine import accounting, recorded_rows_in
from ops.common.expectations import between, columns_exist, in_set, not_null, row_count_between, unique
from ops.common.quarantine import quarantine_suite
from ops.moe.corpus import CORPUS_SCHEMA, REASONS, SPLITS, split_stream
from ops.moe.report import CURVE_SCHEMA, KEEP_E_RUN, REPORT_SCHEMA, SCRATCH_RUN
from ops.moe.selection import MAX_DUPLICATES, METRICS, duplicate_counts, parse_strategy
from pipelines.partitions import upcycling_strategies
from resources.artifact_store import ArtifactStoreResource
from resources.io_manager import latest_materialization
from resources.quality import QualityResource
from training.moe.model import load_checkpoint
from training.moe.train import validation_windows
from training.moe.upcycle import copy_invariants, preservation

# Top-1 routing with the router noise removed must reproduce the base model's logits to float round-off.
TOP1_EXACT_TOLERANCE = 1e-4


def _curve_suite() -> list:
    return [
        *columns_exist(list(CURVE_SCHEMA)),
        not_null("val_loss"),
        between("val_loss", 0.0, None),
        between("load_entropy", 0.0, 1.0),
        between("tokens", 0, None),
    ]


def _curve_invariants(curve: pl.DataFrame) -> dict[str, bool]:
    finite = curve["val_loss"].is_finite().all()
    ordered = all(curve.group_by("run").agg(pl.col("tokens").diff().drop_nulls().min().fill_null(1) > 0)["tokens"])
    return {"validation losses finite": bool(finite), "tokens increase along each curve": bool(ordered)}


@dg.asset_check(
    asset="moe_pretraining_corpus",
    blocking=True,
    additional_ins={"moe_corpus_quarantine": dg.AssetIn()},
    description="Unique documents, a split each, long enough; rows in = kept + quarantined; both splits non-empty.",
)
def moe_pretraining_corpus_valid(
    context: dg.AssetCheckExecutionContext,
    moe_pretraining_corpus: pl.DataFrame,
    moe_corpus_quarantine: pl.DataFrame,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    event = latest_materialization(context.instance, dg.AssetKey("moe_pretraining_corpus"), None)
    accounted, counts = accounting(
        recorded_rows_in(context, "moe_pretraining_corpus"), moe_pretraining_corpus.height, moe_corpus_quarantine.height
    )
    min_tokens = event.metadata["min_tokens"].value if event is not None else 1
    suite = [
        *columns_exist([c for c in CORPUS_SCHEMA if c != "tokens"]),
        unique("doc_id"),
        in_set("split", SPLITS),
        between("n_tokens", min_tokens, None),
    ]
    splits = set(moe_pretraining_corpus["split"].to_list())
    return quality.validate(moe_pretraining_corpus.drop("tokens"), "moe_pretraining_corpus", suite).to_check_result(
        extra={
            **accounted,
            "train and validation both non-empty": splits == set(SPLITS),
            "n_tokens == length of tokens": bool(
                (moe_pretraining_corpus["tokens"].list.len() == moe_pretraining_corpus["n_tokens"]).all()
            ),
        },
        metadata=counts,
    )


@dg.asset_check(
    asset="moe_corpus_quarantine",
    blocking=True,
    description="Every quarantined document has an id, a known reason code and a detail.",
)
def moe_corpus_quarantine_valid(moe_corpus_quarantine: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [*quarantine_suite(REASONS), unique("record_id")]
    return quality.validate(moe_corpus_quarantine, "moe_corpus_quarantine", suite).to_check_result()


@dg.asset_check(
    asset=BASE_KEY,
    blocking=True,
    description="The base loads as a Mixtral MoE with Adam state; its "
    "validation loss is finite and fell during training.",
)
def moe_base_checkpoint_valid(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource, quality: QualityResource
) -> dg.AssetCheckResult:
    _, files = load_model_version(context.instance, artifact_store.get_store(), BASE_KEY)
    base, curve = load_checkpoint(files), read_parquet_file(files, HISTORY_FILE)
    base.model()  # raises if the weights do not fit the config
    named = {name for name, _ in base.model().named_parameters()}
    return quality.validate(curve, "moe_base_checkpoint_curve", _curve_suite()).to_check_result(
        extra={
            **_curve_invariants(curve),
            "validation loss fell": curve["val_loss"][-1] < curve["val_loss"][0],
            "Adam moments for every parameter": named == set(base.exp_avg) == set(base.exp_avg_sq),
        },
        metadata={
            "initial_val_loss": round(curve["val_loss"][0], 4),
            "final_val_loss": round(curve["val_loss"][-1], 4),
        },
    )


@dg.asset_check(
    asset="expert_utilities",
    blocking=True,
    description="One row per layer, expert and FC matrix; every utility finite and >= 0.",
)
def expert_utilities_valid(
    context: dg.AssetCheckExecutionContext,
    expert_utilities: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    config = load_checkpoint(load_model_version(context.instance, artifact_store.get_store(), BASE_KEY)[1]).config
    expected = config.num_hidden_layers * config.num_local_experts * 2
    suite = [
        *columns_exist(["layer", "expert", "fc", *METRICS]),
        in_set("fc", ["fc1", "fc2"]),
        *[between(metric, 0.0, None) for metric in METRICS],
        *[not_null(metric) for metric in METRICS],
    ]
    finite = all(expert_utilities[metric].is_finite().all() for metric in METRICS)
    return quality.validate(expert_utilities, "expert_utilities", suite).to_check_result(
        extra={"rows == layers x experts x 2 FC": expert_utilities.height == expected, "utilities finite": finite},
    )


@dg.asset_check(
    asset="upcycled_checkpoints",
    blocking=True,
    partitions_def=upcycling_strategies,
    additional_ins={"moe_pretraining_corpus": dg.AssetIn()},
    description="Function preservation before any training (top-1 routing exact to round-off, the held "
    "top-K deviation measured), exact copies of weights and Adam state, and at most 3 duplicates per expert.",
)
def upcycled_checkpoints_valid(
    context: dg.AssetCheckExecutionContext,
    moe_pretraining_corpus: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    quality: QualityResource,
) -> dg.AssetCheckResult:
    store, strategy = artifact_store.get_store(), parse_strategy(context.partition_key)
    base = load_checkpoint(load_model_version(context.instance, store, BASE_KEY)[1])
    _, files = load_model_version(context.instance, store, "upcycled_checkpoints", context.partition_key)
    upcycled, sources = load_checkpoint(files), json.loads(files[SOURCES_FILE])
    windows = validation_windows(
        split_stream(moe_pretraining_corpus, "validation"), base.config.max_position_embeddings, 8
    )
    measured = preservation(base, upcycled, sources, windows)
    counts = duplicate_counts(sources)
    table = pl.DataFrame(
        [{"layer": layer, "expert": e, "duplicates": n} for layer, row in enumerate(counts) for e, n in enumerate(row)]
    )
    capped = strategy.selection == "uniform" or max(max(row) for row in counts) <= MAX_DUPLICATES
    return quality.validate(table, "upcycled_checkpoints_duplicates", [between("duplicates", 0, None)]).to_check_result(
        extra={
            **copy_invariants(base, upcycled, sources),
            f"top-1 output equals the base's (max |diff| <= {TOP1_EXACT_TOLERANCE})": measured.top1_exact_max_abs_diff
            <= TOP1_EXACT_TOLERANCE,
            "held top-K loss finite": math.isfinite(measured.upcycled_loss),
            f"at most {MAX_DUPLICATES} duplicates per expert": capped,
        },
        metadata={
            "top1_exact_max_abs_diff": measured.top1_exact_max_abs_diff,
            "top1_noisy_max_abs_diff": measured.top1_noisy_max_abs_diff,
            "topk_max_abs_diff": measured.topk_max_abs_diff,
            "source_loss": round(measured.source_loss, 4),
            "upcycled_loss": round(measured.upcycled_loss, 4),
            "duplicates": json.dumps(counts),
        },
    )


@dg.asset_check(
    asset="upcycling_cpt",
    blocking=True,
    partitions_def=upcycling_strategies,
    description="The continued model loads with mE experts; its curve is finite and starts at the upcycling point.",
)
def upcycling_cpt_valid(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource, quality: QualityResource
) -> dg.AssetCheckResult:
    store = artifact_store.get_store()
    _, upcycled_files = load_model_version(context.instance, store, "upcycled_checkpoints", context.partition_key)
    _, files = load_model_version(context.instance, store, "upcycling_cpt", context.partition_key)
    trained, curve = load_checkpoint(files), read_parquet_file(files, HISTORY_FILE)
    trained.model()  # raises if the weights do not fit the config
    upcycled = load_checkpoint(upcycled_files)
    return quality.validate(curve, "upcycling_cpt_curve", _curve_suite()).to_check_result(
        extra={
            **_curve_invariants(curve),
            "curve starts at the upcycling point": int(curve["tokens"][0]) == int(upcycled.optimizer_meta["tokens"]),
            "expert count kept": trained.config.num_local_experts == upcycled.config.num_local_experts,
        },
    )


@dg.asset_check(
    asset="upcycling_baselines",
    blocking=True,
    description="Both reference runs present with finite curves; the scratch model has m x E experts.",
)
def upcycling_baselines_valid(
    context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource, quality: QualityResource
) -> dg.AssetCheckResult:
    _, files = load_model_version(context.instance, artifact_store.get_store(), "upcycling_baselines")
    curve = read_parquet_file(files, HISTORY_FILE)
    suite = [*_curve_suite(), in_set("run", [KEEP_E_RUN, SCRATCH_RUN])]
    keep = load_checkpoint(
        {name.removeprefix(f"{KEEP_E_RUN}."): data for name, data in files.items() if name.startswith(f"{KEEP_E_RUN}.")}
    )
    scratch = load_checkpoint(
        {
            name.removeprefix(f"{SCRATCH_RUN}."): data
            for name, data in files.items()
            if name.startswith(f"{SCRATCH_RUN}.")
        }
    )
    return quality.validate(curve, "upcycling_baselines_curve", suite).to_check_result(
        extra={
            **_curve_invariants(curve),
            "both runs present": set(curve["run"].to_list()) == {KEEP_E_RUN, SCRATCH_RUN},
            "scratch has a multiple of E experts": scratch.config.num_local_experts % keep.config.num_local_experts == 0
            and scratch.config.num_local_experts > keep.config.num_local_experts,
        },
    )


@dg.asset_check(
    asset="upcycling_report",
    blocking=True,
    description="One row per strategy and baseline; finite losses; the baselines close 0 and 1 of the gap.",
)
def upcycling_report_valid(upcycling_report: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    runs = [*upcycling_strategies.get_partition_keys(), KEEP_E_RUN, SCRATCH_RUN]
    suite = [
        *columns_exist(list(REPORT_SCHEMA)),
        unique("run"),
        in_set("run", runs),
        row_count_between(len(runs), len(runs)),
        not_null("final_val_loss"),
    ]
    by_run = {row["run"]: row for row in upcycling_report.iter_rows(named=True)}
    keep, scratch = by_run.get(KEEP_E_RUN, {}), by_run.get(SCRATCH_RUN, {})
    defined = scratch.get("gap_closure") == scratch.get("gap_closure")  # NaN when scratch did not beat E
    return quality.validate(upcycling_report, "upcycling_report", suite).to_check_result(
        extra={
            "final losses finite": bool(upcycling_report["final_val_loss"].is_finite().all()),
            "gap closure of the baselines is 0 and 1 (or undefined)": not defined
            or (abs(keep["gap_closure"]) < 1e-9 and abs(scratch["gap_closure"] - 1) < 1e-9),
        },
    )
