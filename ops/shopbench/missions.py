"""Load rubric-graded missions from three JSONL formats into one missions frame and one criteria frame.

Formats (`source_format`):
- "assay": the project's own schema (README, samples/shopbench/missions.jsonl): criteria nested under
  the user turn they grade; category and subcategory must come from `ops.shopbench.taxonomy`.
- "healthbench": OpenAI's HealthBench records. The conversation's user messages become the fixed user
  turns and every rubric item grades the last one; the assistant messages of the record (its scripted
  history) are kept in `extra_json`, because here the model under test writes its own earlier answers.
  Mission category is the `theme:` example tag, subcategory the `physician_agreed_category:` tag; a
  criterion's subcategory is its `axis:` tag. HealthBench has no optional criteria: all are required.
- "srb": a local copy of the public Shopping Reasoning Bench release, whose field names are not known
  here, so they are mapped tolerantly (see `_SRB_KEYS`); anything not mapped is kept in `extra_json`.
  A missing weight counts as 1 (equal importance) and a missing required flag as required.

Validation is per mission, and one bad criterion quarantines its whole mission with the reason of the
first rule broken: a mission graded on part of its rubric would score differently from the one its
authors wrote, so nothing is silently dropped. Every input line ends up in exactly one place: the
result is the shared `Split` (`ops.common.quarantine`), kept missions + quarantined records = rows in,
and a quarantine row has the shared columns (record_id = the mission id, or "<format>#<line>" when the
record has none; a reason code from `QUARANTINE_REASONS`; the detail; the line) plus where it came from
(`source_format`, `record_number`). A later record reusing a mission id (or a criterion
id) is quarantined as a duplicate; the first one stands.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from ops.common.quarantine import QUARANTINE_SCHEMA as SHARED_QUARANTINE_SCHEMA
from ops.common.quarantine import Rejected, Split, split
from ops.rubrics.criteria import Criterion, criteria_frame
from ops.shopbench.taxonomy import CATEGORIES, is_known

SOURCE_FORMATS: tuple[str, ...] = ("assay", "healthbench", "srb")
MISSIONS_SCHEMA: dict[str, pl.DataType] = {
    "mission_id": pl.String(),
    "source_format": pl.String(),
    "category": pl.String(),
    "subcategory": pl.String(),
    "title": pl.String(),
    "n_turns": pl.Int64(),
    "user_turns": pl.List(pl.String()),
    "products": pl.List(pl.String()),
    "extra_json": pl.String(),
}
QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    **SHARED_QUARANTINE_SCHEMA,
    "source_format": pl.String(),
    "record_number": pl.Int64(),
}
# Quarantine reason codes (the `reason` column; what exactly was wrong is in `detail`).
QUARANTINE_REASONS: tuple[str, ...] = (
    "unreadable",
    "missing_id",
    "duplicate_mission_id",
    "missing_user_turn",
    "unknown_category",
    "empty_criterion_text",
    "non_numeric_weight",
    "zero_weight",
    "bad_required_flag",
    "turn_index_out_of_range",
    "duplicate_criterion_id",
    "no_criteria",
)

# Tolerant field names for the Shopping Reasoning Bench release, first match wins.
_SRB_KEYS: dict[str, tuple[str, ...]] = {
    "id": ("mission_id", "id", "uid", "mission_uid", "example_id", "prompt_id"),
    "conversation": ("turns", "conversation", "messages", "prompt", "dialogue", "dialog"),
    "criteria": ("rubric", "rubrics", "criteria", "rubric_items"),
    "category": ("category", "reasoning_category", "task_category"),
    "subcategory": ("subcategory", "sub_category", "reasoning_subcategory", "task_subcategory"),
    "title": ("title", "name", "summary"),
    "products": ("products", "product_ids", "items"),
    "user_text": ("user", "query", "utterance", "user_message", "content", "text"),
    "criterion_id": ("criterion_id", "rubric_id", "id"),
    "criterion_text": ("text", "criterion", "description", "rubric", "content"),
    "weight": ("weight", "importance", "points", "score"),
    "required": ("required", "is_required", "type", "requirement"),
    "turn_index": ("turn_index", "turn_idx", "turn"),
}
_TRUE_WORDS = frozenset({"true", "yes", "required", "must", "mandatory", "1"})
_FALSE_WORDS = frozenset({"false", "no", "optional", "nice_to_have", "nice-to-have", "above_and_beyond", "0"})


@dataclass(frozen=True)
class MissionsResult:
    """The kept missions and quarantined records with how many were read (`split`), and the missions' criteria."""

    split: Split
    criteria: pl.DataFrame

    @property
    def missions(self) -> pl.DataFrame:
        return self.split.kept

    @property
    def quarantine(self) -> pl.DataFrame:
        return self.split.quarantined

    @property
    def rows_in(self) -> int:
        return self.split.rows_in


class _Rejected(Exception):
    """A record breaks a rule; `code` is one of QUARANTINE_REASONS."""

    def __init__(self, code: str, detail: str, mission_id: str | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.mission_id = mission_id


@dataclass
class _Criterion:
    """A criterion as read, before validation (weight and required are still raw values)."""

    criterion_id: str
    text: Any
    weight: Any
    required: Any
    turn_index: Any
    tags: list[str] = field(default_factory=list)
    category: str | None = None
    subcategory: str | None = None


@dataclass
class _Mission:
    """A mission as read from any format, before validation."""

    mission_id: str
    category: str
    subcategory: str
    title: str
    user_turns: list[str]
    products: list[str]
    extra: dict[str, Any]
    criteria: list[_Criterion]


def load_missions(path: str | Path, source_format: str) -> MissionsResult:
    """Read a JSONL file of missions in `source_format` ("assay", "healthbench" or "srb")."""
    with Path(path).open(encoding="utf-8") as handle:
        return parse_missions(handle, source_format)


def parse_missions(lines: Iterable[str], source_format: str) -> MissionsResult:
    """Validate JSONL lines into missions, criteria and quarantine; blank lines are not records."""
    if source_format not in SOURCE_FORMATS:
        raise ValueError(f"unknown source format {source_format!r}; expected one of {SOURCE_FORMATS}")
    reader = {"assay": _read_assay, "healthbench": _read_healthbench, "srb": _read_srb}[source_format]
    missions: list[dict[str, Any]] = []
    criteria: list[Criterion] = []
    quarantine: list[Rejected] = []
    seen_missions: set[str] = set()
    seen_criteria: set[str] = set()
    rows_in = 0
    for record_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        rows_in += 1
        mission_id = None
        try:
            record = _json_object(line)
            mission = reader(record)
            mission_id = mission.mission_id
            if mission_id in seen_missions:
                raise _Rejected("duplicate_mission_id", f"mission id {mission_id!r} appeared in an earlier record")
            seen_missions.add(mission_id)
            rows = _validated_criteria(mission, seen_criteria)
        except _Rejected as rejection:
            if mission_id is not None:
                seen_missions.add(mission_id)
            named = mission_id if mission_id is not None else rejection.mission_id
            record_id = named if named is not None else f"{source_format}#{record_number}"
            where = {"source_format": source_format, "record_number": record_number}
            quarantine.append(Rejected(record_id, rejection.code, rejection.detail, line.strip(), where))
            continue
        seen_criteria.update(criterion.criterion_id for criterion in rows)
        criteria.extend(rows)
        missions.append(_mission_row(mission, source_format))
    kept_and_quarantined = split(missions, MISSIONS_SCHEMA, quarantine, rows_in, QUARANTINE_REASONS, QUARANTINE_SCHEMA)
    return MissionsResult(kept_and_quarantined, criteria_frame(criteria))


def _json_object(line: str) -> dict[str, Any]:
    """The JSON object on a line, or a rejection when it is not one."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise _Rejected("unreadable", f"not JSON ({error.msg} at column {error.colno})") from error
    if not isinstance(record, dict):
        raise _Rejected("unreadable", f"a JSON {type(record).__name__}, not an object")
    return record


def _mission_row(mission: _Mission, source_format: str) -> dict[str, Any]:
    """One row of the missions frame."""
    return {
        "mission_id": mission.mission_id,
        "source_format": source_format,
        "category": mission.category,
        "subcategory": mission.subcategory,
        "title": mission.title,
        "n_turns": len(mission.user_turns),
        "user_turns": mission.user_turns,
        "products": mission.products,
        "extra_json": json.dumps(mission.extra, ensure_ascii=False, sort_keys=True),
    }


def _validated_criteria(mission: _Mission, seen_criteria: set[str]) -> list[Criterion]:
    """Criteria of a mission, or the rejection of the first criterion that breaks a rule."""
    if not mission.criteria:
        raise _Rejected("no_criteria", "the mission has no criteria to grade")
    rows, ids = [], set()
    for criterion in mission.criteria:
        cid = criterion.criterion_id
        if not isinstance(criterion.text, str) or not criterion.text.strip():
            raise _Rejected("empty_criterion_text", f"criterion {cid!r} has no text")
        weight = _weight(criterion.weight, cid)
        turn = _turn_index(criterion.turn_index, len(mission.user_turns), cid)
        if cid in ids or cid in seen_criteria:
            raise _Rejected("duplicate_criterion_id", f"criterion id {cid!r} is used more than once")
        ids.add(cid)
        rows.append(
            Criterion(
                criterion_id=cid,
                item_id=mission.mission_id,
                turn_index=turn,
                text=criterion.text.strip(),
                weight=weight,
                required=_required(criterion.required, cid),
                category=criterion.category if criterion.category is not None else mission.category,
                subcategory=criterion.subcategory if criterion.subcategory is not None else mission.subcategory,
                tags=tuple(str(tag) for tag in criterion.tags),
            )
        )
    return rows


def _weight(value: Any, cid: str) -> float:
    """A finite, non-zero number; booleans and strings (even "3") are refused, as the rubric engine does."""
    number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number):
        raise _Rejected("non_numeric_weight", f"criterion {cid!r} has weight {value!r}")
    if number == 0:
        raise _Rejected("zero_weight", f"criterion {cid!r} has weight 0, so it could never count")
    return number


def _required(value: Any, cid: str) -> bool:
    """A required flag from a boolean or a word such as "required" / "optional"."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS | _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise _Rejected("bad_required_flag", f"criterion {cid!r} has required={value!r}")


def _turn_index(value: Any, n_turns: int, cid: str) -> int:
    """A 0-based turn index that points at one of the mission's user turns."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < n_turns:
        raise _Rejected(
            "turn_index_out_of_range",
            f"criterion {cid!r} grades turn {value!r} but the conversation has {n_turns} user turn(s)",
        )
    return value


def _mission_id(value: Any) -> str:
    """A non-empty string id (numbers are accepted and written as strings)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise _Rejected("missing_id", f"no usable mission id (got {value!r})")
    return value.strip()


def _user_turns(turns: list[Any], mission_id: str) -> list[str]:
    """Fixed user turns, each a non-empty string; at least one."""
    if not turns:
        raise _Rejected("missing_user_turn", "the conversation has no user turn", mission_id)
    for index, text in enumerate(turns):
        if not isinstance(text, str) or not text.strip():
            raise _Rejected("missing_user_turn", f"user turn {index} is empty", mission_id)
    return [text.strip() for text in turns]


def _read_assay(record: dict[str, Any]) -> _Mission:
    """A mission in the project's own schema (see the module docstring and README)."""
    mission_id = _mission_id(record.get("mission_id"))
    turns = record.get("turns")
    if not isinstance(turns, list) or not all(isinstance(turn, dict) for turn in turns):
        raise _Rejected("missing_user_turn", "`turns` must be a list of {user, criteria} objects", mission_id)
    user_turns = _user_turns([turn.get("user") for turn in turns], mission_id)
    category, subcategory = record.get("category"), record.get("subcategory")
    if not isinstance(category, str) or not isinstance(subcategory, str) or not is_known(category, subcategory):
        raise _Rejected(
            "unknown_category",
            f"({category!r}, {subcategory!r}) is not in the taxonomy (categories: {', '.join(CATEGORIES)})",
            mission_id,
        )
    criteria = [
        _Criterion(
            criterion_id=str(raw.get("id") or f"{mission_id}-t{turn_index}-c{number}"),
            text=raw.get("text"),
            weight=raw.get("weight"),
            required=raw.get("required", True),
            turn_index=turn_index,
            tags=list(raw.get("tags") or []),
        )
        for turn_index, turn in enumerate(turns)
        for number, raw in enumerate(_criterion_dicts(turn.get("criteria")))
    ]
    known = {"mission_id", "category", "subcategory", "title", "products", "turns"}
    return _Mission(
        mission_id=mission_id,
        category=category,
        subcategory=subcategory,
        title=str(record.get("title") or ""),
        user_turns=user_turns,
        products=[str(product) for product in record.get("products") or []],
        extra={key: value for key, value in record.items() if key not in known},
        criteria=criteria,
    )


def _criterion_dicts(value: Any) -> list[dict[str, Any]]:
    """A turn's criteria as dicts; anything else becomes a text-less criterion, so it is quarantined."""
    return [raw if isinstance(raw, dict) else {"text": None, "weight": raw} for raw in _as_list(value)]


def _read_healthbench(record: dict[str, Any]) -> _Mission:
    """A HealthBench record: user messages become turns, every rubric item grades the last one."""
    mission_id = _mission_id(record.get("prompt_id"))
    messages = record.get("prompt") if isinstance(record.get("prompt"), list) else []
    roles = [message.get("role") if isinstance(message, dict) else None for message in messages]
    if not roles or roles[-1] != "user":
        raise _Rejected("missing_user_turn", "the conversation does not end with a user message", mission_id)
    user_texts = [message.get("content") for message, role in zip(messages, roles, strict=True) if role == "user"]
    user_turns = _user_turns(user_texts, mission_id)
    example_tags = [str(tag) for tag in record.get("example_tags") or []]
    criteria = []
    for number, rubric in enumerate(record.get("rubrics") or []):
        tags = [str(tag) for tag in rubric.get("tags") or []] if isinstance(rubric, dict) else []
        rubric = rubric if isinstance(rubric, dict) else {}
        criteria.append(
            _Criterion(
                criterion_id=f"{mission_id}-c{number}",
                text=rubric.get("criterion"),
                weight=rubric.get("points"),
                required=True,
                turn_index=len(user_turns) - 1,
                tags=tags,
                subcategory=_tag_value(tags, "axis") or "",
            )
        )
    known = {"prompt_id", "rubrics"}
    extra = {key: value for key, value in record.items() if key not in known and key != "prompt"}
    extra["scripted_conversation"] = messages
    return _Mission(
        mission_id=mission_id,
        category=_tag_value(example_tags, "theme") or "",
        subcategory=_tag_value(example_tags, "physician_agreed_category") or "",
        title="",
        user_turns=user_turns,
        products=[],
        extra=extra,
        criteria=criteria,
    )


def _tag_value(tags: list[str], prefix: str) -> str | None:
    """The value of the first "prefix:value" tag."""
    return next((tag.split(":", 1)[1] for tag in tags if tag.startswith(f"{prefix}:")), None)


def _pick(record: dict[str, Any], role: str) -> tuple[str | None, Any]:
    """(key, value) of the first of `role`'s candidate keys present in `record`."""
    for key in _SRB_KEYS[role]:
        if key in record:
            return key, record[key]
    return None, None


def _read_srb(record: dict[str, Any]) -> _Mission:
    """A Shopping Reasoning Bench record with tolerantly mapped field names."""
    used: set[str] = set()

    def take(role: str) -> Any:
        key, value = _pick(record, role)
        if key is not None:
            used.add(key)
        return value

    mission_id = _mission_id(take("id"))
    conversation = take("conversation")
    user_turns, nested, assistant_turns = _srb_conversation(conversation, mission_id)
    raw_criteria = nested + [(None, raw) for raw in _as_list(take("criteria"))]
    last_turn = len(user_turns) - 1
    criteria, criteria_extra = [], {}
    for number, (turn_index, raw) in enumerate(raw_criteria):
        criterion, unknown = _srb_criterion(raw, turn_index, last_turn, f"{mission_id}-c{number}")
        criteria.append(criterion)
        if unknown:
            criteria_extra[criterion.criterion_id] = unknown
    category, subcategory, title = take("category"), take("subcategory"), take("title")
    products_raw = take("products")
    products_ok = isinstance(products_raw, list) and all(isinstance(product, str) for product in products_raw)
    products = list(products_raw) if products_ok else []
    extra = {key: value for key, value in record.items() if key not in used}
    if products_raw is not None and not products_ok:
        extra["products"] = products_raw  # not a list of ids: kept as given rather than guessed at
    if assistant_turns:
        extra["scripted_assistant_turns"] = assistant_turns
    if criteria_extra:
        extra["criteria_extra"] = criteria_extra
    return _Mission(
        mission_id=mission_id,
        category=str(category or ""),
        subcategory=str(subcategory or ""),
        title=str(title or ""),
        user_turns=user_turns,
        products=products,
        extra=extra,
        criteria=criteria,
    )


def _as_list(value: Any) -> list[Any]:
    """A list value, a single object wrapped, or nothing."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _srb_conversation(conversation: Any, mission_id: str) -> tuple[list[str], list[tuple[int, Any]], list[str]]:
    """User turns, criteria nested in turn objects (with their turn index) and scripted assistant turns.

    Accepts a single string, a list of strings, a list of chat messages ({role, content}) or a list of
    turn objects ({user/query/..., rubric/criteria/...}).
    """
    if isinstance(conversation, str):
        return _user_turns([conversation], mission_id), [], []
    user_texts: list[Any] = []
    nested: list[tuple[int, Any]] = []
    assistant_turns: list[str] = []
    for item in _as_list(conversation):
        if isinstance(item, str):
            user_texts.append(item)
        elif isinstance(item, dict) and "role" in item:
            if item.get("role") == "user":
                user_texts.append(item.get("content"))
            elif item.get("role") == "assistant":
                assistant_turns.append(str(item.get("content")))
        elif isinstance(item, dict):
            user_texts.append(_pick(item, "user_text")[1])
            nested.extend((len(user_texts) - 1, raw) for raw in _as_list(_pick(item, "criteria")[1]))
    return _user_turns(user_texts, mission_id), nested, assistant_turns


def _srb_criterion(raw: Any, turn_index: int | None, last_turn: int, default_id: str) -> tuple[_Criterion, dict]:
    """A criterion from a dict with tolerant keys (or a bare string), plus its unmapped fields.

    The turn comes from the nesting, else a `turn_index`/`turn_idx`/`turn` field (0-based) or a
    `turn_number` field (1-based), else the last user turn.
    """
    if isinstance(raw, str):
        return _Criterion(default_id, raw, 1, True, last_turn if turn_index is None else turn_index), {}
    raw = raw if isinstance(raw, dict) else {}
    used: set[str] = set()

    def take(role: str, default: Any = None) -> Any:
        key, value = _pick(raw, role)
        if key is None:
            return default
        used.add(key)
        return value

    criterion_id = take("criterion_id")
    text = take("criterion_text")
    weight = take("weight", 1)
    required = take("required", True)
    if turn_index is None:
        turn_index = take("turn_index")
        if turn_index is None and "turn_number" in raw:
            used.add("turn_number")
            number = raw["turn_number"]
            turn_index = number - 1 if isinstance(number, int) and not isinstance(number, bool) else number
        if turn_index is None:
            turn_index = last_turn
    tags = take("tags") if isinstance(raw.get("tags"), list) else []
    category = raw.get("category")
    subcategory = raw.get("subcategory")
    used.update(key for key in ("category", "subcategory") if key in raw)
    unknown = {key: value for key, value in raw.items() if key not in used}
    criterion = _Criterion(
        criterion_id=str(criterion_id) if criterion_id not in (None, "") else default_id,
        text=text,
        weight=weight,
        required=required,
        turn_index=turn_index,
        tags=tags or [],
        category=str(category) if category is not None else None,
        subcategory=str(subcategory) if subcategory is not None else None,
    )
    return criterion, unknown


def combine_missions(results: Sequence[MissionsResult]) -> MissionsResult:
    """Several loaded sources as one result; a mission id in more than one source is an error that
    names the ids (a mission cannot be graded twice under one id)."""
    combined = MissionsResult(
        Split(
            kept=pl.concat([result.missions for result in results]),
            quarantined=pl.concat([result.quarantine for result in results]),
            rows_in=sum(result.rows_in for result in results),
        ),
        criteria=pl.concat([result.criteria for result in results]),
    )
    duplicated = sorted(combined.missions.filter(pl.col("mission_id").is_duplicated())["mission_id"].unique())
    if duplicated:
        raise ValueError(f"mission ids appear in more than one source: {', '.join(duplicated[:5])}")
    return combined
