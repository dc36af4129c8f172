"""Blocking checks on the corpus-wide webdocs artifacts: the students load with finite weights and
metrics, their agreement table and the NMI matrix are well-formed, every kept document is labelled."""

import io

import dagster as dg
import polars as pl

from assets.models import load_model_files
from assets.webdocs.students import STUDENTS, VALIDATION_PREDICTIONS
from ops.common.expectations import between, columns_exist, in_set, not_null, unique
from ops.common.quarantine import QUARANTINE_SCHEMA, quarantine_suite
from ops.webdocs.annotation import QUARANTINE_SCHEMA as ANNOTATION_QUARANTINE_SCHEMA
from ops.webdocs.annotation import REASONS as ANNOTATION_REASONS
from ops.webdocs.integrity import agreement_problems, label_problems, nmi_problems
from ops.webdocs.taxonomy import DIMENSIONS, vocabularies
from pipelines.partitions import web_doc_shards
from resources.artifact_store import ArtifactStoreResource
from resources.io_manager import latest_materialization
from resources.quality import QualityResource
from training.webdocs.integrity import student_problems

MODEL_SOUND = "the model loads; weights and training metrics are finite"
PREDICTIONS_COMPLETE = "one validation prediction per validation document"
AGREEMENT_SOUND = "one row per student and dimension; rates in range"
NMI_SOUND = "square, symmetric, NMI in [0, 1]"
LABELS_SOUND = "one label row per kept document; distributions sum to 1"


def _problems_result(name: str, problems: list[str], metadata: dict | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={name: not problems, "problems": "; ".join(problems) or "none", **(metadata or {})},
    )


def _student_check(student: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=student, name=f"{student}_sound", blocking=True, description=f"{MODEL_SOUND}.")
    def check(context: dg.AssetCheckExecutionContext, artifact_store: ArtifactStoreResource) -> dg.AssetCheckResult:
        files = load_model_files(context.instance, artifact_store.get_store(), student)
        problems = student_problems(student, files)
        event = latest_materialization(context.instance, dg.AssetKey(student), None)
        expected = event.metadata["validation_documents"].value if event is not None else -1
        predicted = pl.read_parquet(io.BytesIO(files[VALIDATION_PREDICTIONS])).height
        if predicted != expected:
            problems.append(f"{PREDICTIONS_COMPLETE}: {predicted} predictions, {expected} validation documents")
        return _problems_result(MODEL_SOUND, problems, {"validation_predictions": predicted})

    return check


student_checks = [_student_check(student) for student in STUDENTS]


@dg.asset_check(asset="student_agreement", blocking=True, description=f"{AGREEMENT_SOUND}.")
def student_agreement_valid(student_agreement: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [
        *columns_exist(["student", "dimension", "n", "accuracy", "cohens_kappa", "eai_agreement"]),
        in_set("student", list(STUDENTS)),
        in_set("dimension", list(DIMENSIONS)),
        between("n", 1, None),
    ]
    problems = agreement_problems(student_agreement, STUDENTS, DIMENSIONS)
    return quality.validate(student_agreement, "student_agreement", suite).to_check_result(
        extra={AGREEMENT_SOUND: not problems}, metadata={"problems": "; ".join(problems) or "none"}
    )


@dg.asset_check(asset="taxonomy_nmi", blocking=True, description=f"{NMI_SOUND}.")
def taxonomy_nmi_valid(taxonomy_nmi: pl.DataFrame, quality: QualityResource) -> dg.AssetCheckResult:
    suite = [*columns_exist(["dimension", *DIMENSIONS]), unique("dimension"), not_null("dimension")]
    problems = nmi_problems(taxonomy_nmi, DIMENSIONS)
    return quality.validate(taxonomy_nmi, "taxonomy_nmi", suite).to_check_result(
        extra={NMI_SOUND: not problems}, metadata={"problems": "; ".join(problems) or "none"}
    )


@dg.asset_check(
    asset="web_doc_labels",
    blocking=True,
    partitions_def=web_doc_shards,
    additional_ins={"web_docs": dg.AssetIn()},
    description=f"{LABELS_SOUND}.",
)
def web_doc_labels_valid(
    web_doc_labels: pl.DataFrame, web_docs: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    suite = [*columns_exist(["doc_id", *(f"{d}__primary" for d in DIMENSIONS)]), unique("doc_id"), not_null("doc_id")]
    problems = label_problems(web_doc_labels, web_docs["doc_id"].to_list(), vocabularies())
    return quality.validate(web_doc_labels.select(pl.exclude("^.*__probs$")), "web_doc_labels", suite).to_check_result(
        extra={LABELS_SOUND: not problems},
        metadata={"problems": "; ".join(problems) or "none", "documents": web_docs.height},
    )


@dg.asset_check(
    asset="web_doc_annotations_quarantine",
    blocking=True,
    partitions_def=web_doc_shards,
    description="Every quarantined annotation names its document, pass and a known reason, once.",
)
def web_doc_annotations_quarantine_valid(
    web_doc_annotations_quarantine: pl.DataFrame, quality: QualityResource
) -> dg.AssetCheckResult:
    extra = [column for column in ANNOTATION_QUARANTINE_SCHEMA if column not in QUARANTINE_SCHEMA]
    suite = [*quarantine_suite(ANNOTATION_REASONS, extra), unique("record_id"), not_null("pass")]
    return quality.validate(web_doc_annotations_quarantine, "web_doc_annotations_quarantine", suite).to_check_result()
