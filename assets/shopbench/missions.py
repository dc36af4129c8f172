"""Shopping Reasoning Bench missions: loaded, validated and quarantined; LLM drafts kept apart until reviewed."""

from pathlib import Path

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table
from ops.shopbench.catalog import load_catalog
from ops.shopbench.drafting import draft_requests, parse_drafts, read_reviewed_ids, reviewed
from ops.shopbench.missions import SOURCE_FORMATS, combine_missions, load_missions, parse_missions
from resources.inputs import InputFoldersResource
from resources.llm import LLMResource
from resources.scale import ScaleResource

GROUP = "shopbench"


def bundled_catalog(inputs: InputFoldersResource) -> pl.DataFrame:
    """The bundled catalogs as one-line fact sheets (all attributes, also products without a price,
    since missions ask about those too)."""
    folder = Path(inputs.shopping_catalogs)
    return load_catalog(folder / "amazon_uk_toys" / "products.csv", folder / "magento_luma" / "products.jsonl")


class MissionDraftsConfig(dg.Config):
    """How many missions to draft (0: the profile's `ScaleResource` number), the seed of the plan, and
    the drafter's token limit."""

    drafts: int = 0
    seed: int = 0
    # A whole mission fits in ~400 tokens; grammar-constrained sampling of this schema costs ~0.5 s a
    # token with SmolLM2 on 2 cores, so the cap bounds the local run (a cut draft is a reject).
    max_tokens: int = 768


@dg.multi_asset(
    outs={
        "mission_drafts": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"llm", "polars"},
            description="LLM-drafted missions with criteria from catalog products. Status 'draft' until a reviewer "
            "lists the id in the reviewed-drafts file; only then do they join `shopping_missions`.",
        ),
        "mission_draft_rejects": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars"},
            description="Draft outputs that were not valid missions: the shared quarantine table (draft id, reason "
            "code, detail, the raw output).",
        ),
    },
    pool="llm",
)
def mission_drafts(config: MissionDraftsConfig, llm: LLMResource, inputs: InputFoldersResource, scale: ScaleResource):
    """Propose new missions from the catalog; never graded until reviewed."""
    count = config.drafts or scale.shopbench_drafts
    requests = draft_requests(bundled_catalog(inputs), count, config.seed, max_tokens=config.max_tokens)
    results = llm.chat(requests)
    parsed = parse_drafts(results)
    drafts, rejects = parsed.kept, parsed.quarantined
    approved = set(reviewed(drafts, read_reviewed_ids(inputs.shopbench_reviewed_drafts))["draft_id"])
    drafts = drafts.with_columns(
        pl.when(pl.col("draft_id").is_in(list(approved)))
        .then(pl.lit("reviewed"))
        .otherwise(pl.col("status"))
        .alias("status")
    )
    yield frame_output(
        drafts,
        output_name="mission_drafts",
        metadata={
            **parsed.metadata(),
            "requested": count,
            "drafted": drafts.height,
            "reviewed": len(approved),
            "reviewed_ids_file": dg.MetadataValue.path(inputs.shopbench_reviewed_drafts),
        },
    )
    yield frame_output(rejects, output_name="mission_draft_rejects", metadata=parsed.metadata())


class MissionSource(dg.Config):
    """One missions file and its format: "assay" (README schema), "healthbench" or "srb" (a local copy of
    the public Shopping Reasoning Bench release)."""

    path: str
    format: str = "assay"


class ShoppingMissionsConfig(dg.Config):
    """Mission files to load; empty means the bundled sample missions."""

    sources: list[MissionSource] = []


@dg.multi_asset(
    outs={
        "shopping_missions": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Validated missions (single- and multi-turn, user turns fixed) with category, subcategory, "
            "products and unknown source fields kept as JSON; reviewed drafts included.",
        ),
        "shopping_mission_criteria": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Every criterion: its turn, text, weight (negative = must not happen), required or optional, "
            "category and subcategory.",
        ),
        "shopping_missions_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Every mission record that was not kept: the shared quarantine table (record, reason code, "
            "detail, excerpt) plus its source format and record number.",
        ),
    },
)
def shopping_missions(config: ShoppingMissionsConfig, mission_drafts: pl.DataFrame, inputs: InputFoldersResource):
    """Load every configured missions file plus the reviewed drafts; one bad criterion quarantines its
    mission (rows in = missions + quarantined)."""
    sources = config.sources or [MissionSource(path=inputs.shopbench_missions)]
    for source in sources:
        if source.format not in SOURCE_FORMATS:
            raise dg.Failure(f"missions file {source.path}: format {source.format!r} is not one of {SOURCE_FORMATS}")
    results = [load_missions(source.path, source.format) for source in sources]
    approved = mission_drafts.filter(pl.col("status") == "reviewed")["mission_json"].to_list()
    if approved:
        results.append(parse_missions(approved, "assay"))
    combined = combine_missions(results)
    mix = combined.missions.group_by("category", "subcategory").agg(
        pl.len().alias("missions"), (pl.col("n_turns") > 1).sum().alias("multi_turn")
    )
    counts = {
        **combined.split.metadata(),
        "sources": ", ".join(f"{source.path} ({source.format})" for source in sources),
        "reviewed_drafts": len(approved),
    }
    yield frame_output(
        combined.missions,
        output_name="shopping_missions",
        metadata={**counts, "by_subcategory": markdown_table(mix.sort("category", "subcategory"))},
    )
    criteria = combined.criteria
    required_share = float(criteria["required"].mean() or 0.0) if criteria.height else 0.0
    yield frame_output(
        criteria,
        output_name="shopping_mission_criteria",
        metadata={"required_share": round(required_share, 3), "negative": int((criteria["weight"] < 0).sum())},
    )
    reasons = combined.quarantine.group_by("reason").len().sort("len", descending=True)
    yield frame_output(
        combined.quarantine,
        output_name="shopping_missions_quarantine",
        metadata={**counts, "reasons": markdown_table(reasons)},
    )
