"""Students distilled from the teacher's annotations, and how well each agrees with the teacher."""

import io

import dagster as dg
import numpy as np
import polars as pl

from assets.models import load_model_files, model_result
from assets.outputs import frame_output, headline_metadata, markdown_table, png_metadata
from assets.webdocs.embeddings import embeddings_table_name
from ops.common.packaged_models import smollm2_model_path
from ops.webdocs.agreement import agreement_bar_png, agreement_table
from ops.webdocs.annotation import condensed_labels
from ops.webdocs.embedding import embeddings_schema
from ops.webdocs.label_grammar import LabelGrammar
from ops.webdocs.student_data import (
    StudentData,
    label_lines_frame,
    primary_labels,
    primary_predictions_frame,
    student_data,
)
from ops.webdocs.taxonomy import DIMENSIONS, vocabularies
from resources.artifact_store import ArtifactStoreResource
from resources.embedder import EmbedderResource
from resources.lancedb import LanceDBResource, vectors_for
from resources.scale import ScaleResource
from training.webdocs.generative_student import (
    GenerativeConfig,
    generate,
    save_generative,
    train_generative_student,
)

GROUP = "webdocs"
VALIDATION_PREDICTIONS = "validation_predictions.parquet"
STUDENTS = ("mlp_filter", "encoder_classifier", "distilled_classifier")


class StudentConfig(dg.Config):
    """Split and seed shared by the students (same split for all, so agreement is comparable)."""

    validation_fraction: float = 0.25
    seed: int = 0


class EncoderStudentConfig(StudentConfig):
    """The encoder student's base: empty = the packaged all-MiniLM-L6-v2; any local encoder folder."""

    base_model: str = ""


class GenerativeStudentConfig(StudentConfig):
    """The generative student's base model: empty = the packaged SmolLM2-135M GGUF (CPU default);
    any causal LM id or folder in the gpu profile (Qwen/Qwen2.5-0.5B-Instruct as in the paper)."""

    base_model: str = ""
    max_new_tokens: int = 96


def _split(config: StudentConfig, annotations: pl.DataFrame, docs: pl.DataFrame) -> StudentData:
    return student_data(annotations, docs, config.validation_fraction, config.seed)


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def _epoch_line(metrics) -> str:
    return (
        f"epoch {metrics.epoch}: train loss {metrics.train_loss:.4f}, validation loss {metrics.val_loss:.4f}, "
        f"mean validation accuracy {metrics.mean_val_accuracy:.3f}"
    )


def _split_metadata(data: StudentData, metrics: list) -> dict:
    return {
        "train_documents": data.train.height,
        "validation_documents": data.validation.height,
        "epochs_run": len(metrics),
    }


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "safetensors"}, deps=["web_doc_embeddings"])
def mlp_filter(
    context: dg.AssetExecutionContext,
    config: StudentConfig,
    web_doc_annotations: pl.DataFrame,
    web_docs: pl.DataFrame,
    embedder: EmbedderResource,
    lancedb: LanceDBResource,
    artifact_store: ArtifactStoreResource,
) -> dg.MaterializeResult:
    """Multi-task MLP over the stored document embeddings, one head per taxonomy dimension (primary
    label), class-weighted, early-stopped on validation; safetensors + model card in the store."""
    # torch student modules imported here, not at module level: loading the code location skips torch
    from training.webdocs.mlp_filter import MLPConfig, predict_proba, predictions_frame, save_mlp, train_mlp_filter

    data = _split(config, web_doc_annotations, web_docs)
    table = lancedb.table(embeddings_table_name(embedder.model_id), embeddings_schema(embedder.dim))
    vectors = vectors_for(table, data.train["doc_id"].to_list() + data.validation["doc_id"].to_list())
    missing = [d for d in data.train["doc_id"].to_list() + data.validation["doc_id"].to_list() if d not in vectors]
    if missing:
        raise ValueError(
            f"{len(missing)} annotated documents have no {embedder.model_id} embedding, e.g. "
            f"{missing[0]!r}: materialize web_doc_embeddings for their shards"
        )
    train_x = np.stack([vectors[d] for d in data.train["doc_id"]])
    val_x = np.stack([vectors[d] for d in data.validation["doc_id"]])
    trained = train_mlp_filter(
        train_x,
        primary_labels(data.train, DIMENSIONS),
        val_x,
        primary_labels(data.validation, DIMENSIONS),
        vocabularies(),
        MLPConfig(seed=config.seed),
        on_epoch=lambda m: context.log.info(_epoch_line(m)),
    )
    predictions = predictions_frame(data.validation["doc_id"].to_list(), predict_proba(trained, val_x), vocabularies())
    files = save_mlp(
        trained, card_fields={"embedding_model": embedder.model_id, "training_documents": str(data.train.height)}
    )
    files[VALIDATION_PREDICTIONS] = _parquet(predictions.select(pl.exclude("^.*__probs$")))
    return model_result(
        context,
        artifact_store.get_store(),
        files,
        {
            **_split_metadata(data, trained.history),
            "embedding_model": embedder.model_id,
            "card": dg.MetadataValue.md(files["card.md"].decode()),
        },
    )


@dg.asset(group_name=GROUP, code_version="1", kinds={"pytorch", "safetensors"})
def encoder_classifier(
    context: dg.AssetExecutionContext,
    config: EncoderStudentConfig,
    web_doc_annotations: pl.DataFrame,
    web_docs: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """The packaged MiniLM encoder fine-tuned with one classification head per taxonomy dimension."""
    # torch student modules imported here, not at module level: loading the code location skips torch
    from training.webdocs.encoder_student import EncoderConfig, save_encoder, train_encoder_student
    from training.webdocs.encoder_student import predict_labels as encoder_labels

    data = _split(config, web_doc_annotations, web_docs)
    trained = train_encoder_student(
        data.train["text"].to_list(),
        primary_labels(data.train, DIMENSIONS),
        data.validation["text"].to_list(),
        primary_labels(data.validation, DIMENSIONS),
        vocabularies(),
        EncoderConfig(epochs=scale.student_epochs, seed=config.seed),
        base_model_path=config.base_model or None,
        on_epoch=lambda m: context.log.info(_epoch_line(m)),
    )
    predicted = encoder_labels(trained, data.validation["text"].to_list())
    files = save_encoder(trained, card_fields={"training_documents": str(data.train.height)})
    files[VALIDATION_PREDICTIONS] = _parquet(primary_predictions_frame(data.validation["doc_id"].to_list(), predicted))
    return model_result(
        context,
        artifact_store.get_store(),
        files,
        {**_split_metadata(data, trained.history), "card": dg.MetadataValue.md(files["card.md"].decode())},
    )


@dg.asset(group_name=GROUP, code_version="2", kinds={"pytorch", "safetensors"}, pool="gpu")
def distilled_classifier(
    context: dg.AssetExecutionContext,
    config: GenerativeStudentConfig,
    web_doc_annotations: pl.DataFrame,
    web_docs: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
    scale: ScaleResource,
) -> dg.MaterializeResult:
    """A generative student (SmolLM2-135M + LoRA on CPU; any causal LM in the gpu profile) fine-tuned to
    emit the condensed label line, decoded under the label grammar so that every output parses; the LoRA
    adapter and a model card are stored, the base is referenced."""
    data = _split(config, web_doc_annotations, web_docs)
    train = data.train.head(scale.generative_max_examples) if scale.generative_max_examples else data.train
    base = config.base_model or str(smollm2_model_path())
    on_gpu = scale.training_device.startswith("cuda")
    student = GenerativeConfig(
        base_model=base,
        epochs=scale.student_epochs,
        seed=config.seed,
        device=scale.training_device,
        dtype="bfloat16" if on_gpu else "float32",
    )
    trained = train_generative_student(
        train["text"].to_list(),
        [condensed_labels(row) for row in train.iter_rows(named=True)],
        data.validation["text"].to_list(),
        [condensed_labels(r) for r in data.validation.iter_rows(named=True)],
        student,
        log=context.log.info,
    )
    outputs = generate(
        trained, data.validation["text"].to_list(), max_new_tokens=config.max_new_tokens, grammar=LabelGrammar()
    )
    predictions, unparseable = label_lines_frame(data.validation["doc_id"].to_list(), outputs)
    files = save_generative(trained, card_fields={"training_documents": train.height})
    files[VALIDATION_PREDICTIONS] = _parquet(predictions)
    return model_result(
        context,
        artifact_store.get_store(),
        files,
        {
            **_split_metadata(data, trained.metrics),
            "base_model": base,
            "training_examples": train.height,
            "unparseable_validation_outputs": unparseable,
            "parsed_validation_outputs": len(outputs) - unparseable,
            "parse_rate": round((len(outputs) - unparseable) / max(len(outputs), 1), 4),
            "card": dg.MetadataValue.md(files["card.md"].decode()),
        },
    )


@dg.asset(group_name=GROUP, code_version="1", kinds={"polars", "matplotlib"}, deps=list(STUDENTS))
def student_agreement(
    context: dg.AssetExecutionContext,
    web_doc_annotations: pl.DataFrame,
    artifact_store: ArtifactStoreResource,
) -> dg.Output:
    """Cohen's kappa, accuracy and the Essential-Web agreement rule (primary/secondary sets overlap) of
    each student against the teacher on the held-out split, per dimension."""
    store = artifact_store.get_store()
    tables = []
    for student in STUDENTS:
        files = load_model_files(context.instance, store, student)
        predictions = pl.read_parquet(io.BytesIO(files[VALIDATION_PREDICTIONS]))
        tables.append(agreement_table(web_doc_annotations, predictions, DIMENSIONS, student))
    table = pl.concat(tables)
    mean = table.group_by("student").agg(pl.col("cohens_kappa", "accuracy", "eai_agreement").mean()).sort("student")
    return frame_output(
        table,
        {
            **headline_metadata(
                {f"{m}_{r['student']}": r[m] for r in mean.iter_rows(named=True) for m in ("cohens_kappa", "accuracy")}
            ),
            "mean_by_student": markdown_table(mean),
            "kappa_chart": png_metadata(agreement_bar_png(table), "Cohen's kappa per dimension and student"),
            "table": markdown_table(table),
        },
    )
