"""Multilingual tasks, the translate tool's probe, and the answer-preserving translated tasks."""

from pathlib import Path

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table
from ops.translation.languages import ENGLISH
from ops.translation.preserve import answer_preserving_split, round_trips
from ops.translation.tasks import (
    ARITHMETIC,
    DEFAULT_OPERATIONS,
    MGSM,
    TaskLimits,
    aligned_records,
    arithmetic_items,
    build_tasks,
    read_aligned_jsonl,
    user_records,
)
from ops.translation.tool import BACKEND_NAMES, NO_BACKEND
from resources.llm import LLMResource
from resources.scale import ScaleResource
from resources.translation import TranslationResource

GROUP = "translation"
REPO_ROOT = Path(__file__).resolve().parents[2]
MGSM_SAMPLE = REPO_ROOT / "samples" / "mgsm" / "mgsm_aligned.jsonl"


class MultilingualTasksConfig(dg.Config):
    """Items per family (-1: the profile's size), the generated family's operations (default: the lookup set,
    see `ops.translation.tasks.OPERATION_SETS`), the MGSM file, user JSONL files, limits."""

    arithmetic_items: int = -1
    operations: list[str] = list(DEFAULT_OPERATIONS)
    mgsm_items: int = -1
    mgsm_file: str = str(MGSM_SAMPLE)
    user_files: list[str] = []
    max_question_chars: int = 4000
    seed: int = 0


@dg.multi_asset(
    outs={
        "multilingual_tasks": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Questions with numeric gold answers in every language of the tier table (aligned by "
            "item), with tier and the aligned English original: the generated family (lookup by default), MGSM, "
            "the two cipher languages, user JSONL.",
        ),
        "multilingual_tasks_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Task records refused (empty or over-long question, non-numeric answer, duplicate, "
            "unreadable line), with the reason.",
        ),
    },
)
def multilingual_tasks(config: MultilingualTasksConfig, translation: TranslationResource, scale: ScaleResource):
    """Build and validate every task; a language code outside the tier table stops the run with its name."""
    tiers = translation.validated_tiers()
    languages = list(tiers)
    arith = config.arithmetic_items if config.arithmetic_items >= 0 else scale.translation_arithmetic_items
    mgsm = config.mgsm_items if config.mgsm_items >= 0 else scale.translation_mgsm_items
    records = aligned_records(arithmetic_items(arith, config.seed, config.operations), ARITHMETIC, languages)
    if mgsm:
        records += aligned_records(read_aligned_jsonl(Path(config.mgsm_file), mgsm), MGSM, languages)
    rejected = []
    for path in config.user_files:
        user, refused = user_records(Path(path))
        records, rejected = records + user, rejected + refused
    result = build_tasks(records, tiers, TaskLimits(config.max_question_chars), rejected)
    counts = result.kept.group_by("family", "tier", "language").len().sort("family", "tier", "language")
    metadata = {**result.metadata(), "languages": len(languages)}
    yield frame_output(
        result.kept, output_name="multilingual_tasks", metadata={**metadata, "by_language": markdown_table(counts)}
    )
    yield frame_output(result.quarantined, output_name="multilingual_tasks_quarantine", metadata=metadata)


def aligned_texts(tasks: pl.DataFrame) -> list[tuple[str, str, str]]:
    """(item, language, question) triples: what the oracle backend translates between."""
    return list(tasks.select("item_id", "language", "question").iter_rows())


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars"})
def translation_tool(
    context: dg.AssetExecutionContext,
    multilingual_tasks: pl.DataFrame,
    translation: TranslationResource,
    llm: LLMResource,
) -> dg.Output:
    """The translate tool probed per language and direction: which backend serves the pair, the call's
    cost, and whether a round trip of one English question came back exactly. A pair with no backend
    is listed (its items will fail per item downstream), not an error."""
    tool = translation.tool(aligned_texts(multilingual_tasks), llm if "llm" in translation.backends else None)
    english = multilingual_tasks.filter(pl.col("language") == ENGLISH)
    probe = english["question"][0] if english.height else "What is 2 plus 3?"
    rows = []
    for language in translation.validated_tiers():
        if language == ENGLISH:
            continue
        forward = tool.translate([probe], ENGLISH, language)[0]
        back = tool.translate([forward.text or ""], language, ENGLISH)[0] if forward.ok else forward
        rows.append(
            {
                "language": language,
                "tier": translation.tiers[language],
                "to_language_backend": forward.backend,
                "to_english_backend": back.backend,
                "call_cost": forward.cost,
                "round_trip_exact": bool(back.ok and back.text == probe),
                "error": forward.error or back.error,
            }
        )
    probes = pl.DataFrame(rows)
    served = probes.filter(pl.col("to_language_backend") != NO_BACKEND).height
    context.log.info(f"translate tool: backends {[b.name for b in tool.backends]}, {served}/{probes.height} served")
    return frame_output(
        probes,
        {
            "backends": ", ".join(b.name for b in tool.backends),
            "backends_known": ", ".join(BACKEND_NAMES),
            "languages_served": served,
            "languages_without_backend": probes.height - served,
        },
    )


class TranslatedTasksConfig(dg.Config):
    """Back-translation similarity threshold (multilingual E5 cosine) below which an item is refused."""

    similarity_threshold: float = 0.9


@dg.multi_asset(
    outs={
        "translated_tasks": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="English tasks translated to every target language whose answer survived the round trip "
            "(numbers preserved, back-translation similar to the original), with backend and call cost.",
        ),
        "translated_tasks_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Round trips refused: translation failed or had no backend, numbers changed, or the "
            "back-translation drifted from the English original.",
        ),
    },
    pool="llm",
)
def translated_tasks(
    context: dg.AssetExecutionContext,
    config: TranslatedTasksConfig,
    multilingual_tasks: pl.DataFrame,
    translation: TranslationResource,
    llm: LLMResource,
):
    """Translate each English task to each target and back through the tool; keep it only if its answer
    survives. Every (item, target) pair is kept or quarantined."""
    tiers = translation.validated_tiers()
    tool = translation.tool(aligned_texts(multilingual_tasks), llm if "llm" in translation.backends else None)
    english = multilingual_tasks.filter(pl.col("language") == ENGLISH).select("item_id", "family", "question", "answer")
    targets = [language for language in tiers if language != ENGLISH]
    trips = round_trips(tool, english, targets)
    result = answer_preserving_split(trips, translation.embedder, config.similarity_threshold, tiers)
    context.log.info(f"translated tasks: {result.kept.height} kept, {result.quarantined.height} quarantined")
    by_language = result.kept.group_by("tier", "language", "backend").len().sort("tier", "language")
    metadata = {
        **result.metadata(),
        "embedder": translation.embedder.model_id,
        "similarity_threshold": config.similarity_threshold,
        "translation_errors": int(result.reason_counts().get("translation_failed", 0)),
    }
    yield frame_output(
        result.kept, output_name="translated_tasks", metadata={**metadata, "by_language": markdown_table(by_language)}
    )
    yield frame_output(result.quarantined, output_name="translated_tasks_quarantine", metadata=metadata)
