"""The QUBRIC benchmark at a tiny size with a fake teacher/judge and a fake sampler: every record is there
and the figures are consistent (no timing asserted)."""

from __future__ import annotations

import random
from pathlib import Path

from benchmarks.qubric import _parse_args, run
from tests.fakes import FakeLLM
from tests.qubric_fakes import qubric_answer


def _sampler(chats: list, samples: int, tokens: int, seed: int) -> list[list[tuple[str, int]]]:
    rng = random.Random(seed)
    return [[(f"answer {rng.random():.6f}", tokens) for _ in range(samples)] for _ in chats]


def test_benchmark_records_both_methods_and_the_ratio(tmp_path: Path) -> None:
    args = _parse_args(["--queries", "8", "--samples", "4", "--out", str(tmp_path / "q.json")])
    fake = FakeLLM(qubric_answer, model_id="fake")
    records = run(args, fake, fake, _sampler, tmp_path)
    kinds = [record["record"] for record in records]
    assert kinds == ["machine", "judge_probe", "teacher", "method", "method", "ratio", "end"]
    probe = records[1]
    assert (probe["pairs"], probe["should_pass"], probe["should_fail"]) == (8, 2, 6)
    verdicts = [qubric_answer(request)["criteria_met"] for request in fake.requests[:8]]
    assert probe["met_share"] == sum(verdicts) / 8
    by_method = {record["method"]: record for record in records if record["record"] == "method"}
    assert by_method["naive"]["fabricated_share"] == 1.0 and by_method["key_points"]["fabricated_share"] == 0.0
    for record in by_method.values():
        assert sum(record["p_hat_histogram_before"].values()) <= record["queries"]
        assert sum(record["p_hat_histogram_after"].values()) == round(record["kept_share"] * record["queries"])
        assert sum(record["drop_reasons"].values()) == record["queries"] and record["judge_calls"] > 0
        assert sum(record["drop_reasons_all_candidates"].values()) == record["queries"]
        assert sum(record["criteria_status"].values()) == record["criteria_candidates"]
