"""COVERT stage 1: self-evolving synthesis of tool-use trajectories with multi-level validation.

A seed is a small set (1-3) of tool specs in the canonical BFCL form. For each seed the LLM writes a
trajectory as JSON: `{"query", "calls": [{"name", "arguments"}], "final_answer"}`. Each candidate
passes three levels, and the first one it fails names its reject row:
1. `format`: the output is a JSON object of that shape, every call names a tool of the seed, and its
   arguments follow the tool's schema (required present, no unknown parameter, types and enums);
2. `execution`: every call runs without error on the simulated backend; the outputs are recorded;
3. `judge`: the project's rubric engine (`ops.rubrics.grading.grade`) grades one criterion per
   candidate (`JUDGE_CRITERION`: the calls answer the query and the final answer follows from the tool
   outputs) on the trajectory as a conversation; "met" accepts it, "not met" or "ungraded" (no
   usable verdict after the engine's retries) rejects it with the judge's explanation or the reason.
Self-evolving: a seed that fails in round r is asked again in round r+1 with the failure level and
reason in its prompt, for a configurable number of rounds. Rows in = accepted seeds + rejects, per
round, which `stats` counts level by level.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import polars as pl

from ops.common.llm import ChatRequest, ChatResult, LLMClient, UsageTotals
from ops.common.text import sha256_hex
from ops.rubrics.criteria import Criterion
from ops.rubrics.grading import MET, NOT_MET, GradingItem, grade
from ops.tooluse.backends import check_arguments
from ops.tooluse.trajectories import REJECTS_SCHEMA, TRAJECTORY_SCHEMA, canonical_json, reject_row

LEVELS: tuple[str, ...] = ("format", "execution", "judge")
ORIGIN = "synthesized"
PROMPT_VERSION = "synthesis-v1"
DEFAULT_TEMPERATURE = 0.7  # synthesis samples, so that a retried seed gets a fresh draw
DEFAULT_MAX_TOKENS = 512

STATS_SCHEMA: dict[str, pl.DataType] = {
    "round": pl.Int64(),
    "level": pl.String(),
    "entered": pl.Int64(),
    "passed": pl.Int64(),
}
JUDGE_CRITERION_ID = "synthesis_consistency"
JUDGE_CRITERION = (
    "The tool calls in the conversation answer the user's query, and the final answer follows from the tool "
    "outputs without inventing facts"
)

_SYSTEM_PROMPT = (
    "You write realistic training data for tool-using assistants. Given tool specifications, invent a "
    "natural user request that these tools can serve, the exact tool calls that serve it (use only the "
    "given tools, keyword arguments that follow each schema: every required parameter, correct types, "
    "no invented parameters, concrete values stated in the request), and a short final answer for the "
    "user. Answer with JSON only: "
    '{"query": str, "calls": [{"name": str, "arguments": object}], "final_answer": str}.'
)


class ToolExecutor(Protocol):
    """What synthesis needs from the simulated backend: run one call, get a typed result."""

    def execute(self, name: str, arguments: Mapping[str, Any]) -> Any:
        """Return an object with `ok`, `output`, `error_type` and `message`."""
        ...


@dataclass(frozen=True)
class Seed:
    """A synthesis seed: an id and the 1-3 canonical tool specs the trajectory may use."""

    seed_id: str
    tools: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Failure:
    """Why a seed failed a round: the validation level and a reason, fed back into its next prompt."""

    level: str
    reason: str


@dataclass(frozen=True)
class SynthesisResult:
    """Accepted trajectories (TRAJECTORY_SCHEMA), rejects (REJECTS_SCHEMA), per-level stats and LLM usage."""

    trajectories: pl.DataFrame
    rejects: pl.DataFrame
    stats: pl.DataFrame
    usage: UsageTotals

    @property
    def acceptance_rate(self) -> float:
        """Accepted seeds over distinct seeds tried (0 when none were)."""
        tried = self.stats.filter((pl.col("level") == LEVELS[0]) & (pl.col("round") == 0))["entered"].sum()
        return self.trajectories.height / tried if tried else 0.0


@dataclass(frozen=True)
class Candidate:
    """A trajectory that passed the format level, with the tool outputs once executed."""

    seed: Seed
    query: str
    calls: tuple[tuple[str, dict[str, Any]], ...]
    final_answer: str
    outputs: tuple[dict[str, Any], ...] = ()


class CandidateRejected(ValueError):
    """A candidate failed a validation level."""


def make_seeds(specs: Sequence[Mapping[str, Any]], n_seeds: int, max_tools: int = 3, seed: int = 0) -> list[Seed]:
    """Draw `n_seeds` seeds of 1..`max_tools` distinct tools from `specs`, deterministic for `seed`.

    Specs are put in canonical-JSON order first and only the first spec of each name is kept (a seed
    must not offer two tools under one name), so the draw does not depend on the order given. The seed
    id hashes the draw's position and tool names, so the same draw gets the same id on every run.
    """
    rng = random.Random(seed)
    by_name: dict[str, dict[str, Any]] = {}
    for spec in sorted((dict(s) for s in specs), key=canonical_json):
        by_name.setdefault(spec["name"], spec)
    pool = list(by_name.values())
    seeds = []
    for _ in range(n_seeds if pool else 0):
        tools = rng.sample(pool, rng.randint(1, min(max_tools, len(pool))))
        names = "|".join(t["name"] for t in tools)
        seeds.append(Seed(seed_id=f"seed_{sha256_hex(f'{len(seeds)}:{names}')[:12]}", tools=tuple(tools)))
    return seeds


def trajectory_schema(tool_names: Sequence[str]) -> dict[str, Any]:
    """JSON schema of a synthesized trajectory, with call names limited to the seed's tools."""
    return {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "calls": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string", "enum": list(tool_names)},
                        "arguments": {"type": "object"},
                    },
                    "required": ["name", "arguments"],
                },
            },
            "final_answer": {"type": "string"},
        },
        "required": ["query", "calls", "final_answer"],
    }


def synthesis_requests(
    seeds: Sequence[Seed],
    round: int,
    feedback: Mapping[str, Failure] | None = None,
    temperature: float = DEFAULT_TEMPERATURE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
) -> list[ChatRequest]:
    """One trajectory request per seed; a seed in `feedback` gets its last failure level and reason.

    `request_id` is `"<seed_id>|<round>"`; the round is also the sampling seed, so a retry is a new draw.
    """
    requests = []
    for seed in seeds:
        user = "Tools:\n" + json.dumps(list(seed.tools), indent=1, sort_keys=True)
        failure = (feedback or {}).get(seed.seed_id)
        if failure is not None:
            user += (
                f"\n\nYour previous attempt for these tools failed the {failure.level} check: {failure.reason}\n"
                "Write a new trajectory that avoids this problem."
            )
        requests.append(
            ChatRequest(
                messages=({"role": "system", "content": _SYSTEM_PROMPT}, {"role": "user", "content": user}),
                json_schema=trajectory_schema([t["name"] for t in seed.tools]),
                max_tokens=max_tokens,
                temperature=temperature,
                seed=round,
                request_id=f"{seed.seed_id}|{round}",
            )
        )
    return requests


def _parsed_object(result: ChatResult) -> Any:
    if result.error is not None:
        raise CandidateRejected(f"llm_error: {result.error}")
    if result.parsed is not None:
        return result.parsed
    try:
        return json.loads(result.text or "")
    except json.JSONDecodeError as exc:
        raise CandidateRejected(f"not_json: {exc}") from exc


def parse_candidate(seed: Seed, result: ChatResult) -> Candidate:
    """Level 1 (format and schema): the candidate trajectory of `result`, or `CandidateRejected` with the reason."""
    data = _parsed_object(result)
    if not isinstance(data, dict):
        raise CandidateRejected(f"not_object: got {type(data).__name__}")
    query, calls, answer = data.get("query"), data.get("calls"), data.get("final_answer")
    if not isinstance(query, str) or not query.strip():
        raise CandidateRejected("missing_query: 'query' must be a non-empty string")
    if not isinstance(answer, str) or not answer.strip():
        raise CandidateRejected("missing_final_answer: 'final_answer' must be a non-empty string")
    if not isinstance(calls, list) or not calls:
        raise CandidateRejected("no_calls: 'calls' must be a non-empty list")
    specs = {t["name"]: t for t in seed.tools}
    parsed: list[tuple[str, dict[str, Any]]] = []
    for i, call in enumerate(calls):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise CandidateRejected(f"malformed_call: call {i} is not an object with a string 'name'")
        arguments = call.get("arguments", {})
        if not isinstance(arguments, dict):
            raise CandidateRejected(f"malformed_call: call {i} arguments are {type(arguments).__name__}, not an object")
        if call["name"] not in specs:
            raise CandidateRejected(f"unknown_tool: {call['name']!r} is not one of {sorted(specs)}")
        problem = check_arguments(specs[call["name"]], arguments)
        if problem is not None:
            raise CandidateRejected(f"bad_arguments: {call['name']}: {problem.error_type}: {problem.message}")
        parsed.append((call["name"], {k: v for k, v in arguments.items() if v is not None}))
    return Candidate(seed=seed, query=query.strip(), calls=tuple(parsed), final_answer=answer.strip())


def execute_candidate(candidate: Candidate, backend: ToolExecutor) -> Candidate:
    """Level 2 (execution): run every call on the backend; `CandidateRejected` names the first failing call."""
    outputs = []
    for name, arguments in candidate.calls:
        result = backend.execute(name, arguments)
        if not result.ok:
            raise CandidateRejected(f"{result.error_type}: {name}: {result.message}")
        outputs.append({"name": name, "output": result.output})
    return Candidate(candidate.seed, candidate.query, candidate.calls, candidate.final_answer, tuple(outputs))


def judge_items(candidates: Sequence[Candidate], round: int, model: str) -> list[GradingItem]:
    """Level 3 items for the rubric engine: one `JUDGE_CRITERION` per executed candidate.

    The conversation is the trajectory: the user's query, the assistant's calls (JSON), the tool
    outputs (role "tool") and the final answer as the assistant turn to grade (turn 1). The response id
    is the synthesis request id `"<seed_id>|<round>"`, the item id the trajectory id; `model` names
    the synthesizing model.
    """
    items = []
    for c in candidates:
        trajectory_id = f"synth:{c.seed.seed_id}"
        calls = [{"name": name, "arguments": arguments} for name, arguments in c.calls]
        conversation = (
            {"role": "user", "content": c.query},
            {"role": "assistant", "content": json.dumps(calls, sort_keys=True, default=str)},
            {"role": "tool", "content": json.dumps(list(c.outputs), indent=1, sort_keys=True, default=str)},
            {"role": "assistant", "content": c.final_answer},
        )
        criterion = Criterion(JUDGE_CRITERION_ID, trajectory_id, 1, JUDGE_CRITERION, 1.0, category="tooluse")
        items.append(GradingItem(f"{c.seed.seed_id}|{round}", model, trajectory_id, 1, conversation, criterion))
    return items


def judge_verdict(grade_row: Mapping[str, Any]) -> None:
    """Level 3: return when the engine graded the trajectory consistent ("met"), else `CandidateRejected`.

    The reason is "inconsistent: <the judge's explanation>", or "judge_ungraded: <the engine's reason>"
    when the judge gave no usable verdict.
    """
    if grade_row["status"] == MET:
        return
    if grade_row["status"] == NOT_MET:
        raise CandidateRejected(f"inconsistent: {str(grade_row.get('explanation') or '')[:300]}")
    raise CandidateRejected(f"judge_ungraded: {str(grade_row.get('error') or '')[:300]}")


def oracle_from_calls(calls: Sequence[tuple[str, Mapping[str, Any]]], tools: Sequence[Mapping[str, Any]]) -> list:
    """BFCL possible-answer oracle of the calls: each given value is the one accepted value.

    An optional parameter the call leaves out is listed with "" (may be omitted) and, when the schema
    has one, its default: passing the default explicitly is the same call, as in BFCL's answers.
    """
    specs = {t["name"]: t for t in tools}
    oracle = []
    for name, arguments in calls:
        accepted: dict[str, list[Any]] = {param: [value] for param, value in arguments.items()}
        parameters = specs[name].get("parameters") or {}
        required = set(parameters.get("required") or [])
        for param, schema in (parameters.get("properties") or {}).items():
            if param not in accepted and param not in required:
                accepted[param] = ["", schema["default"]] if "default" in schema else [""]
        oracle.append({name: accepted})
    return oracle


def _trajectory_row(candidate: Candidate) -> dict[str, Any]:
    return {
        "trajectory_id": f"synth:{candidate.seed.seed_id}",
        "origin": ORIGIN,
        "category": ORIGIN,
        "query": candidate.query,
        "tools_json": canonical_json(list(candidate.seed.tools)),
        "oracle_json": canonical_json(oracle_from_calls(candidate.calls, candidate.seed.tools)),
        "tool_outputs_json": canonical_json(list(candidate.outputs)),
        "final_answer": candidate.final_answer,
    }


def _raw_payload(result: ChatResult) -> Any:
    return result.parsed if result.parsed is not None else {"text": result.text, "error": result.error}


@dataclass
class _Round:
    """What one synthesis round produced: accepted rows, failures by seed id, reject rows, stats rows."""

    accepted: list[dict[str, Any]]
    failures: dict[str, Failure]
    rejects: list[dict[str, Any]]
    stats: list[dict[str, Any]]


@dataclass
class _RecordingClient:
    """The synthesis client, keeping every result (trajectory and judge calls) for `UsageTotals`."""

    client: LLMClient
    results: list[ChatResult] = field(default_factory=list)

    @property
    def model_id(self) -> str:
        """The wrapped client's model."""
        return self.client.model_id

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Answer through the wrapped client and record the results."""
        results = self.client.chat(requests)
        self.results += results
        return results


@dataclass(frozen=True)
class _JudgeSettings:
    """How the level-3 judge calls the rubric engine (see `ops.rubrics.grading.grade`)."""

    max_tokens: int
    explanation_max_chars: int | None


def _run_round(
    client: LLMClient,
    pending: Sequence[Seed],
    round: int,
    feedback: Mapping[str, Failure],
    backend: ToolExecutor,
    temperature: float,
    max_tokens: int,
    judge: _JudgeSettings,
) -> _Round:
    out = _Round([], {}, [], [])

    def fail(seed: Seed, level: str, reason: str, payload: Any) -> None:
        out.failures[seed.seed_id] = Failure(level, reason)
        code, _, detail = reason.partition(": ")
        out.rejects.append(reject_row(f"synth:{seed.seed_id}", ORIGIN, level, round, code, detail, payload))

    results = client.chat(synthesis_requests(pending, round, feedback, temperature, max_tokens))
    executed: list[Candidate] = []
    passed_format = 0
    for seed, result in zip(pending, results, strict=True):
        try:
            candidate = parse_candidate(seed, result)
        except CandidateRejected as exc:
            fail(seed, "format", str(exc), _raw_payload(result))
            continue
        passed_format += 1
        try:
            executed.append(execute_candidate(candidate, backend))
        except CandidateRejected as exc:
            fail(seed, "execution", str(exc), _raw_payload(result))
    items = judge_items(executed, round, client.model_id)
    grades = grade(client, items, max_tokens=judge.max_tokens, explanation_max_chars=judge.explanation_max_chars)
    for candidate, grade_row in zip(executed, grades.iter_rows(named=True), strict=True):
        try:
            judge_verdict(grade_row)
        except CandidateRejected as exc:
            fail(candidate.seed, "judge", str(exc), _trajectory_row(candidate))
            continue
        out.accepted.append(_trajectory_row(candidate))
    entered = (len(pending), passed_format, len(executed))
    passed = (passed_format, len(executed), len(out.accepted))
    out.stats += [
        {"round": round, "level": level, "entered": n_in, "passed": n_out}
        for level, n_in, n_out in zip(LEVELS, entered, passed, strict=True)
    ]
    return out


def synthesize(
    client: LLMClient,
    seeds: Sequence[Seed],
    backend: ToolExecutor,
    rounds: int,
    temperature: float = DEFAULT_TEMPERATURE,
    max_tokens: int = DEFAULT_MAX_TOKENS,
    judge_max_tokens: int = 512,
    judge_explanation_max_chars: int | None = None,
) -> SynthesisResult:
    """Run `rounds` rounds of synthesis; each round retries the seeds that failed the previous one.

    Every round sends one batch of trajectory requests, then grades the executed candidates through
    the rubric engine (judge retries included). `judge_max_tokens` and `judge_explanation_max_chars`
    go to `grade` (a small local judge wants e.g. 256 and 150, as the shopbench grades use). A seed is
    accepted at most once; a seed still failing after the last round is only in the rejects. `usage`
    counts every call, judge calls included.
    """
    accepted: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    stats: list[dict[str, Any]] = []
    recorder = _RecordingClient(client)
    judge = _JudgeSettings(judge_max_tokens, judge_explanation_max_chars)
    pending: list[Seed] = list(seeds)
    feedback: dict[str, Failure] = {}
    for round in range(rounds):
        if not pending:
            break
        done = _run_round(recorder, pending, round, feedback, backend, temperature, max_tokens, judge)
        accepted += done.accepted
        rejects += done.rejects
        stats += done.stats
        pending = [s for s in pending if s.seed_id in done.failures]
        feedback = done.failures
    return SynthesisResult(
        trajectories=pl.DataFrame(accepted, schema=TRAJECTORY_SCHEMA),
        rejects=pl.DataFrame(rejects, schema=REJECTS_SCHEMA),
        stats=pl.DataFrame(stats, schema=STATS_SCHEMA),
        usage=UsageTotals.from_results(recorder.results),
    )
