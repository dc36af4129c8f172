"""Tool specifications (BFCL function docs and user JSON-schema files), their vector index and backends."""

import json
from pathlib import Path

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table
from assets.vector_index import text_index
from ops.tooluse.backends import SimulatedBackend
from ops.tooluse.bfcl import SINGLE_TURN_CATEGORIES
from ops.tooluse.specs import combine_specs, load_bfcl_specs, load_user_tool_files, spec_text
from resources.embedder import EmbedderResource
from resources.inputs import InputFoldersResource
from resources.lancedb import LanceDBResource
from resources.scale import ScaleResource

GROUP = "tooluse"
TOOL_INDEX_PREFIX = "tool_specs"


class ToolSpecsConfig(dg.Config):
    """BFCL categories to read from the BFCL folder; user tool files come from `ASSAY_TOOL_FILES`."""

    bfcl_categories: list[str] = list(SINGLE_TURN_CATEGORIES)


@dg.multi_asset(
    outs={
        "tool_specs": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Validated tool specifications in BFCL's function-doc form, deduplicated, from BFCL and from "
            "user JSON-schema tool files.",
        ),
        "tool_specs_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Tool specs refused (unknown types, recursive schemas, required naming a missing parameter, "
            "bad names ...): the shared quarantine table (record, reason code, detail, excerpt) plus source, "
            "record number and tool name.",
        ),
    },
)
def tool_specs(config: ToolSpecsConfig, inputs: InputFoldersResource, scale: ScaleResource):
    """Read, convert, validate and deduplicate every tool spec (of the BFCL questions the profile reads,
    `tool_bfcl_questions_per_category`); rows in = kept + quarantined."""
    per_category = scale.tool_bfcl_questions_per_category
    results = [load_bfcl_specs(Path(inputs.bfcl), config.bfcl_categories, per_category)]
    if inputs.tool_files:
        results.append(load_user_tool_files(sorted(Path(inputs.tool_files).glob("*.json"))))
    combined = combine_specs(results)
    by_source = combined.specs.group_by("source").len().sort("source")
    counts = {**combined.split.metadata(), "records_read": combined.records_read}
    yield frame_output(
        combined.specs, output_name="tool_specs", metadata={**counts, "by_source": markdown_table(by_source)}
    )
    reasons = combined.quarantine.group_by("reason").len().sort("len", descending=True)
    yield frame_output(
        combined.quarantine,
        output_name="tool_specs_quarantine",
        metadata={**counts, "reasons": markdown_table(reasons)},
    )


@dg.asset(group_name=GROUP, code_version="1", kinds={"lancedb"}, pool="gpu")
def tool_spec_index(
    tool_specs: pl.DataFrame, embedder: EmbedderResource, lancedb: LanceDBResource
) -> dg.MaterializeResult:
    """Every tool spec's text (name, description, parameters) embedded in LanceDB, so that similar tools
    can be found (the distractor augmentation draws on it). Rebuilt only when the specs change."""
    texts = tool_specs.select(
        "tool_id", "name", "spec_json", pl.col("spec_json").map_elements(_text, return_dtype=pl.String).alias("text")
    )
    table, rebuilt = text_index(texts, "text", TOOL_INDEX_PREFIX, embedder, lancedb)
    return dg.MaterializeResult(
        data_version=dg.DataVersion(f"{table.name}-lance{table.version}"),
        metadata={
            "dagster/row_count": table.count_rows(),
            "lance_table": table.name,
            "lance_uri": dg.MetadataValue.path(lancedb.uri),
            "lance_table_version": table.version,
            "embedded_now": rebuilt,
            "embedder": embedder.model_id,
        },
    )


def _text(spec_json: str) -> str:
    return spec_text(json.loads(spec_json))


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars"})
def tool_backends(tool_specs: pl.DataFrame) -> dg.Output:
    """The deterministic simulated executor of every tool, probed: a call without arguments must fail
    with MissingArgument when the tool has required parameters, a call with an unknown argument with
    UnexpectedArgument, and the same call twice must give the same output."""
    specs = [json.loads(spec) for spec in tool_specs["spec_json"]]
    backend = SimulatedBackend(specs)
    rows = []
    for tool_id, spec in zip(tool_specs["tool_id"], specs, strict=True):
        required = spec.get("parameters", {}).get("required", [])
        empty = backend.execute_spec(spec, {})
        unknown = backend.execute_spec(spec, {"__not_a_parameter__": 1})
        again = backend.execute_spec(spec, {})
        rows.append(
            {
                "tool_id": tool_id,
                "name": spec["name"],
                "n_required": len(required),
                "empty_call": empty.error_type or "ok",
                "unknown_argument_call": unknown.error_type or "ok",
                "deterministic": empty == again,
                "sample_output": json.dumps(empty.output, sort_keys=True, default=str)[:200],
            }
        )
    probes = pl.DataFrame(rows)
    summary = probes.group_by("empty_call", "unknown_argument_call").len().sort("len", descending=True)
    return frame_output(probes, {"probe_outcomes": markdown_table(summary)})
