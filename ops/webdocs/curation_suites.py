"""Great Expectations suites of the curation artifacts (dedup, filter search, curated corpus), as data."""

from __future__ import annotations

from ops.common.expectations import ExpectationSpec, between, columns_exist, in_set, not_null, unique
from ops.common.quarantine import QUARANTINE_SCHEMA, quarantine_suite
from ops.webdocs.dedup import DEDUP_QUARANTINE_SCHEMA, DEDUP_REASONS
from ops.webdocs.filter_search import RUN_SCHEMA, SCORE_SCHEMA
from ops.webdocs.filters import FILTERS_SCHEMA, KINDS, STATUSES
from ops.webdocs.proxy_data import TARGET_NAMES

MAX_BITS_PER_BYTE = 16.0  # far above a uniform guess over 257 tokens (8.01 bits)


def documents_suite() -> list[ExpectationSpec]:
    """Deduplicated or curated documents: unique ids, text present."""
    return [not_null("doc_id"), unique("doc_id"), not_null("text")]


def dedup_quarantine_suite() -> list[ExpectationSpec]:
    """Every removed near-duplicate names the document kept in its place."""
    extra = [column for column in DEDUP_QUARANTINE_SCHEMA if column not in QUARANTINE_SCHEMA]
    return [*quarantine_suite(DEDUP_REASONS, extra), unique("record_id"), not_null("duplicate_of")]


def filters_suite() -> list[ExpectationSpec]:
    """A filter table (candidates or compounds): unique names, yields in [0, 1], known kinds and statuses."""
    return [
        *columns_exist(FILTERS_SCHEMA),
        not_null("name"),
        unique("name"),
        not_null("expression"),
        between("yield", 0.0, 1.0),
        between("kept_docs", 0, None),
        in_set("kind", KINDS),
        in_set("status", STATUSES),
    ]


def proxy_runs_suite() -> list[ExpectationSpec]:
    """One row per seed and target set, bits per byte in a sane range, no target text trained on."""
    return [
        *columns_exist(RUN_SCHEMA),
        not_null("bits_per_byte"),
        between("bits_per_byte", 0.0, MAX_BITS_PER_BYTE),
        in_set("target", TARGET_NAMES),
        between("contaminated_docs", 0, 0),
        between("tokens_trained", 1, None),
    ]


def search_suite() -> list[ExpectationSpec]:
    """A ranked search table: unique names and ranks, yields in [0, 1], finite bits per byte."""
    return [
        *columns_exist([*SCORE_SCHEMA, "rank"]),
        unique("name"),
        unique("rank"),
        between("yield", 0.0, 1.0),
        between("mean_bpb", 0.0, MAX_BITS_PER_BYTE),
    ]
