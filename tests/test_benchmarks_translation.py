"""A tiny run of the translation benchmark with fake model and embedder: every record, sane figures."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.translation import _parse_args, run
from ops.common.llm import ChatRequest, ChatResult
from tests.test_translation_assets import FakeArithmeticLLM
from tests.test_translation_ops import FakeCharEmbedder


class FakePlainClient:
    """The scripted arithmetic policy of the asset test, as a plain `LLMClient`."""

    model_id = "fake-arithmetic"

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        return FakeArithmeticLLM().chat(requests)


def test_benchmark_records_and_figures(tmp_path) -> None:
    args = _parse_args(["--items", "3", "--samples", "2", "--lambdas", "0", "0.5", "--out", str(tmp_path / "x")])
    records = {r["record"]: r for r in run(args, FakePlainClient(), FakeCharEmbedder())}
    assert {"machine", "tool", "rollouts", "pareto_points", "call_rate_by_tier", "pareto_summary", "end"} <= set(
        records
    )
    assert records["tool"]["round_trips"] == 27 and records["tool"]["kept"] == 27
    assert records["rollouts"]["english_accuracy"] == 1.0 and records["rollouts"]["errors"] == 0
    # The fake solves only English, so calling is always worth it: full reward needs the full cost.
    assert records["pareto_summary"]["cost_share_at_full_reward_train"] == 1.0
