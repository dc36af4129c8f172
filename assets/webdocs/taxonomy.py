"""Teacher annotations on the web-document taxonomy, and how independent its dimensions are."""

import dagster as dg
import polars as pl

from assets.outputs import frame_output, markdown_table, png_metadata
from ops.webdocs.annotation import abstain_shares, annotate_documents, sample_for_annotation
from ops.webdocs.nmi import highest_nmi, nmi_heatmap_png, nmi_matrix
from ops.webdocs.taxonomy import DIMENSIONS, PROMPT_VERSION
from pipelines.partitions import web_doc_shards
from resources.llm import LLMResource
from resources.scale import ScaleResource

GROUP = "webdocs"
NEW_DIMENSIONS = ("timeliness", "cultural_specificity")


class AnnotationConfig(dg.Config):
    """Run config of `web_doc_annotations`: seed, and document characters shown to the teacher (-1: the profile's)."""

    seed: int = 0
    max_doc_chars: int = -1


@dg.multi_asset(
    outs={
        "web_doc_annotations": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Teacher-LLM labels of a seeded sample of each shard's documents on the 12 "
            "Essential-Web label sets plus timeliness and cultural specificity: primary and secondary "
            "code per dimension, -1 = abstain, validated against the label sets.",
        ),
        "web_doc_annotations_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Documents whose teacher answer stayed invalid after one retry: pass, reason, raw output.",
        ),
    },
    partitions_def=web_doc_shards,
    pool="llm",
)
def annotate_web_docs(config: AnnotationConfig, web_docs: pl.DataFrame, llm: LLMResource, scale: ScaleResource):
    """Annotate a seeded sample of the shard (all documents at full scale) with the teacher LLM.

    Requests are JSON-schema constrained and cached, so a killed run resumes from the cache.
    """
    sample = sample_for_annotation(web_docs, scale.annotation_docs_per_shard, config.seed)
    max_doc_chars = scale.annotation_max_doc_chars if config.max_doc_chars < 0 else config.max_doc_chars
    result = annotate_documents(sample, llm, seed=config.seed, max_doc_chars=max_doc_chars, teacher_model=llm.model_id)
    shares = pl.DataFrame(
        list(abstain_shares(result.annotations, DIMENSIONS).items()),
        schema=["dimension", "abstain_share"],
        orient="row",
    )
    yield frame_output(
        result.annotations,
        output_name="web_doc_annotations",
        metadata={
            **result.split.metadata(),
            "shard_documents": web_docs.height,
            "teacher_model": llm.model_id,
            "docs_per_s": round(result.docs_per_s, 4),
            "prompt_version": PROMPT_VERSION,
            "abstain_share": markdown_table(shares),
            **result.usage.as_metadata(),
        },
    )
    yield frame_output(
        result.quarantined,
        output_name="web_doc_annotations_quarantine",
        metadata={**result.split.metadata(), "reasons": markdown_table(result.quarantined.group_by("reason").len())},
    )


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars", "matplotlib"})
def taxonomy_nmi(web_doc_annotations: pl.DataFrame) -> dg.Output:
    """Pairwise NMI of all taxonomy dimensions over every annotated document (Essential-Web formula:
    length-weighted, primary/secondary pairs at 1, cross pairs at 0.01, codes < 0 dropped)."""
    matrix = nmi_matrix(web_doc_annotations, DIMENSIONS)
    existing = [d for d in DIMENSIONS if d not in NEW_DIMENSIONS]
    highest = {d: highest_nmi(matrix, d, existing) for d in NEW_DIMENSIONS}
    return frame_output(
        matrix,
        {
            "annotated_documents": web_doc_annotations.height,
            "heatmap": png_metadata(nmi_heatmap_png(matrix), "pairwise NMI of the taxonomy dimensions"),
            **{f"highest_nmi_{d}": f"{other}: {value:.3f}" for d, (other, value) in highest.items()},
        },
    )
