"""Teacher annotation of web documents on the taxonomy: requests, validation, retry and quarantine.

A teacher LLM labels each document in the passes of `ops.webdocs.taxonomy.PASSES`, each answer a JSON
object constrained by a schema whose enums are the label sets, so that no text inside a document (a
prompt injection included) can make a constrained teacher leave them. Every answer is still validated
here, because not every backend constrains: an invalid answer is asked again once, differently, and
then the document is quarantined with the raw output and the reason. Rows in = rows annotated + rows
quarantined.

Also here: the sample of documents to annotate, and the condensed one-line label format that the
generative student learns to emit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

import polars as pl

from ops.common.llm import ChatRequest, ChatResult, LLMClient, UsageTotals
from ops.common.quarantine import QUARANTINE_SCHEMA as SHARED_QUARANTINE_SCHEMA
from ops.common.quarantine import Rejected, Split, quarantine_frame
from ops.common.text import sha256_hex
from ops.webdocs.taxonomy import (
    ABSTAIN,
    DIMENSIONS,
    FDC,
    FDC_LEVELS,
    FIELDS,
    PASSES,
    PROMPT_VERSION,
    condensed_key,
    fdc_levels,
    field_codes,
    secondary_may_abstain,
    system_prompt,
    user_message,
)

CHUNK_THRESHOLD = 30_000  # longer documents are shown as beginning / middle / end (Essential-Web)
CHUNK_CHARS = 10_000
SECTION_MARKERS = ("[beginning]", "[middle]", "[end]")
DEFAULT_MAX_DOC_CHARS = 3_000  # what fits a 2,048-token teacher next to the pass 1 prompt
RETRY_TEMPERATURE = 0.7  # the retry samples, so a greedy backend does not repeat the same answer
_TOKENS_PER_FIELD = 32  # '"name": {"primary": "12", "secondary": null}' with some whitespace
_TOKENS_BASE = 16

REASONS = (
    "not_json",
    "truncated_json",
    "extra_text",
    "not_object",
    "missing_dimension",
    "unexpected_field",
    "malformed_field",
    "unknown_code",
    "secondary_without_primary",
    "missing_secondary",
    "llm_error",
)

# The shared quarantine columns (record_id = doc_id, a `REASONS` code, excerpt = the start of the raw
# output) plus the shard, the pass that failed, the whole raw output and who was asked with which prompt.
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    **SHARED_QUARANTINE_SCHEMA,
    **{column: pl.String() for column in ("shard", "pass", "raw_output", "teacher_model", "prompt_version")},
}

_CONDENSED_FIELDS = "|"
_CONDENSED_KEY = ":"
_CONDENSED_CODES = ","


class AnnotationError(ValueError):
    """A teacher (or student) answer that is not a valid annotation; `reason` is one of `REASONS`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class AnnotationResult:
    """What `annotate_documents` produced.

    `annotations` has one row per labelled document: doc_id, shard, chars, teacher_model,
    prompt_version, annotated_chars (document characters the teacher was shown), the full FDC code as
    `fdc__primary` / `fdc__secondary`, and `{d}__primary` / `{d}__secondary` for every dimension.
    `quarantined` has one row per document whose answer stayed invalid after the retry
    (`QUARANTINE_SCHEMA`); both are the shared `split` (rows in = documents). `usage` adds up every
    request, retries included; `usage_by_pass` splits it by pass.
    """

    split: Split
    usage: UsageTotals
    usage_by_pass: dict[str, UsageTotals]
    max_doc_chars: int

    @property
    def annotations(self) -> pl.DataFrame:
        return self.split.kept

    @property
    def quarantined(self) -> pl.DataFrame:
        return self.split.quarantined

    @property
    def docs_per_s(self) -> float:
        """Documents (all passes) per second of teacher time spent in this call (0 when all cached)."""
        documents = self.annotations.height + self.quarantined.height
        return documents / self.usage.latency_s if self.usage.latency_s > 0 else 0.0


def document_sections(text: str, seed: int) -> list[tuple[str | None, str]]:
    """The parts of a document the teacher sees, as (marker, text).

    Up to `CHUNK_THRESHOLD` characters: the whole text, unmarked. Longer: the first and last
    `CHUNK_CHARS` and a middle chunk of the same size lying between them, whose start is drawn from a
    hash of (seed, text), so it is random across documents and the same on every run.
    """
    if len(text) <= CHUNK_THRESHOLD:
        return [(None, text)]
    choices = len(text) - 3 * CHUNK_CHARS + 1
    start = CHUNK_CHARS + int(sha256_hex(f"{seed}:{text}")[:16], 16) % choices
    parts = (text[:CHUNK_CHARS], text[start : start + CHUNK_CHARS], text[-CHUNK_CHARS:])
    return list(zip(SECTION_MARKERS, parts, strict=True))


def chunk_for_annotation(text: str, seed: int) -> str:
    """The document as the annotation protocol shows it: unchanged up to 30,000 characters, otherwise
    its first, a random middle and its last 10,000 characters marked [beginning] / [middle] / [end]."""
    return _join_sections(document_sections(text, seed))


def document_view(text: str, seed: int, max_doc_chars: int | None = DEFAULT_MAX_DOC_CHARS) -> tuple[str, int]:
    """Text placed in the request and how many document characters it holds.

    The chunking rule comes first; then, to fit a small context, every section is cut to an equal share
    of `max_doc_chars` (None or 0: no cut), so a long document keeps its beginning, middle and end.
    """
    sections = document_sections(text, seed)
    if max_doc_chars:
        share = max(1, max_doc_chars // len(sections))
        sections = [(marker, part[:share]) for marker, part in sections]
    return _join_sections(sections), sum(len(part) for _, part in sections)


def _join_sections(sections: list[tuple[str | None, str]]) -> str:
    return "\n".join(part if marker is None else f"{marker}\n{part}" for marker, part in sections)


def pass_max_tokens(pass_name: str) -> int:
    """Completion budget of a pass: enough for its JSON answer with some whitespace."""
    return _TOKENS_BASE + _TOKENS_PER_FIELD * len(PASSES[pass_name])


def pass_request(
    doc_id: str,
    text: str,
    pass_name: str,
    seed: int,
    max_tokens: int,
    *,
    max_doc_chars: int | None = DEFAULT_MAX_DOC_CHARS,
) -> ChatRequest:
    """The chat request of one document in one pass (request_id "<doc_id>|<pass>").

    System prompt of the pass, then the document (chunked, cut to `max_doc_chars`) between markers it
    cannot forge, and the pass's JSON schema for constrained decoding. Greedy (temperature 0).
    """
    view, _ = document_view(text, seed, max_doc_chars)
    return ChatRequest(
        messages=(
            {"role": "system", "content": system_prompt(pass_name)},
            {"role": "user", "content": user_message(view)},
        ),
        json_schema=pass_schema(pass_name),
        max_tokens=max_tokens,
        temperature=0.0,
        seed=seed,
        request_id=f"{doc_id}|{pass_name}",
    )


@cache
def pass_schema(pass_name: str) -> dict[str, Any]:
    """JSON schema of a pass's answer: one object per field, codes only from the label sets.

    A field is either labelled, {"primary": code, "secondary": code or null}, or abstained,
    {"primary": "-1", "secondary": null}; where the source protocol says the secondary must not
    abstain, the labelled form requires one. No other keys anywhere. Shared: do not mutate.
    """
    properties = {field: _field_schema(field) for field in PASSES[pass_name]}
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _field_schema(field: str) -> dict[str, Any]:
    codes = [code for code in field_codes(field) if code != ABSTAIN]
    secondary: dict[str, Any] = (
        {"enum": [*codes, None]} if secondary_may_abstain(field) else {"type": "string", "enum": codes}
    )
    labelled = _pair_schema({"type": "string", "enum": codes}, secondary)
    abstained = _pair_schema({"type": "string", "enum": [ABSTAIN]}, {"type": "null"})
    return {"anyOf": [labelled, abstained]}


def _pair_schema(primary: dict[str, Any], secondary: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"primary": primary, "secondary": secondary},
        "required": ["primary", "secondary"],
        "additionalProperties": False,
    }


def parse_pass(pass_name: str, result_text: str) -> dict[str, tuple[str, str | None]]:
    """Validate a teacher answer for a pass; field -> (primary, secondary or None).

    Raises `AnnotationError` with reason: not_json, truncated_json (the output stops inside the JSON),
    extra_text (a JSON object with other text around it), not_object, missing_dimension,
    unexpected_field, malformed_field (not {"primary", "secondary"}, or a code that is neither a string
    nor an integer), unknown_code, secondary_without_primary (a secondary next to an abstained
    primary), missing_secondary (pass 2's label sets always carry one unless the primary abstains).
    A secondary of "-1" or null means none; a secondary equal to the primary is allowed (Essential-Web
    uses it, e.g. "No Artifacts" twice).
    """
    answer = _load_json(result_text)
    if not isinstance(answer, dict):
        raise AnnotationError("not_object", f"got {type(answer).__name__}")
    expected = PASSES[pass_name]
    missing = [field for field in expected if field not in answer]
    if missing:
        raise AnnotationError("missing_dimension", ", ".join(missing))
    unexpected = sorted(set(answer) - set(expected))
    if unexpected:
        raise AnnotationError("unexpected_field", ", ".join(map(str, unexpected)))
    labels = {}
    for field in expected:
        value = answer[field]
        if not isinstance(value, dict) or "primary" not in value or set(value) - {"primary", "secondary"}:
            raise AnnotationError("malformed_field", f"{field}: {json.dumps(value)[:80]}")
        primary = _code(field, value["primary"])
        if primary is None:
            raise AnnotationError("malformed_field", f"{field}: primary is null")
        labels[field] = _checked(field, primary, _code(field, value.get("secondary")), require_secondary=True)
    return labels


def _load_json(text: str) -> Any:
    stripped = text.strip()
    if not stripped:
        raise AnnotationError("not_json", "empty output")
    try:
        return json.loads(stripped)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data":
            raise AnnotationError("extra_text", f"text after the JSON at char {error.pos}") from None
        if stripped[0] in "{[" and _open_at_end(stripped):
            raise AnnotationError("truncated_json", f"{error.msg} at char {error.pos} of {len(stripped)}") from None
        start = stripped.find("{")
        if start > 0:
            try:
                json.JSONDecoder().raw_decode(stripped, start)
            except json.JSONDecodeError:
                pass
            else:
                raise AnnotationError("extra_text", f"text before the JSON, which starts at char {start}") from None
        raise AnnotationError("not_json", f"{error.msg} at char {error.pos}") from None


def _open_at_end(text: str) -> bool:
    """True when a string, object or array is still open at the end of `text` (it was cut off)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
    return in_string or depth > 0


def _code(field: str, value: Any) -> str | None:
    """A code as a string (an integer code is accepted and converted); None stays None."""
    if value is None or isinstance(value, str):
        return None if value is None else value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise AnnotationError("malformed_field", f"{field}: code {value!r} is not a string")


def _checked(field: str, primary: str, secondary: str | None, *, require_secondary: bool) -> tuple[str, str | None]:
    codes = field_codes(field)
    for code in (primary, secondary):
        if code is not None and code not in codes:
            raise AnnotationError("unknown_code", f"{field}: {code!r}")
    secondary = None if secondary == ABSTAIN else secondary
    if primary == ABSTAIN and secondary is not None:
        raise AnnotationError("secondary_without_primary", f"{field}: -1 with secondary {secondary!r}")
    if require_secondary and primary != ABSTAIN and secondary is None and not secondary_may_abstain(field):
        raise AnnotationError("missing_secondary", field)
    return primary, secondary


def annotate_documents(
    docs: pl.DataFrame,
    llm: LLMClient,
    *,
    seed: int,
    max_doc_chars: int = DEFAULT_MAX_DOC_CHARS,
    teacher_model: str,
) -> AnnotationResult:
    """Label every document of `docs` (doc_id, shard, text, chars) in every pass.

    One `llm.chat` call per pass covers all documents still in play, so the client batches and caches
    them (an interrupted run resumes from the cache). An invalid answer is asked once more with
    seed + 1 at `RETRY_TEMPERATURE`, a request the cache has not seen; if that is invalid too, the
    document leaves the later passes and is quarantined once, with that pass, the reason and the raw
    output. Documents in any language are labelled or abstained, never dropped.
    """
    doc_ids = docs["doc_id"].cast(pl.String).to_list()
    texts = docs["text"].to_list()
    labels: list[dict[str, tuple[str, str | None]]] = [{} for _ in doc_ids]
    failures: dict[int, tuple[str, AnnotationError, str]] = {}
    results: dict[str, list[ChatResult]] = {}
    for pass_name in PASSES:
        requests = {
            index: pass_request(
                doc_ids[index], texts[index], pass_name, seed, pass_max_tokens(pass_name), max_doc_chars=max_doc_chars
            )
            for index in range(len(doc_ids))
            if index not in failures
        }
        results[pass_name] = _run_pass(llm, pass_name, requests, labels, failures)

    columns = {
        "doc_id": doc_ids,
        "shard": docs["shard"].cast(pl.String).to_list(),
        "chars": docs["chars"].to_list(),
        "annotated_chars": [document_view(text, seed, max_doc_chars)[1] for text in texts],
    }
    kept = [index for index in range(len(doc_ids)) if index not in failures]
    annotations = pl.DataFrame(
        {
            **{name: [values[i] for i in kept] for name, values in columns.items()},
            "teacher_model": [teacher_model] * len(kept),
            "prompt_version": [PROMPT_VERSION] * len(kept),
            **_label_columns([labels[i] for i in kept]),
        },
        schema=annotation_schema(),
    )
    rejected = [
        Rejected(
            doc_ids[index],
            error.reason,
            error.detail,
            raw,
            {
                "shard": columns["shard"][index],
                "pass": pass_name,
                "raw_output": raw,
                "teacher_model": teacher_model,
                "prompt_version": PROMPT_VERSION,
            },
        )
        for index, (pass_name, error, raw) in failures.items()
    ]
    quarantined = quarantine_frame(rejected, REASONS, QUARANTINE_SCHEMA)
    usage = UsageTotals.from_results([result for answers in results.values() for result in answers])
    by_pass = {pass_name: UsageTotals.from_results(answers) for pass_name, answers in results.items()}
    return AnnotationResult(Split(annotations, quarantined, len(doc_ids)), usage, by_pass, max_doc_chars)


def _run_pass(
    llm: LLMClient,
    pass_name: str,
    requests: dict[int, ChatRequest],
    labels: list[dict[str, tuple[str, str | None]]],
    failures: dict[int, tuple[str, AnnotationError, str]],
) -> list[ChatResult]:
    """Ask one pass for the documents in `requests` (by index), retry the invalid answers once, and
    record the labels and the failures in place; returns every result, for the accounting."""
    answers = llm.chat(list(requests.values()))
    retries: dict[int, ChatRequest] = {}
    for (index, request), answer in zip(requests.items(), answers, strict=True):
        try:
            labels[index].update(_parse_result(pass_name, answer))
        except AnnotationError:
            retries[index] = replace(request, seed=request.seed + 1, temperature=RETRY_TEMPERATURE)
    if not retries:
        return answers
    second = llm.chat(list(retries.values()))
    for index, answer in zip(retries, second, strict=True):
        try:
            labels[index].update(_parse_result(pass_name, answer))
        except AnnotationError as error:
            failures[index] = (pass_name, error, answer.text if answer.text is not None else "")
    return [*answers, *second]


def _parse_result(pass_name: str, result: ChatResult) -> dict[str, tuple[str, str | None]]:
    """Parse a chat result; a backend error (or JSON the client already rejected) is an llm_error."""
    if result.text is None:
        raise AnnotationError("llm_error", result.error or "no output")
    return parse_pass(pass_name, result.text)


def label_columns() -> list[str]:
    """Label columns of an annotation row: the FDC code, then every dimension, primary and secondary."""
    return [f"{name}__{role}" for name in (FDC, *DIMENSIONS) for role in ("primary", "secondary")]


def annotation_schema() -> dict[str, pl.DataType]:
    """Polars schema of the annotation frame."""
    head = {
        "doc_id": pl.String(),
        "shard": pl.String(),
        "chars": pl.Int64(),
        "teacher_model": pl.String(),
        "prompt_version": pl.String(),
        "annotated_chars": pl.Int64(),
    }
    return head | {column: pl.String() for column in label_columns()}


def _label_columns(rows: Sequence[Mapping[str, tuple[str, str | None]]]) -> dict[str, list[str | None]]:
    flat = [_flat_labels(row) for row in rows]
    return {column: [row[column] for row in flat] for column in label_columns()}


def _flat_labels(labels: Mapping[str, tuple[str, str | None]]) -> dict[str, str | None]:
    """field -> (primary, secondary) into label columns, with the FDC code split into its levels."""
    flat: dict[str, str | None] = {}
    for field in FIELDS:
        primary, secondary = labels[field]
        flat[f"{field}__primary"], flat[f"{field}__secondary"] = primary, secondary
    primaries = fdc_levels(flat[f"{FDC}__primary"])
    secondaries = fdc_levels(flat[f"{FDC}__secondary"], missing=None)
    for level, primary, secondary in zip(FDC_LEVELS, primaries, secondaries, strict=True):
        flat[f"{level}__primary"], flat[f"{level}__secondary"] = primary, secondary
    return flat


def abstain_shares(annotations: pl.DataFrame, dimensions: Sequence[str]) -> dict[str, float]:
    """Share of rows whose primary label is "-1" (abstain), per dimension; 0.0 for an empty frame."""
    if annotations.height == 0:
        return dict.fromkeys(dimensions, 0.0)
    return {
        dimension: float((annotations[f"{dimension}__primary"] == ABSTAIN).sum()) / annotations.height
        for dimension in dimensions
    }


def sample_for_annotation(docs: pl.DataFrame, n: int | None, seed: int) -> pl.DataFrame:
    """A seeded sample of `n` documents (None or 0: all), rows in their original order.

    Documents are ranked by sha256(seed, doc_id) and the `n` lowest are kept, so the choice does not
    depend on row order, and appending documents only swaps in newcomers that rank lower.
    """
    if not n or n >= docs.height:
        return docs
    ranks = [sha256_hex(f"{seed}:{doc_id}") for doc_id in docs["doc_id"].cast(pl.String).to_list()]
    chosen = set(sorted(range(docs.height), key=ranks.__getitem__)[:n])
    return docs.filter(pl.Series([index in chosen for index in range(docs.height)]))


def condensed_labels(row: Mapping[str, Any]) -> str:
    """One annotation row as the student's target line: "fdc:005.1,51|bcp:3|bkd:2,3|...".

    Fields in taxonomy order, each "<key>:<primary>[,<secondary>]" (no secondary: no comma), joined
    by "|". Codes hold only digits, "." and "-", so the separators are unambiguous.
    """
    parts = []
    for field in FIELDS:
        primary, secondary = row[f"{field}__primary"], row[f"{field}__secondary"]
        codes = primary if secondary is None else f"{primary}{_CONDENSED_CODES}{secondary}"
        parts.append(f"{condensed_key(field)}{_CONDENSED_KEY}{codes}")
    return _CONDENSED_FIELDS.join(parts)


def parse_condensed(text: str) -> dict[str, str | None]:
    """A condensed label line back into label columns (`label_columns()`, FDC levels derived).

    Raises `AnnotationError` (missing_dimension, unexpected_field, malformed_field, unknown_code,
    secondary_without_primary) for a line a student got wrong. A missing secondary is allowed.
    """
    by_key = {condensed_key(field): field for field in FIELDS}
    labels: dict[str, tuple[str, str | None]] = {}
    for part in text.strip().split(_CONDENSED_FIELDS):
        key, separator, codes = part.strip().partition(_CONDENSED_KEY)
        if not separator or not codes:
            raise AnnotationError("malformed_field", repr(part[:40]))
        if key not in by_key:
            raise AnnotationError("unexpected_field", repr(key[:40]))
        field = by_key[key]
        if field in labels:
            raise AnnotationError("malformed_field", f"{key} appears twice")
        primary, *rest = codes.split(_CONDENSED_CODES)
        if len(rest) > 1:
            raise AnnotationError("malformed_field", f"{key}: more than two codes")
        labels[field] = _checked(field, primary, rest[0] if rest else None, require_secondary=False)
    missing = [condensed_key(field) for field in FIELDS if field not in labels]
    if missing:
        raise AnnotationError("missing_dimension", ", ".join(missing))
    return _flat_labels(labels)
