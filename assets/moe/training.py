"""The E-expert base MoE, its expert utilities, and the two reference runs the upcycled models are judged by."""

import copy
import json
from collections.abc import Callable

import dagster as dg
import polars as pl

from assets.models import load_model_version, model_result
from assets.moe.store import GROUP, HISTORY_FILE, parquet_bytes, work_dir
from assets.outputs import frame_output, markdown_table
from ops.common.versioning import frame_version
from ops.moe.corpus import split_stream
from ops.moe.report import BASE_RUN, KEEP_E_RUN, SCRATCH_RUN
from ops.moe.selection import check_expansion
from resources.artifact_store import ArtifactStoreResource
from resources.scale import ScaleResource
from training.moe import utilities as moe_utilities
from training.moe.model import MoEShape, checkpoint_files, load_checkpoint
from training.moe.train import EvalPoint, TrainResult, TrainSettings, batch_at, curve_frame, fresh_checkpoint, train

BASE_KEY = "moe_base_checkpoint"


class MoETrainingConfig(dg.Config):
    """Optimiser settings shared by the moe training runs (Adam, constant LR after a warm-up from scratch)."""

    batch_size: int = 8
    lr: float = 3e-3
    warmup_steps: int = 20
    eval_every: int = 25
    eval_windows: int = 16
    seed: int = 0
    threads: int = 1

    def settings(self, tokens: int, *, warm_start: bool = False) -> TrainSettings:
        """Settings for a budget; a warm start (Adam state inherited) skips the warm-up."""
        return TrainSettings(
            tokens=tokens,
            batch_size=self.batch_size,
            lr=self.lr,
            warmup_steps=0 if warm_start else self.warmup_steps,
            eval_every=self.eval_every,
            eval_windows=self.eval_windows,
            threads=self.threads,
            seed=self.seed,
        )


class MoEBaseConfig(MoETrainingConfig):
    """Shape of the E-expert base model (a Mixtral config; the local default is tiny)."""

    layers: int = 2
    hidden: int = 64
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 128
    experts: int = 4
    top_k: int = 2
    seq_len: int = 128

    def shape(self) -> MoEShape:
        """The model shape (refuses top-K > E)."""
        return MoEShape(
            layers=self.layers,
            hidden=self.hidden,
            heads=self.heads,
            kv_heads=self.kv_heads,
            intermediate=self.intermediate,
            experts=self.experts,
            top_k=self.top_k,
            seq_len=self.seq_len,
        )


def log_eval(context: dg.AssetExecutionContext, run: str) -> Callable[[EvalPoint], None]:
    """A callback that logs each evaluation of a run to the Dagster run log."""
    return lambda p: context.log.info(f"{run} step {p.step} tokens {p.tokens}: val loss {p.val_loss:.4f}")


def run_metadata(result: TrainResult) -> dict:
    """Numeric metadata of a training run (plottable in the UI)."""
    return {
        "final_val_loss": round(result.history[-1].val_loss, 4),
        "tokens_trained": int(result.checkpoint.optimizer_meta["tokens"]),
        "tokens_per_second": round(result.tokens_per_second, 4),
        "resumed_from_step": result.resumed_from_step,
    }


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "safetensors"})
def moe_base_checkpoint(
    context: dg.AssetExecutionContext,
    config: MoEBaseConfig,
    moe_pretraining_corpus: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """A Mixtral-class MoE with E experts and top-K routing, random init, trained with Adam for
    `scale.moe_base_tokens` tokens; safetensors weights + Adam state + the validation curve.
    A killed run resumes from its last checkpoint under `$ASSAY_HOME/work`."""
    shape = config.shape()
    start = fresh_checkpoint(shape.config(), config.seed)
    folder = work_dir(
        context, frame_version(moe_pretraining_corpus), config.model_dump_json(), str(scale.moe_base_tokens)
    )
    result = train(
        start,
        split_stream(moe_pretraining_corpus, "train"),
        split_stream(moe_pretraining_corpus, "validation"),
        config.settings(scale.moe_base_tokens),
        folder,
        on_eval=log_eval(context, BASE_RUN),
    )
    files = checkpoint_files(result.checkpoint) | {HISTORY_FILE: parquet_bytes(curve_frame(result.history, BASE_RUN))}
    parameters = sum(t.numel() for t in result.checkpoint.weights.values())
    metadata = {**run_metadata(result), "experts": shape.experts, "top_k": shape.top_k, "parameters": parameters}
    return model_result(context, artifact_store.get_store(), files, metadata)


class UtilityConfig(dg.Config):
    """Calibration batches (from the train split) on which the gradients are measured."""

    calibration_batches: int = 4
    batch_size: int = 8
    seed: int = 1234


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "polars"}, deps=[BASE_KEY])
def expert_utilities(
    context: dg.AssetExecutionContext,
    config: UtilityConfig,
    moe_pretraining_corpus: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
) -> dg.Output:
    """Per layer, expert and FC matrix of the base model: ||W||, saliency ||W||*||g||, ||g||^2 and the
    approximate Fisher ||g||^2 / (||v|| + eps) (g: mean gradient on calibration batches, v: Adam's
    second moment stored with the base checkpoint)."""
    _, files = load_model_version(context.instance, artifact_store.get_store(), BASE_KEY)
    base = load_checkpoint(files)
    stream, seq_len = split_stream(moe_pretraining_corpus, "train"), base.config.max_position_embeddings
    batches = [batch_at(stream, i, config.batch_size, seq_len, config.seed) for i in range(config.calibration_batches)]
    table = moe_utilities.expert_utilities(base, batches)
    return frame_output(table, {"calibration_tokens": config.calibration_batches * config.batch_size * seq_len})


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "safetensors"}, deps=[BASE_KEY])
def upcycling_baselines(
    context: dg.AssetExecutionContext,
    config: MoETrainingConfig,
    moe_pretraining_corpus: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """The two reference runs of the upcycling report: the E-expert base trained on for the CPT budget
    (L_E), and an mE-expert model of the same shape trained from scratch for base + CPT tokens (L_mE)."""
    base_version, files = load_model_version(context.instance, artifact_store.get_store(), BASE_KEY)
    base = load_checkpoint(files)
    experts = base.config.num_local_experts
    factor = check_expansion(experts, base.config.num_experts_per_tok, scale.moe_expansion_factor)
    train_stream = split_stream(moe_pretraining_corpus, "train")
    val_stream = split_stream(moe_pretraining_corpus, "validation")
    base_tokens, key = int(base.optimizer_meta["tokens"]), config.model_dump_json()
    keep = train(
        base,
        train_stream,
        val_stream,
        config.settings(scale.moe_cpt_tokens, warm_start=True),
        work_dir(context, base_version, KEEP_E_RUN, key, str(scale.moe_cpt_tokens)),
        token_offset=base_tokens,
        on_eval=log_eval(context, KEEP_E_RUN),
    )
    scratch_config = copy.deepcopy(base.config)
    scratch_config.num_local_experts = factor * experts
    scratch = train(
        fresh_checkpoint(scratch_config, config.seed),
        train_stream,
        val_stream,
        config.settings(base_tokens + scale.moe_cpt_tokens),
        work_dir(context, base_version, SCRATCH_RUN, key, str(base_tokens + scale.moe_cpt_tokens)),
        on_eval=log_eval(context, SCRATCH_RUN),
    )
    curves = pl.concat([curve_frame(keep.history, KEEP_E_RUN), curve_frame(scratch.history, SCRATCH_RUN)])
    files = {f"{KEEP_E_RUN}.{name}": data for name, data in checkpoint_files(keep.checkpoint).items()}
    files |= {f"{SCRATCH_RUN}.{name}": data for name, data in checkpoint_files(scratch.checkpoint).items()}
    return model_result(
        context,
        artifact_store.get_store(),
        files | {HISTORY_FILE: parquet_bytes(curves)},
        {
            "loss_keep_E": round(keep.history[-1].val_loss, 4),
            "loss_scratch_mE": round(scratch.history[-1].val_loss, 4),
            "experts_scratch": factor * experts,
            "curves": markdown_table(curves.group_by("run").agg(pl.col("val_loss").last(), pl.col("tokens").max())),
            "runs": json.dumps([KEEP_E_RUN, SCRATCH_RUN]),
        },
    )
