"""Great Expectations suites of the webdocs artifacts, declared as data."""

from __future__ import annotations

from ops.common.expectations import ExpectationSpec, between, columns_exist, in_set, not_null, unique
from ops.common.quarantine import QUARANTINE_SCHEMA as SHARED_QUARANTINE_SCHEMA
from ops.common.quarantine import quarantine_suite
from ops.webdocs.cleaning import CLEAN_SCHEMA, QUARANTINE_SCHEMA, REASONS, CleaningRules
from ops.webdocs.reading import RAW_SCHEMA


def raw_web_docs_suite() -> list[ExpectationSpec]:
    """Every line became a row with an id, a shard and a unique position (0: the unreadable file itself)."""
    return [
        *columns_exist(list(RAW_SCHEMA)),
        not_null("doc_id"),
        unique("doc_id"),
        not_null("shard"),
        unique("line"),
        between("line", 0, None),
    ]


def web_docs_suite(rules: CleaningRules) -> list[ExpectationSpec]:
    """Kept documents are non-empty, within bounds, in an allowed language and unique."""
    suite = [
        *columns_exist(list(CLEAN_SCHEMA)),
        not_null("doc_id"),
        unique("doc_id"),
        not_null("text"),
        unique("text_hash"),
        between("chars", rules.min_chars, rules.max_chars),
        between("language_score", 0.0, 1.0),
    ]
    if rules.languages:
        suite.append(in_set("language", list(rules.languages)))
    return suite


def web_docs_quarantine_suite() -> list[ExpectationSpec]:
    """Every quarantined record says which record it was and why."""
    extra = [column for column in QUARANTINE_SCHEMA if column not in SHARED_QUARANTINE_SCHEMA]
    return [*quarantine_suite(REASONS, extra), not_null("line")]


def web_doc_embeddings_suite(dim: int) -> list[ExpectationSpec]:
    """One unit-norm vector per kept document."""
    return [
        not_null("doc_id"),
        unique("doc_id"),
        not_null("text_hash"),
        between("norm", 0.99, 1.01),
        between("dim", dim, dim),
    ]


def web_doc_annotations_suite(dimensions: list[str], vocabularies: dict[str, list[str]]) -> list[ExpectationSpec]:
    """One row per document; every primary code in its label set, every secondary too (or null)."""
    suite = [not_null("doc_id"), unique("doc_id"), not_null("chars")]
    for dimension in dimensions:
        suite += [
            not_null(f"{dimension}__primary"),
            in_set(f"{dimension}__primary", vocabularies[dimension]),
            in_set(f"{dimension}__secondary", vocabularies[dimension]),
        ]
    return suite
