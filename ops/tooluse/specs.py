"""Tool specifications: load BFCL function docs and user JSON-schema tool files, canonicalize, validate.

The canonical form of a tool is BFCL's function doc: `{"name", "description", "parameters": {"type":
"dict", "properties": {...}, "required": [...]}}` with BFCL type names (string, integer, float,
boolean, array, dict, tuple, any). JSON-schema input is converted (object -> dict, number -> float; a
`["T", "null"]` union becomes T). Specs are deduplicated by their canonical JSON.

Validation rules (a failing spec goes to the shared quarantine frame with a `SPEC_REASONS` code and the
detail, never raises):
- the name must match `[A-Za-z_][A-Za-z0-9_.-]*`;
- every schema node needs a known type; `properties` must map names to schema objects;
- `$ref`, `$defs`/`definitions` and `anyOf`/`oneOf`/`allOf` are refused (recursive or composed schemas
  cannot be typed by the simulated backends), and so is nesting deeper than `MAX_DEPTH`;
- a `required` list must name existing properties; a missing `required` is read as `[]` (BFCL allows
  it) and noted in the `warnings` column, as is a missing `parameters` (a tool without arguments).

Tool ids are `f"{source}:{name}"`. When one name carries several distinct specs (BFCL reuses names
with different descriptions or parameters across questions), every one of them keeps its row and its
tool id gets `@` plus the first 8 hex digits of the sha256 of its spec JSON, so ids stay unique and do
not depend on load order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from ops.common.quarantine import QUARANTINE_SCHEMA as SHARED_QUARANTINE_SCHEMA
from ops.common.quarantine import Rejected, Split, split
from ops.common.text import sha256_hex
from ops.tooluse.bfcl import SINGLE_TURN_CATEGORIES, read_jsonl

MAX_DEPTH = 6
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
BFCL_TYPES: frozenset[str] = frozenset({"string", "integer", "float", "boolean", "array", "dict", "tuple", "any"})
_JSON_SCHEMA_TYPES: dict[str, str] = {"object": "dict", "number": "float"}
_RECURSIVE_KEYS: tuple[str, ...] = ("$ref", "$defs", "definitions", "$dynamicRef", "$recursiveRef")
_COMPOSITION_KEYS: tuple[str, ...] = ("anyOf", "oneOf", "allOf")

SPECS_SCHEMA: dict[str, pl.DataType] = {
    "tool_id": pl.String(),
    "name": pl.String(),
    "source": pl.String(),
    "description": pl.String(),
    "spec_json": pl.String(),
    "n_params": pl.Int64(),
    "n_required": pl.Int64(),
    "warnings": pl.String(),
}
# The shared quarantine columns (record_id = "<source>#<record number>") plus where the record came from.
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    **SHARED_QUARANTINE_SCHEMA,
    "source": pl.String(),
    "record_number": pl.Int64(),
    "name": pl.String(),
}
# Why a tool record is quarantined (the `reason` column); `detail` says where in the schema.
SPEC_REASONS: tuple[str, ...] = (
    "unreadable",
    "not_an_object",
    "invalid_name",
    "bad_parameters",
    "bad_schema",
    "unknown_type",
    "bad_required",
    "recursive_schema",
    "composed_schema",
    "too_deep",
)


class SpecProblem(NamedTuple):
    """Why a tool spec is refused: a `SPEC_REASONS` code and the detail."""

    code: str
    detail: str


def canonical_json(obj: Any) -> str:
    """The project's one JSON spelling for hashing and byte comparison: sorted keys, compact, UTF-8."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class SpecsResult:
    """Validated tool specs (`SPECS_SCHEMA`) and quarantined records (`QUARANTINE_SCHEMA`) as the shared
    `Split`, whose rows in count distinct records after deduplication; `records_read` counts every
    record read, duplicates included.
    """

    split: Split
    records_read: int = 0

    @property
    def specs(self) -> pl.DataFrame:
        return self.split.kept

    @property
    def quarantine(self) -> pl.DataFrame:
        return self.split.quarantined

    @property
    def rows_in(self) -> int:
        return self.split.rows_in


@dataclass
class _Collector:
    """Accumulates records from several sources, dropping exact duplicates (by canonical JSON)."""

    kept: list[tuple[str, dict[str, Any], list[str]]] = field(default_factory=list)
    quarantined: list[Rejected] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    records_read: int = 0

    def add(self, source: str, record_number: int, raw: Any) -> None:
        self.records_read += 1
        if not isinstance(raw, dict):
            problem = SpecProblem("not_an_object", f"tool record is a {type(raw).__name__}, not an object")
            self.quarantine(source, record_number, None, problem, raw)
            return
        spec = canonical_spec(raw)
        key = canonical_json(spec)
        if key in self.seen:
            return
        self.seen.add(key)
        problem = spec_problem(spec)
        if problem is not None:
            name = spec.get("name") if isinstance(spec.get("name"), str) else None
            self.quarantine(source, record_number, name, problem, raw)
            return
        self.kept.append((source, spec, spec_warnings(raw)))

    def quarantine(self, source: str, record_number: int, name: str | None, problem: SpecProblem, raw: Any) -> None:
        """Refuse one record, named "<source>#<record number>"."""
        excerpt = canonical_json(raw) if _json_safe(raw) else repr(raw)
        where = {"source": source, "record_number": record_number, "name": name}
        self.quarantined.append(Rejected(f"{source}#{record_number}", *problem, excerpt, where))

    def result(self) -> SpecsResult:
        specs_by_name: dict[str, set[str]] = {}
        for _, spec, _ in self.kept:
            specs_by_name.setdefault(spec["name"], set()).add(canonical_json(spec))
        rows = []
        for source, spec, warnings in self.kept:
            spec_json = canonical_json(spec)
            tool_id = f"{source}:{spec['name']}"
            if len(specs_by_name[spec["name"]]) > 1:
                tool_id = f"{tool_id}@{sha256_hex(spec_json)[:8]}"
            params = spec["parameters"]
            rows.append(
                {
                    "tool_id": tool_id,
                    "name": spec["name"],
                    "source": source,
                    "description": spec.get("description", ""),
                    "spec_json": spec_json,
                    "n_params": len(params["properties"]),
                    "n_required": len(params["required"]),
                    "warnings": "; ".join(warnings),
                }
            )
        rows_in = len(self.kept) + len(self.quarantined)
        kept_and_quarantined = split(rows, SPECS_SCHEMA, self.quarantined, rows_in, SPEC_REASONS, QUARANTINE_SCHEMA)
        return SpecsResult(kept_and_quarantined, records_read=self.records_read)


def _json_safe(obj: Any) -> bool:
    try:
        json.dumps(obj)
    except (TypeError, ValueError):
        return False
    return True


def _canonical_type(raw_type: Any) -> Any:
    """Map a JSON-schema type to BFCL's name; a `[T, "null"]` union becomes T; others are left as-is."""
    if isinstance(raw_type, list):
        non_null = [t for t in raw_type if t != "null"]
        if len(non_null) == 1 and len(raw_type) == 2:
            raw_type = non_null[0]
        else:
            return raw_type
    if isinstance(raw_type, str):
        return _JSON_SCHEMA_TYPES.get(raw_type, raw_type)
    return raw_type


def _canonical_schema(node: Any) -> Any:
    """Convert one schema node and its children (`properties`, `items`); other keys are kept as they are."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if "type" in out:
        out["type"] = _canonical_type(out["type"])
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: _canonical_schema(v) for k, v in out["properties"].items()}
    if "items" in out:
        items = out["items"]
        out["items"] = [_canonical_schema(i) for i in items] if isinstance(items, list) else _canonical_schema(items)
    return out


def canonical_spec(raw: dict[str, Any]) -> dict[str, Any]:
    """Convert a BFCL, OpenAI-style (`{"type": "function", "function": {...}}`) or bare JSON-schema tool
    to the BFCL function-doc form. Never raises on odd input: what cannot be converted is left for
    `validate_spec` to reject. A missing `parameters` becomes an empty dict schema and a missing
    top-level `required` becomes `[]` (see `spec_warnings`)."""
    if raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        raw = raw["function"]
    spec = {k: v for k, v in raw.items() if k not in ("type", "strict")}
    spec["description"] = str(raw.get("description") or "")
    parameters = raw.get("parameters")
    if parameters is None:
        parameters = {"type": "dict", "properties": {}}
    parameters = _canonical_schema(parameters)
    if isinstance(parameters, dict):
        parameters.setdefault("type", "dict")
        parameters.setdefault("properties", {})
        parameters.setdefault("required", [])
    spec["parameters"] = parameters
    return spec


def spec_warnings(raw: dict[str, Any]) -> list[str]:
    """Non-fatal issues of a raw tool record that `canonical_spec` repaired (recorded, not quarantined)."""
    if raw.get("type") == "function" and isinstance(raw.get("function"), dict):
        raw = raw["function"]
    parameters = raw.get("parameters")
    if parameters is None:
        return ["parameters missing: tool takes no arguments"]
    if isinstance(parameters, dict) and "required" not in parameters:
        return ["required missing: read as []"]
    return []


def _validate_node(node: Any, path: str, depth: int) -> SpecProblem | None:
    """Why one schema node (and its children) is invalid, or None."""
    if not isinstance(node, dict):
        return SpecProblem("bad_schema", f"{path}: schema is a {type(node).__name__}, not an object")
    if depth > MAX_DEPTH:
        return SpecProblem("too_deep", f"{path}: schema nested deeper than {MAX_DEPTH} levels")
    for key in _RECURSIVE_KEYS:
        if key in node:
            return SpecProblem("recursive_schema", f"{path}: recursive schema ({key}) is not supported")
    for key in _COMPOSITION_KEYS:
        if key in node:
            return SpecProblem("composed_schema", f"{path}: composed schema ({key}) is not supported")
    if "type" not in node:
        return SpecProblem("bad_schema", f"{path}: no type")
    schema_type = node["type"]
    if not isinstance(schema_type, str) or schema_type not in BFCL_TYPES:
        return SpecProblem("unknown_type", f"{path}: unknown type {schema_type!r}")
    if "enum" in node and not isinstance(node["enum"], list):
        return SpecProblem("bad_schema", f"{path}: enum is not a list")
    if "properties" in node:
        properties = node["properties"]
        if not isinstance(properties, dict):
            return SpecProblem("bad_schema", f"{path}: properties is a {type(properties).__name__}, not an object")
        for name, child in properties.items():
            problem = _validate_node(child, f"{path}.{name}", depth + 1)
            if problem:
                return problem
        required = node.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            return SpecProblem("bad_required", f"{path}: required is not a list of names")
        missing = [r for r in required if r not in properties]
        if missing:
            return SpecProblem("bad_required", f"{path}: required names parameters that do not exist: {missing}")
    if "items" in node:
        items = node["items"]
        children = items if isinstance(items, list) else [items]
        for i, child in enumerate(children):
            problem = _validate_node(child, f"{path}[{i}]", depth + 1)
            if problem:
                return problem
    return None


def spec_problem(spec: dict[str, Any]) -> SpecProblem | None:
    """Why a canonical spec cannot be used (name, types, recursion, required, properties), or None."""
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        return SpecProblem("invalid_name", "missing name")
    if not NAME_PATTERN.fullmatch(name):
        return SpecProblem("invalid_name", f"invalid name {name!r}: must match {NAME_PATTERN.pattern}")
    parameters = spec.get("parameters")
    if not isinstance(parameters, dict):
        return SpecProblem("bad_parameters", f"parameters is a {type(parameters).__name__}, not an object")
    if parameters.get("type") != "dict":
        detail = f"parameters must be of type dict (object), got {parameters.get('type')!r}"
        return SpecProblem("bad_parameters", detail)
    if not isinstance(parameters.get("properties"), dict):
        detail = f"parameters.properties is a {type(parameters.get('properties')).__name__}, not an object"
        return SpecProblem("bad_parameters", detail)
    return _validate_node(parameters, "parameters", 0)


def validate_spec(spec: dict[str, Any]) -> str | None:
    """What is wrong with a canonical spec, in words (`spec_problem`'s detail), or None."""
    problem = spec_problem(spec)
    return problem.detail if problem else None


def spec_text(spec: dict[str, Any]) -> str:
    """Text embedded for similarity search: name (also split into words), description, and each
    parameter's name and description, so that tools doing similar things land near each other."""
    name = str(spec.get("name", ""))
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", name).replace("_", " ").replace(".", " ").replace("-", " ")
    parts = [f"{name} ({words.lower()}): {spec.get('description', '')}".strip()]
    properties = (spec.get("parameters") or {}).get("properties") or {}
    if isinstance(properties, dict) and properties:
        params = [
            f"{p}: {s.get('description', '')}".strip() if isinstance(s, dict) else p for p, s in properties.items()
        ]
        parts.append("Parameters: " + "; ".join(params))
    return "\n".join(parts)


def load_bfcl_specs(
    root: Path, categories: Sequence[str] = SINGLE_TURN_CATEGORIES, per_category: int = 0
) -> SpecsResult:
    """Every function doc of the given BFCL categories (of their first `per_category` questions, 0: all,
    as `ops.tooluse.bfcl.load_single_turn` reads them), validated and deduplicated.

    A spec's source is `bfcl:<category>` of the first category (in the order given) that offers it;
    a quarantined record's `record_number` is the 1-based line of the question that offered it.
    """
    collector = _Collector()
    for category in categories:
        questions = read_jsonl(root / f"BFCL_v3_{category}.json")
        questions = questions[:per_category] if per_category > 0 else questions
        for line_number, question in enumerate(questions, start=1):
            for raw in question.get("function") or []:
                collector.add(f"bfcl:{category}", line_number, raw)
    return collector.result()


def load_user_tool_files(paths: Iterable[Path]) -> SpecsResult:
    """Tools from user JSON files: each file holds one tool or a list of tools, OpenAI-style
    (`{"type": "function", "function": {...}}`) or bare (`{"name", "description", "parameters"}`).

    Source is `user:<file name>`; `record_number` is the 1-based position in the file's list (1 for a
    file with one tool, 0 when the file itself cannot be read as JSON).
    """
    collector = _Collector()
    for path in paths:
        path = Path(path)
        source = f"user:{path.name}"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            collector.records_read += 1
            collector.quarantine(source, 0, None, SpecProblem("unreadable", f"unreadable JSON: {exc}"), None)
            continue
        records = data if isinstance(data, list) else [data]
        for number, raw in enumerate(records, start=1):
            collector.add(source, number, raw)
    return collector.result()


def combine_specs(results: Sequence[SpecsResult]) -> SpecsResult:
    """Several loaded spec sources (BFCL, user files) as one result, counts added up."""
    kept_and_quarantined = Split(
        kept=pl.concat([result.specs for result in results]),
        quarantined=pl.concat([result.quarantine for result in results]),
        rows_in=sum(result.rows_in for result in results),
    )
    return SpecsResult(kept_and_quarantined, records_read=sum(result.records_read for result in results))
