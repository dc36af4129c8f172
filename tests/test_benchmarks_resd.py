"""The RESD benchmark at a tiny size: a tiny random Llama, a fake reflector and a word-count embedder, two
rounds; every arm has a success rate per round and the rollouts add up across rounds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.resd import _parse_args, run_rounds
from tests.fakes import FakeLLM

pytestmark = pytest.mark.slow


def _embed(texts):
    vocab = sorted({word for text in texts for word in text.lower().split()})
    return np.array([[text.lower().split().count(word) for word in vocab] for text in texts], dtype=float)


def test_two_tiny_rounds_report_every_arm(tmp_path: Path) -> None:
    tiny = "--policy tiny --rounds 2 --train-tasks 2 --eval-tasks 2 --tokens 4 --distill-steps 1 --grpo-generations 2"
    args = _parse_args(tiny.split())
    spec = {key: value for key, value in vars(args).items() if key != "out"}
    lesson = {
        "diagnosis": "no call",
        "lesson": "Call the listed function with every required argument.",
        "section": "arguments",
    }
    records = run_rounds(spec, FakeLLM(lambda request: lesson), _embed, tmp_path)
    assert [r["round"] for r in records] == [1, 2]
    for record in records:
        assert set(record["success"]) == {"base", "playbook", "resd", "grpo"}
        assert all(0.0 <= rate <= 1.0 for rate in record["success"].values())
    first, second = records
    assert second["rollouts"]["resd"] > first["rollouts"]["resd"] > 0
    assert second["rollouts"]["grpo"] > first["rollouts"]["grpo"] > 0
    assert first["playbook_bullets"] == 1  # identical lessons merge into one bullet
