"""The upcycling report over every strategy and both baselines."""

import json

import dagster as dg
import polars as pl

from assets.models import load_model_version
from assets.moe.store import GROUP, HISTORY_FILE, read_parquet_file
from assets.moe.training import BASE_KEY
from assets.moe.upcycling import EXPERT_LOAD_FILE
from assets.outputs import frame_output, markdown_table, png_metadata
from ops.moe.plots import curves_png
from ops.moe.report import BASE_RUN
from ops.moe.report import upcycling_report as build_report
from pipelines.partitions import upcycling_strategies
from resources.artifact_store import ArtifactStoreResource


def _strategy_outputs(context: dg.AssetExecutionContext, store) -> tuple[list[pl.DataFrame], dict[str, list]]:
    curves, loads = [], {}
    for strategy in upcycling_strategies.get_partition_keys():
        _, files = load_model_version(context.instance, store, "upcycling_cpt", strategy)
        curves.append(read_parquet_file(files, HISTORY_FILE))
        loads[strategy] = json.loads(files[EXPERT_LOAD_FILE])
    return curves, loads


def _load_table(loads: dict[str, list]) -> pl.DataFrame:
    rows = [
        {"run": run, "layer": layer, "expert": expert, "share": round(share, 4)}
        for run, per_layer in loads.items()
        for layer, shares in enumerate(per_layer)
        for expert, share in enumerate(shares)
    ]
    return pl.DataFrame(rows).pivot(on="expert", index=["run", "layer"], values="share")


@dg.asset(
    group_name=GROUP,
    code_version="1",
    kinds={"polars", "matplotlib"},
    deps=[BASE_KEY, "upcycling_baselines", "upcycling_cpt"],
)
def upcycling_report(context: dg.AssetExecutionContext, artifact_store: ArtifactStoreResource) -> dg.Output:
    """Per strategy and baseline: final validation loss, gap closure (L_E - L_up) / (L_E - L_mE),
    tokens to reach the from-scratch loss and the compute saved, expert-load entropy and the cosine
    between duplicated experts at the start and end of CPT; charts of the curves with the upcycling point."""
    store = artifact_store.get_store()
    base_curve = read_parquet_file(load_model_version(context.instance, store, BASE_KEY)[1], HISTORY_FILE)
    strategy_curves, loads = _strategy_outputs(context, store)
    baselines = read_parquet_file(load_model_version(context.instance, store, "upcycling_baselines")[1], HISTORY_FILE)
    curves = pl.concat([base_curve, baselines, *strategy_curves])
    report = build_report(curves)
    upcycling_point = int(base_curve["tokens"].max())
    numeric = {
        f"{column}/{row['run']}": round(row[column], 4)
        for row in report.iter_rows(named=True)
        for column in ("gap_closure", "final_val_loss", "compute_saved")
        if row[column] == row[column]  # NaN (undefined) is left out of the plottable figures
    }
    return frame_output(
        report,
        {
            **numeric,
            "report": markdown_table(report),
            "upcycling_point_tokens": upcycling_point,
            "expert_load": markdown_table(_load_table(loads)),
            "val_loss_chart": png_metadata(
                curves_png(curves, "val_loss", "Validation loss", upcycling_point), "validation loss vs tokens"
            ),
            "cosine_chart": png_metadata(
                curves_png(curves.filter(pl.col("run") != BASE_RUN), "duplicate_cosine", "Cosine duplicate vs source"),
                "cosine between duplicated experts and their sources vs tokens",
            ),
            "load_entropy_chart": png_metadata(
                curves_png(curves, "load_entropy", "Expert-load entropy (1 = balanced)", upcycling_point),
                "expert-load entropy vs tokens",
            ),
        },
    )
