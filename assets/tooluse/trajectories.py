"""Base tool-use trajectories (BFCL imports and validated LLM synthesis) and their oracle-preserving
augmentations."""

import json
from pathlib import Path

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table
from assets.tooluse.specs import GROUP, TOOL_INDEX_PREFIX
from assets.vector_index import index_table_name, nearest
from ops.tooluse.augment import AUGMENTATIONS, QUERY_KINDS, augment_all
from ops.tooluse.backends import SimulatedBackend
from ops.tooluse.bfcl import load_single_turn
from ops.tooluse.sampling import rewrite_bases
from ops.tooluse.specs import canonical_json
from ops.tooluse.synthesis import make_seeds, synthesize
from ops.tooluse.trajectories import bfcl_trajectories
from resources.embedder import EmbedderResource
from resources.inputs import InputFoldersResource
from resources.lancedb import LanceDBResource
from resources.llm import LLMResource
from resources.scale import ScaleResource


class BaseTrajectoriesConfig(dg.Config):
    """Synthesis seeds and rounds (0: the profile's `ScaleResource` sizes) and the seed of the draw."""

    seeds: int = 0
    rounds: int = 0
    seed: int = 0


@dg.multi_asset(
    outs={
        "base_tool_trajectories": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"llm", "polars"},
            description="Validated tool-use trajectories with their oracle: BFCL questions with accepted answers "
            "(run on the simulated backends), and LLM-synthesized ones that passed format, execution and judge.",
        ),
        "base_tool_trajectory_rejects": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars"},
            description="Every trajectory that failed a validation level: the shared quarantine table (record, "
            "reason code, detail, excerpt) plus origin, level, round and the full payload.",
        ),
    },
    pool="llm",
)
def base_tool_trajectories(
    context: dg.AssetExecutionContext,
    config: BaseTrajectoriesConfig,
    tool_specs: pl.DataFrame,
    llm: LLMResource,
    inputs: InputFoldersResource,
    scale: ScaleResource,
):
    """Import BFCL (`tool_bfcl_questions_per_category` questions per category), then synthesize from tool
    specs for several rounds; seeds that fail a level are retried in the next round with the failure
    reason in their prompt (self-evolving synthesis)."""
    specs = [json.loads(spec) for spec in tool_specs["spec_json"]]
    backend = SimulatedBackend(specs)
    examples = load_single_turn(Path(inputs.bfcl), per_category=scale.tool_bfcl_questions_per_category)
    imported, import_rejects = bfcl_trajectories(examples, backend)
    seeds = make_seeds(specs, config.seeds or scale.tool_synthesis_seeds, seed=config.seed)
    rounds = config.rounds or scale.tool_synthesis_rounds
    context.log.info(f"synthesizing from {len(seeds)} seeds over {rounds} rounds with {llm.model_id}")
    synthesis = synthesize(
        llm,
        seeds,
        backend,
        rounds,
        judge_max_tokens=256 if scale.judge_explanation_max_chars else 512,
        judge_explanation_max_chars=scale.judge_explanation_max_chars or None,
    )
    trajectories = pl.concat([imported, synthesis.trajectories], how="vertical_relaxed")
    rejects = pl.concat([import_rejects, synthesis.rejects], how="vertical_relaxed")
    by_origin = trajectories.group_by("origin", "category").len().sort("origin", "category")
    yield frame_output(
        trajectories,
        output_name="base_tool_trajectories",
        metadata={
            "by_origin": markdown_table(by_origin),
            "synthesis_acceptance_by_level_and_round": markdown_table(synthesis.stats),
            "synthesis_acceptance_rate": round(synthesis.acceptance_rate, 3),
            **{f"synthesis_{name}": value for name, value in synthesis.usage.as_metadata().items()},
        },
    )
    by_level = rejects.group_by("origin", "level").len().sort("origin", "level")
    yield frame_output(
        rejects, output_name="base_tool_trajectory_rejects", metadata={"by_level": markdown_table(by_level)}
    )


class AugmentationConfig(dg.Config):
    """Augmentation kinds, distractors per example, bases the LLM rewrites (0: the profile's size) and seed."""

    kinds: list[str] = list(AUGMENTATIONS)
    distractors: int = 3
    rewrite_bases: int = 0
    seed: int = 0


@dg.multi_asset(
    outs={
        "augmented_tool_trajectories": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"llm", "polars"},
            description="Each base trajectory expanded with tagged augmentations (distractor tools, indirect or "
            "ambiguous queries, noisy / other-format / truncated / erroneous outputs); oracles byte-identical.",
        ),
        "augmentation_rejects": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars"},
            description="Augmentations not made: the shared quarantine table with the reason code (no usable "
            "distractor, rewrite changed the oracle, irrelevance example, ...), plus the base and the kind.",
        ),
    },
    deps=["tool_spec_index"],
    pool="llm",
)
def augmented_tool_trajectories(
    context: dg.AssetExecutionContext,
    config: AugmentationConfig,
    base_tool_trajectories: pl.DataFrame,
    tool_specs: pl.DataFrame,
    llm: LLMResource,
    embedder: EmbedderResource,
    lancedb: LanceDBResource,
    scale: ScaleResource,
):
    """Oracle-preserving augmentations. Distractors come from the tool index (similar tools) and the
    pool (random ones); query rewrites by the LLM are checked to keep the oracle right."""
    unknown = sorted(set(config.kinds) - set(AUGMENTATIONS))
    if unknown:
        raise dg.Failure(f"unknown augmentation kinds {unknown}; expected some of {', '.join(AUGMENTATIONS)}")
    pool = [json.loads(spec) for spec in tool_specs["spec_json"]]
    similar = _similar_tools(lancedb.connect().open_table(index_table_name(TOOL_INDEX_PREFIX, embedder.model_id)))
    offline_kinds = [kind for kind in config.kinds if kind not in QUERY_KINDS]
    llm_kinds = [kind for kind in config.kinds if kind in QUERY_KINDS]
    results = [augment_all(base_tool_trajectories, pool, similar, None, offline_kinds, config.seed, config.distractors)]
    if llm_kinds:
        limit = config.rewrite_bases or scale.tool_rewrite_bases
        rewritten = rewrite_bases(base_tool_trajectories, limit, config.seed)
        context.log.info(f"rewriting {rewritten.height} queries per kind {llm_kinds} with {llm.model_id}")
        results.append(augment_all(rewritten, pool, similar, llm, llm_kinds, config.seed, config.distractors))
    rows = pl.concat([result.rows for result in results], how="vertical_relaxed")
    rejects = pl.concat([result.rejects for result in results], how="vertical_relaxed")
    kinds = rows.group_by("augmentation", "expected_behaviour").len().sort("augmentation")
    yield frame_output(rows, output_name="augmented_tool_trajectories", metadata={"by_kind": markdown_table(kinds)})
    reasons = rejects.group_by("augmentation", "reason").len().sort("augmentation", "reason")
    yield frame_output(rejects, output_name="augmentation_rejects", metadata={"reasons": markdown_table(reasons)})


def _similar_tools(table, k: int = 8):
    """`similar_tools(spec)` for the augmenter: the nearest specs in the tool index (itself among them), found
    for every indexed spec by one batched search on the first call."""
    found: dict[str, list[dict]] = {}

    def similar(spec: dict) -> list[dict]:
        if not found:
            rows = table.search().select(["spec_json", "vector"]).limit(None).to_arrow()
            keys, vectors = rows["spec_json"].to_pylist(), rows["vector"].to_pylist()
            hits = nearest(table, vectors, k + 1, ["spec_json"])
            for key, hit in zip(keys, hits, strict=True):
                found[key] = [json.loads(text) for text in hit["spec_json"]]
        return found.get(canonical_json(spec), [])

    return similar
