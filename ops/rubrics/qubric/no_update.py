"""The recorded outcome "no learnable pair: no update" of rubric-reward GRPO.

When the learnability filter keeps no pair (locally the 135M judge passes every criterion on every answer, so
no criterion prefers the teacher), GRPO has nothing to learn from. That is an outcome, not a crash: the GRPO
asset stores this record instead of an adapter (the policy stays its base), the evaluation records that there
is nothing to compare, and the blocking checks verify that the record matches the pairs it was made from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

NO_UPDATE_FILE = "no_update.json"
NO_LEARNABLE_PAIR = "no learnable pair"


def no_update_files(data_version: str, reasons: Mapping[str, int]) -> dict[str, bytes]:
    """The one file stored in place of an adapter: why there was no update, from which pairs version, and the
    learnability filter's drop reasons (count per reason)."""
    record = {
        "status": "no_update",
        "reason": NO_LEARNABLE_PAIR,
        "data_version": data_version,
        "pairs": 0,
        "drop_reasons": dict(sorted(reasons.items())),
    }
    return {NO_UPDATE_FILE: json.dumps(record, sort_keys=True).encode()}


def no_update_record(files: Mapping[str, bytes]) -> dict[str, Any] | None:
    """The no-update record when `files` are one, else None (an adapter)."""
    return json.loads(files[NO_UPDATE_FILE]) if NO_UPDATE_FILE in files else None


def no_update_problems(files: Mapping[str, bytes], pairs_version: str, pairs_count: int) -> list[str]:
    """Why a no-update record does not match the pairs it claims (empty when it does): it must be the only
    file, name the current pairs version, and that pairs table must be empty."""
    record = no_update_record(files) or {}
    problems = []
    if set(files) != {NO_UPDATE_FILE}:
        problems.append(f"a no-update record stored with other files: {sorted(files)}")
    if record.get("status") != "no_update" or record.get("pairs") != 0:
        problems.append(f"not a no-update record: {record}")
    if record.get("data_version") != pairs_version:
        problems.append(f"recorded pairs version {record.get('data_version')!r}, current {pairs_version!r}")
    if pairs_count:
        problems.append(f"query_rubric_pairs holds {pairs_count} pairs, yet GRPO recorded no update")
    return problems
