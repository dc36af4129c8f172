"""COVERT stage 2: oracle-preserving augmentations of base tool-use trajectories.

Each augmentation makes an example harder while its oracle (`oracle_json`) stays byte-identical:
- `distractor_similar` / `distractor_random`: extra tools in the offered list, the most similar ones
  from the embedding index or random ones from the pool, at random positions. A tool whose name equals
  or normalizes (BFCL string normalization) to an offered or oracle tool's name is never added, nor one
  whose description and parameters copy an oracle tool (two tools doing the same thing would make the
  oracle ambiguous). No-call (irrelevance) bases get no distractors: a new tool could make the query
  answerable and the empty oracle wrong.
- `indirect_query` / `ambiguous_query`: the LLM rewrites the query. An indirect rewrite is kept only if
  an LLM consistency check says the oracle calls are still exactly right; an ambiguous rewrite leaves
  out what a required argument needs, so the expected behaviour becomes `ask_clarification`.
- noisy tool outputs: `noisy_extra_fields`, `format_xml`, `format_text`, `truncated_output` (the
  calls stay right: expected `call`) and `erroneous_output` (an error payload the agent should notice:
  expected `detect_error`).
Random choices come from a hash of (seed, base id, augmentation), so a run is reproducible and one
base's draws do not depend on the others. What cannot be produced goes to the rejects frame with a
reason. Every produced row is checked again against the reward function before it is returned.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from xml.sax.saxutils import escape

import polars as pl

from ops.common.llm import ChatRequest, ChatResult, LLMClient
from ops.common.quarantine import QUARANTINE_SCHEMA, Rejected
from ops.common.text import normalize_text, sha256_hex
from ops.tooluse.bfcl import ExpectedCall, parse_function_spec, parse_ground_truth
from ops.tooluse.reward import RewardResult, normalize_string, score_output
from ops.tooluse.trajectories import (
    AUGMENTED_TRAJECTORY_SCHEMA,
    TRAJECTORY_SCHEMA,
    canonical_json,
    first_accepted_arguments,
)

DISTRACTOR_KINDS: tuple[str, ...] = ("distractor_similar", "distractor_random")
QUERY_KINDS: tuple[str, ...] = ("indirect_query", "ambiguous_query")
OUTPUT_KINDS: tuple[str, ...] = (
    "noisy_extra_fields",
    "format_xml",
    "format_text",
    "truncated_output",
    "erroneous_output",
)
AUGMENTATIONS: tuple[str, ...] = DISTRACTOR_KINDS + QUERY_KINDS + OUTPUT_KINDS
EXPECTED_BEHAVIOURS: tuple[str, ...] = ("call", "detect_error", "ask_clarification")
DEFAULT_DISTRACTORS = 3
PROMPT_VERSION = "augment-v1"

# The shared quarantine columns (record_id = the augmented id that was not made, "<base id>~<kind>";
# excerpt = the base query) plus the base and the augmentation kind.
AUGMENT_REJECT_SCHEMA: dict[str, pl.DataType] = {
    **QUARANTINE_SCHEMA,
    "base_trajectory_id": pl.String(),
    "augmentation": pl.String(),
}
AUGMENT_REASONS: tuple[str, ...] = (
    "no_call_oracle",
    "no_distractor_candidates",
    "no_tool_outputs",
    "llm_error",
    "unparseable_rewrite",
    "unchanged_query",
    "oracle_not_preserved",
    "consistency_unparseable",
    "base_oracle_fails",
    "oracle_fails_reward",
)
VIOLATION_SCHEMA: dict[str, pl.DataType] = {
    "trajectory_id": pl.String(),
    "base_trajectory_id": pl.String(),
    "augmentation": pl.String(),
    "violation": pl.String(),
    "detail": pl.String(),
}
REWRITE_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}
CONSISTENCY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"oracle_still_correct": {"type": "boolean"}},
    "required": ["oracle_still_correct"],
}

_REWRITE_PROMPTS: dict[str, str] = {
    "indirect_query": (
        "Rewrite the user's request so that it is indirect: describe the need conversationally, do not name "
        "the tool or its parameters, but keep every value the reference calls use (numbers, names, units, "
        "dates) stated or unambiguously implied, so that exactly the same calls stay the correct response. "
        'Answer with JSON only: {"query": str}.'
    ),
    "ambiguous_query": (
        "Rewrite the user's request so that it leaves out or makes vague a piece of information one of the "
        "reference calls needs for a required argument, so that a careful assistant must ask the user for "
        'clarification before calling any tool. Answer with JSON only: {"query": str}.'
    ),
}
_CONSISTENCY_PROMPT = (
    "Given the tools, a user request and the reference tool calls, decide whether the reference calls are "
    "still exactly the correct response to the request (same functions, same argument values; no call at "
    'all when the reference is empty). Answer with JSON only: {"oracle_still_correct": bool}.'
)
_ERROR_PAYLOADS: tuple[Any, ...] = (
    {"error": {"code": 500, "type": "InternalServerError", "message": "unexpected failure while handling request"}},
    {"status": "error", "code": 503, "message": "Service temporarily unavailable, please retry later"},
    {"error": "RateLimitExceeded", "message": "too many requests", "retry_after_s": 30},
    "ERROR: connection reset by peer before a response was received",
    {"result": None, "error": "TimeoutError: upstream service did not answer within 30s"},
)
_SERVERS: tuple[str, ...] = ("api-eu-1", "api-us-2", "edge-cache-3", "worker-7")
_XML_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True)
class AugmentResult:
    """Augmented rows (`AUGMENTED_TRAJECTORY_SCHEMA`) and what could not be augmented (`AUGMENT_REJECT_SCHEMA`)."""

    rows: pl.DataFrame
    rejects: pl.DataFrame


def _rng(seed: int, base_id: str, kind: str) -> random.Random:
    return random.Random(int(sha256_hex(f"{seed}:{base_id}:{kind}")[:16], 16))


def render_oracle_calls(oracle: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]]) -> list[dict]:
    """The oracle as concrete calls `[{"name", "arguments"}]`, from the first accepted value of each parameter."""
    specs = {t["name"]: parse_function_spec(dict(t)) for t in tools}
    return [
        {"name": call.name, "arguments": first_accepted_arguments(call, specs.get(call.name))}
        for call in parse_ground_truth(list(oracle))
    ]


@lru_cache(maxsize=4096)
def oracle_reward(oracle_json: str, tools_json: str) -> RewardResult:
    """Reward of the oracle's own rendered calls against the offered tools (1.0 for a sound example).

    Memoized: most augmentations keep the base's tools, so the same pair is scored many times.
    """
    oracle, tools = json.loads(oracle_json), json.loads(tools_json)
    expected: tuple[ExpectedCall, ...] = parse_ground_truth(oracle)
    return score_output(render_oracle_calls(oracle, tools), expected, [parse_function_spec(t) for t in tools])


def _row(base: Mapping[str, Any], kind: str, behaviour: str, **changes: Any) -> dict[str, Any]:
    row = {column: base.get(column) for column in TRAJECTORY_SCHEMA}
    row.update(changes)
    row["trajectory_id"] = f"{base['trajectory_id']}~{kind}"
    row["oracle_json"] = base["oracle_json"]
    return {**row, "base_trajectory_id": base["trajectory_id"], "augmentation": kind, "expected_behaviour": behaviour}


def _reject(base: Mapping[str, Any], kind: str, reason: str, detail: str = "") -> dict[str, Any]:
    """One `AUGMENT_REJECT_SCHEMA` row; an unknown reason code is a bug and raises."""
    if reason not in AUGMENT_REASONS:
        raise ValueError(f"unknown augmentation reason {reason!r}; expected one of {AUGMENT_REASONS}")
    where = {"base_trajectory_id": base["trajectory_id"], "augmentation": kind}
    return Rejected(f"{base['trajectory_id']}~{kind}", reason, detail[:500], base.get("query"), where).row()


# ---------------------------------------------------------------- distractor tools


def _spec_body(spec: Mapping[str, Any]) -> str:
    return canonical_json({"description": spec.get("description", ""), "parameters": spec.get("parameters", {})})


def distractor_candidates(
    tools: Sequence[Mapping[str, Any]], oracle_names: Sequence[str], candidates: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Candidates that may join `tools`: no name (normalized) already offered or in the oracle, no copy of
    an oracle tool's description and parameters, each name once; order kept."""
    taken = {normalize_string(t["name"]) for t in tools} | {normalize_string(n) for n in oracle_names}
    oracle_bodies = {_spec_body(t) for t in tools if t["name"] in set(oracle_names)}
    kept = []
    for candidate in candidates:
        key = normalize_string(str(candidate.get("name", "")))
        if not key or key in taken or _spec_body(candidate) in oracle_bodies:
            continue
        taken.add(key)
        kept.append(dict(candidate))
    return kept


def _with_distractors(
    base: Mapping[str, Any],
    kind: str,
    pool: Sequence[dict[str, Any]],
    similar_tools: Callable[[dict[str, Any]], list[dict[str, Any]]],
    rng: random.Random,
    n_distractors: int,
) -> dict[str, Any]:
    tools = json.loads(base["tools_json"])
    oracle_names = [call.name for call in parse_ground_truth(json.loads(base["oracle_json"]))]
    if not oracle_names:
        return _reject(base, kind, "no_call_oracle", "a distractor could make an irrelevance query answerable")
    if kind == "distractor_similar":
        found = [c for t in tools if t["name"] in oracle_names for c in similar_tools(dict(t))]
        chosen = distractor_candidates(tools, oracle_names, found)[:n_distractors]
    else:
        # a random draw a little larger than needed usually suffices; the whole pool only when it does not
        draw = [pool[i] for i in rng.sample(range(len(pool)), min(len(pool), 2 * n_distractors + len(tools)))]
        chosen = distractor_candidates(tools, oracle_names, draw)[:n_distractors]
        if len(chosen) < n_distractors:
            eligible = distractor_candidates(tools, oracle_names, pool)
            chosen = rng.sample(eligible, min(n_distractors, len(eligible)))
    if not chosen:
        return _reject(base, kind, "no_distractor_candidates", "every candidate collides with an offered tool")
    offered = list(tools)
    for spec in chosen:
        offered.insert(rng.randint(0, len(offered)), spec)
    return _row(base, kind, "call", tools_json=canonical_json(offered))


# ---------------------------------------------------------------- noisy tool outputs


def _xml(tag: str, value: Any) -> str:
    name = _XML_NAME.sub("_", tag) or "value"
    name = f"_{name}" if not (name[0].isalpha() or name[0] == "_") else name
    if isinstance(value, dict):
        inner = "".join(_xml(str(k), v) for k, v in value.items())
    elif isinstance(value, list):
        inner = "".join(_xml("item", v) for v in value)
    else:
        inner = escape(json.dumps(value) if value is None or isinstance(value, bool) else str(value))
    return f"<{name}>{inner}</{name}>"


def _text_lines(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in _text_lines(v, f"{prefix}{k}.")] or [f"{prefix[:-1]}: -"]
    if isinstance(value, list):
        return [line for i, v in enumerate(value) for line in _text_lines(v, f"{prefix}{i + 1}.")] or [
            f"{prefix[:-1]}: none"
        ]
    label = prefix[:-1] or "result"
    return [f"{label}: {value}"]


def noisy_output(kind: str, name: str, output: Any, rng: random.Random) -> Any:
    """One tool output turned into its `kind` of noise (the call that produced it is unchanged)."""
    if kind == "noisy_extra_fields":
        extras = {
            "request_id": f"{rng.getrandbits(64):016x}",
            "latency_ms": rng.randint(3, 2500),
            "server": rng.choice(_SERVERS),
            "cached": rng.random() < 0.5,
        }
        body = dict(output) if isinstance(output, dict) else {"result": output}
        return {**body, **{(k if k not in body else f"x_{k}"): v for k, v in extras.items()}}
    if kind == "format_xml":
        return '<?xml version="1.0"?>' + _xml("response", {"tool": name, "result": output})
    if kind == "format_text":
        return "\n".join([f"Result of {name}:", *_text_lines(output)])
    if kind == "truncated_output":
        text = canonical_json(output)
        cut = max(1, int(len(text) * rng.uniform(0.3, 0.7)))
        return text[:cut] + "...[truncated]"
    if kind == "erroneous_output":
        return rng.choice(_ERROR_PAYLOADS)
    raise ValueError(f"not an output augmentation: {kind!r}")


def _with_noisy_outputs(base: Mapping[str, Any], kind: str, rng: random.Random) -> dict[str, Any]:
    outputs = json.loads(base.get("tool_outputs_json") or "[]")
    if not outputs:
        return _reject(base, kind, "no_tool_outputs", "the base has no recorded tool outputs to perturb")
    if kind == "erroneous_output":
        broken = rng.randrange(len(outputs))
        noisy = [
            {**o, "output": noisy_output(kind, o["name"], o["output"], rng)} if i == broken else o
            for i, o in enumerate(outputs)
        ]
        return _row(base, kind, "detect_error", tool_outputs_json=canonical_json(noisy), final_answer=None)
    noisy = [{**o, "output": noisy_output(kind, o["name"], o["output"], rng)} for o in outputs]
    return _row(base, kind, "call", tool_outputs_json=canonical_json(noisy))


# ---------------------------------------------------------------- query rewrites (LLM)


def _example_text(base: Mapping[str, Any], query: str) -> str:
    body = {
        "tools": json.loads(base["tools_json"]),
        "user_request": query,
        "reference_calls": render_oracle_calls(json.loads(base["oracle_json"]), json.loads(base["tools_json"])),
    }
    return json.dumps(body, indent=1, sort_keys=True)


def rewrite_requests(bases: Sequence[Mapping[str, Any]], kind: str, seed: int) -> list[ChatRequest]:
    """Query-rewrite requests of one `kind` (`indirect_query` / `ambiguous_query`), id `<base id>|<kind>`."""
    return [
        ChatRequest(
            messages=(
                {"role": "system", "content": _REWRITE_PROMPTS[kind]},
                {"role": "user", "content": _example_text(base, base["query"])},
            ),
            json_schema=REWRITE_SCHEMA,
            max_tokens=192,
            temperature=0.7,
            seed=seed,
            request_id=f"{base['trajectory_id']}|{kind}",
        )
        for base in bases
    ]


def _json_answer(result: ChatResult) -> Any:
    if result.parsed is not None:
        return result.parsed
    try:
        return json.loads(result.text or "")
    except json.JSONDecodeError:
        return None


def parse_rewrite(base: Mapping[str, Any], result: ChatResult) -> tuple[str | None, str]:
    """The rewritten query, or None with the reason (LLM error, unparseable, empty or unchanged)."""
    if result.error is not None:
        return None, f"llm_error: {result.error}"
    answer = _json_answer(result)
    query = answer.get("query") if isinstance(answer, dict) else None
    if not isinstance(query, str) or not query.strip():
        return None, f"unparseable_rewrite: {str(result.text)[:200]}"
    query = normalize_text(query)
    if query.casefold() == normalize_text(base["query"]).casefold():
        return None, "unchanged_query"
    return query, ""


def consistency_requests(bases: Sequence[Mapping[str, Any]], queries: Sequence[str]) -> list[ChatRequest]:
    """Greedy checks that each base's oracle is still the right answer to its rewritten query."""
    return [
        ChatRequest(
            messages=(
                {"role": "system", "content": _CONSISTENCY_PROMPT},
                {"role": "user", "content": _example_text(base, query)},
            ),
            json_schema=CONSISTENCY_SCHEMA,
            max_tokens=32,
            request_id=f"{base['trajectory_id']}|consistency",
        )
        for base, query in zip(bases, queries, strict=True)
    ]


def _rewritten_rows(
    bases: Sequence[Mapping[str, Any]], kind: str, client: LLMClient, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, rejects = [], []
    if kind == "ambiguous_query":
        no_call = [b for b in bases if not json.loads(b["oracle_json"])]
        rejects += [_reject(b, kind, "no_call_oracle", "nothing to clarify when no call is right") for b in no_call]
        bases = [b for b in bases if json.loads(b["oracle_json"])]
    if not bases:
        return rows, rejects
    rewritten: list[tuple[Mapping[str, Any], str]] = []
    for base, result in zip(bases, client.chat(rewrite_requests(bases, kind, seed)), strict=True):
        query, reason = parse_rewrite(base, result)
        if query is None:
            code, _, detail = reason.partition(": ")
            rejects.append(_reject(base, kind, code, detail))
        else:
            rewritten.append((base, query))
    if kind == "ambiguous_query":
        return [_row(b, kind, "ask_clarification", query=q, final_answer=None) for b, q in rewritten], rejects
    checks = (
        client.chat(consistency_requests([b for b, _ in rewritten], [q for _, q in rewritten])) if rewritten else []
    )
    for (base, query), check in zip(rewritten, checks, strict=True):
        answer = _json_answer(check) if check.error is None else None
        verdict = answer.get("oracle_still_correct") if isinstance(answer, dict) else None
        if verdict is True:
            rows.append(_row(base, kind, "call", query=query))
        elif verdict is False:
            rejects.append(_reject(base, kind, "oracle_not_preserved", query))
        else:
            rejects.append(_reject(base, kind, "consistency_unparseable", str(check.error or check.text)[:200]))
    return rows, rejects


# ---------------------------------------------------------------- orchestration


def augment_all(
    bases: pl.DataFrame,
    pool: Sequence[Mapping[str, Any]],
    similar_tools: Callable[[dict[str, Any]], list[dict[str, Any]]],
    client: LLMClient | None,
    kinds: Sequence[str] = AUGMENTATIONS,
    seed: int = 0,
    n_distractors: int = DEFAULT_DISTRACTORS,
) -> AugmentResult:
    """Augment every base trajectory with every kind; LLM rewrites go out as one batch per kind.

    A base whose own oracle does not score 1 against its tools is not augmented (reason
    `base_oracle_fails`): nothing derived from it could pass the invariant. `client` may be None only
    when no query rewrite is asked for.
    """
    unknown = sorted(set(kinds) - set(AUGMENTATIONS))
    if unknown:
        raise ValueError(f"unknown augmentations {unknown}; known: {AUGMENTATIONS}")
    if client is None and set(kinds) & set(QUERY_KINDS):
        raise ValueError("query rewrites need an LLM client")
    ordered_pool = sorted((dict(spec) for spec in pool), key=canonical_json)  # independent of the pool's order
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    sound = []
    for base in bases.iter_rows(named=True):
        check = oracle_reward(base["oracle_json"], base["tools_json"])
        if check.score == 1.0:
            sound.append(base)
        else:
            rejects += [_reject(base, kind, "base_oracle_fails", check.detail) for kind in kinds]
    for kind in kinds:
        if kind in QUERY_KINDS and client is not None:  # checked above: rewrites always have a client
            made, failed = _rewritten_rows(sound, kind, client, seed)
            rows += made
            rejects += failed
            continue
        for base in sound:
            rng = _rng(seed, base["trajectory_id"], kind)
            if kind in DISTRACTOR_KINDS:
                out = _with_distractors(base, kind, ordered_pool, similar_tools, rng, n_distractors)
            else:
                out = _with_noisy_outputs(base, kind, rng)
            (rejects if "reason" in out else rows).append(out)  # reject rows carry a reason, rows do not
    kept = []
    for row in rows:
        check = oracle_reward(row["oracle_json"], row["tools_json"])
        if check.score == 1.0:
            kept.append(row)
        else:
            rejects.append(_reject(row, row["augmentation"], "oracle_fails_reward", check.detail))
    return AugmentResult(
        rows=pl.DataFrame(kept, schema=AUGMENTED_TRAJECTORY_SCHEMA),
        rejects=pl.DataFrame(rejects, schema=AUGMENT_REJECT_SCHEMA),
    )


def augment(
    base: Mapping[str, Any],
    pool: Sequence[Mapping[str, Any]],
    similar_tools: Callable[[dict[str, Any]], list[dict[str, Any]]],
    client: LLMClient | None,
    kinds: Sequence[str] = AUGMENTATIONS,
    seed: int = 0,
    n_distractors: int = DEFAULT_DISTRACTORS,
) -> AugmentResult:
    """Augment one base trajectory (a row dict of the trajectory frame); see `augment_all`."""
    frame = pl.DataFrame([{c: base.get(c) for c in TRAJECTORY_SCHEMA}], schema=TRAJECTORY_SCHEMA)
    return augment_all(frame, pool, similar_tools, client, kinds, seed, n_distractors)


def oracle_invariant_violations(base: pl.DataFrame, augmented: pl.DataFrame) -> pl.DataFrame:
    """Augmented rows that break the oracle invariant (`VIOLATION_SCHEMA`), for the blocking check.

    Violations: `base_missing` (no base row), `oracle_changed` (oracle_json not byte-identical to the
    base's) and `oracle_fails_reward` (the oracle, rendered from first accepted values, scored 1 on the
    base's tools but not on the augmented tool list).
    """
    bases = {row["trajectory_id"]: row for row in base.select("trajectory_id", "oracle_json", "tools_json").to_dicts()}
    found = []
    for row in augmented.iter_rows(named=True):
        source = bases.get(row["base_trajectory_id"])
        ids = {k: row[k] for k in ("trajectory_id", "base_trajectory_id", "augmentation")}
        if source is None:
            found.append({**ids, "violation": "base_missing", "detail": "no base row with that id"})
        elif row["oracle_json"].encode("utf-8") != source["oracle_json"].encode("utf-8"):
            found.append({**ids, "violation": "oracle_changed", "detail": row["oracle_json"][:300]})
        elif oracle_reward(source["oracle_json"], source["tools_json"]).score == 1.0:
            check = oracle_reward(row["oracle_json"], row["tools_json"])
            if check.score != 1.0:
                found.append({**ids, "violation": "oracle_fails_reward", "detail": f"{check.outcome}: {check.detail}"})
    return pl.DataFrame(found, schema=VIOLATION_SCHEMA)
