"""The pretraining corpus of the upcycling experiments: byte-tokenized documents, split by document."""

import dagster as dg
import polars as pl

from assets.moe.store import GROUP
from assets.outputs import frame_output
from ops.moe.corpus import tokenize_corpus


class MoECorpusConfig(dg.Config):
    """Shortest document kept (tokens) and the held-out share of documents."""

    min_tokens: int = 64
    validation_fraction: float = 0.1
    seed: int = 0


def _split_figures(corpus: pl.DataFrame) -> dict:
    figures = {}
    for which in ("train", "validation"):
        part = corpus.filter(pl.col("split") == which)
        figures[f"{which}_documents"] = part.height
        figures[f"{which}_tokens"] = int(part["n_tokens"].sum())
    return figures


@dg.multi_asset(
    outs={
        "moe_pretraining_corpus": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Byte-level token ids (UTF-8 bytes + end-of-document) of every web document long "
            "enough to train on, each assigned to train or validation by the hash of its id.",
        ),
        "moe_corpus_quarantine": dg.AssetOut(
            group_name=GROUP,
            code_version="1",
            kinds={"polars", "parquet"},
            description="Documents too short for the MoE corpus, with the reason.",
        ),
    },
)
def tokenize_moe_corpus(config: MoECorpusConfig, web_docs: pl.DataFrame):
    """Tokenize every shard of `web_docs` (all partitions). `curated_corpus` replaces `web_docs` as the
    input once it exists (see docs/decisions.md); the split then stays stable per document id."""
    result = tokenize_corpus(web_docs, config.min_tokens, config.validation_fraction, config.seed)
    yield frame_output(
        result.kept,
        {**result.metadata(), **_split_figures(result.kept), "min_tokens": config.min_tokens},
        output_name="moe_pretraining_corpus",
    )
    yield frame_output(result.quarantined, result.metadata(), output_name="moe_corpus_quarantine")
