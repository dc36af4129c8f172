"""LLM-assisted drafting of new missions from catalog products, gated by a human review list.

A drafter model proposes a mission (user turns and binary criteria) for a few catalog products and
an assigned subcategory; the draft is validated with the same rules as the graded set and marked
`status="draft"`. Drafts never reach grading by themselves: `reviewed` lets through only the ids a
reviewer listed in a plain text file (`read_reviewed_ids`), after checking each criterion can be
judged from the response alone.

The request id carries the draft's plan ("<draft id>~<subcategory>~<product ids, comma-separated>"),
so `parse_drafts` needs nothing but the results to rebuild the mission.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ops.common.llm import ChatRequest, ChatResult
from ops.common.quarantine import Rejected, Split, split
from ops.shopbench.missions import QUARANTINE_REASONS, parse_missions
from ops.shopbench.taxonomy import SUBCATEGORIES, category_of

DRAFTS_SCHEMA: dict[str, pl.DataType] = {
    "draft_id": pl.String(),
    "status": pl.String(),
    "category": pl.String(),
    "subcategory": pl.String(),
    "title": pl.String(),
    "products": pl.List(pl.String()),
    "n_turns": pl.Int64(),
    "n_criteria": pl.Int64(),
    "mission_json": pl.String(),
}
# Why a draft was refused (the shared quarantine's `reason`; record_id = the draft id, excerpt = the raw
# output): the drafter call failed, its output is not a mission, or the mission breaks a loading rule.
DRAFT_REASONS: tuple[str, ...] = ("drafter_error", "not_json", "no_turns", "malformed_turn", *QUARANTINE_REASONS)
_PLAN_SEPARATOR = "~"
_MULTI_PRODUCT_CATEGORIES = frozenset({"Product Comparison", "Product Recommendation", "Shopping Guidance"})

MISSION_DRAFT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        # Strings are bounded so that a small drafter cannot loop inside one until max_tokens cuts the JSON.
        "title": {"type": "string", "maxLength": 80},
        "turns": {
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {
                    "user": {"type": "string", "maxLength": 400},
                    "criteria": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 6,
                        "items": {
                            "type": "object",
                            "properties": {
                                "text": {"type": "string", "maxLength": 200},
                                "weight": {"type": "integer", "minimum": -5, "maximum": 5},
                                "required": {"type": "boolean"},
                            },
                            "required": ["text", "weight", "required"],
                        },
                    },
                },
                "required": ["user", "criteria"],
            },
        },
    },
    "required": ["title", "turns"],
}
SYSTEM_PROMPT = (
    "You write evaluation missions for a shopping assistant. A mission is one or more customer messages, "
    "fixed in advance, each followed by binary criteria that a grader checks by reading only the "
    "assistant's reply to that message. Each later message must make sense whatever the assistant said. "
    "Criteria: one checkable behaviour each, weight 1-5 for importance, or a negative weight (-1 to -5) "
    "for a mistake whose occurrence costs points; mark most criteria required and a few optional "
    "'above and beyond' ones. Use only the product facts given; never invent prices or features. "
    "Answer with JSON only."
)


@dataclass(frozen=True)
class DraftPlan:
    """What one draft is asked to be about: its id, subcategory and catalog products."""

    draft_id: str
    subcategory: str
    product_ids: tuple[str, ...]

    @property
    def request_id(self) -> str:
        """The plan written into the request id."""
        return _PLAN_SEPARATOR.join((self.draft_id, self.subcategory, ",".join(self.product_ids)))

    @classmethod
    def from_request_id(cls, request_id: str) -> DraftPlan:
        """Read a plan back from a request id written by `request_id`."""
        draft_id, subcategory, products = request_id.split(_PLAN_SEPARATOR)
        return cls(draft_id, subcategory, tuple(products.split(",")) if products else ())


def draft_plans(products: pl.DataFrame, n: int, seed: int) -> list[DraftPlan]:
    """`n` plans cycling through the 15 subcategories (from a seeded start), products drawn at random.

    `products` needs a `product_id` column; comparison, recommendation and guidance drafts get two
    products, the others one.
    """
    rng = random.Random(seed)
    ids = products["product_id"].to_list()
    if not ids:
        return []
    start = rng.randrange(len(SUBCATEGORIES))
    plans = []
    for number in range(n):
        sub = SUBCATEGORIES[(start + number) % len(SUBCATEGORIES)]
        count = min(2 if sub.category in _MULTI_PRODUCT_CATEGORIES else 1, len(ids))
        plans.append(DraftPlan(f"draft-{seed}-{number:04d}", sub.name, tuple(rng.sample(ids, count))))
    return plans


def draft_requests(products: pl.DataFrame, n: int, seed: int, max_tokens: int = 1024) -> list[ChatRequest]:
    """One JSON-schema request per planned draft; the prompt shows the products' fact lines.

    `products` needs `product_id` and a text column: `facts` (ops.shopbench.catalog), else `title`
    (ops.shopping.catalog), else `name`.
    """
    text_column = next(column for column in ("facts", "title", "name") if column in products.columns)
    facts = dict(zip(products["product_id"].to_list(), products[text_column].to_list(), strict=True))
    definitions = {sub.name: sub.definition for sub in SUBCATEGORIES}
    requests = []
    for plan in draft_plans(products, n, seed):
        product_lines = "\n".join(f"- {facts[product_id]}" for product_id in plan.product_ids)
        user = (
            f"Category: {category_of(plan.subcategory)}\nSubcategory: {plan.subcategory} "
            f"({definitions[plan.subcategory]})\n\nProducts:\n{product_lines}\n\n"
            "Write one mission about these products that tests this subcategory."
        )
        requests.append(
            ChatRequest(
                messages=({"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}),
                json_schema=MISSION_DRAFT_SCHEMA,
                max_tokens=max_tokens,
                seed=seed,
                request_id=plan.request_id,
            )
        )
    return requests


def parse_drafts(results: Sequence[ChatResult]) -> Split:
    """Drafts (status "draft") kept, refused ones quarantined with a `DRAFT_REASONS` code: every result lands in
    exactly one (rows in = results)."""
    drafts, rejects = [], []
    for result in results:
        plan = DraftPlan.from_request_id(result.request_id)
        raw = result.text or ""
        if result.error is not None:
            rejects.append(Rejected(plan.draft_id, "drafter_error", result.error, raw))
            continue
        record = _mission_record(plan, result)
        if isinstance(record, tuple):
            rejects.append(Rejected(plan.draft_id, *record, raw))
            continue
        line = json.dumps(record, ensure_ascii=False)
        checked = parse_missions([line], "assay")
        if checked.quarantine.height:
            refused = checked.quarantine.row(0, named=True)
            rejects.append(Rejected(plan.draft_id, refused["reason"], refused["detail"], raw))
            continue
        drafts.append(
            {
                "draft_id": plan.draft_id,
                "status": "draft",
                "category": record["category"],
                "subcategory": record["subcategory"],
                "title": record["title"],
                "products": list(plan.product_ids),
                "n_turns": len(record["turns"]),
                "n_criteria": checked.criteria.height,
                "mission_json": line,
            }
        )
    return split(drafts, DRAFTS_SCHEMA, rejects, len(results), DRAFT_REASONS)


def read_reviewed_ids(path: str | Path) -> set[str]:
    """Draft ids a reviewer approved: one per line; blank lines and `#` comments ignored; no file = none."""
    path = Path(path)
    if not path.exists():
        return set()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line}


def reviewed(drafts: pl.DataFrame, reviewed_ids: set[str]) -> pl.DataFrame:
    """Only the drafts a reviewer listed, with status "reviewed"; every other draft stays out."""
    return drafts.filter(pl.col("draft_id").is_in(sorted(reviewed_ids))).with_columns(status=pl.lit("reviewed"))


def _mission_record(plan: DraftPlan, result: ChatResult) -> dict[str, Any] | tuple[str, str]:
    """The draft as an assay-format mission record, or (reason code, detail) why it cannot be one."""
    payload = result.parsed
    if payload is None:
        try:
            payload = json.loads(result.text or "")
        except json.JSONDecodeError as error:
            return "not_json", f"drafter output is not JSON ({error.msg})"
    if not isinstance(payload, dict) or not isinstance(payload.get("turns"), list) or not payload["turns"]:
        return "no_turns", "drafter output has no turns"
    turns = []
    for turn_index, turn in enumerate(payload["turns"]):
        if not isinstance(turn, dict) or not isinstance(turn.get("criteria"), list):
            return "malformed_turn", f"turn {turn_index} is not a {{user, criteria}} object"
        criteria = [
            {
                "id": f"{plan.draft_id}-t{turn_index}-c{number}",
                "text": criterion.get("text"),
                "weight": criterion.get("weight"),
                "required": criterion.get("required", True),
                "tags": ["drafted"],
            }
            for number, criterion in enumerate(turn["criteria"])
            if isinstance(criterion, dict)
        ]
        turns.append({"user": turn.get("user"), "criteria": criteria})
    return {
        "mission_id": plan.draft_id,
        "category": category_of(plan.subcategory),
        "subcategory": plan.subcategory,
        "title": str(payload.get("title") or ""),
        "products": list(plan.product_ids),
        "turns": turns,
    }
