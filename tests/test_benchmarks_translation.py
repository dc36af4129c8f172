"""A tiny run of the translation benchmark with fake model and embedder: every record, sane figures."""

from __future__ import annotations

from benchmarks.translation import _parse_args, run
from tests.test_translation_assets import FakeArithmeticLLM
from tests.test_translation_ops import FakeCharEmbedder


def test_benchmark_records_and_figures(tmp_path) -> None:
    args = _parse_args(
        ["--items", "3", "--samples", "2", "--lambdas", "0", "0.5", "--family-items", "6", "--out", str(tmp_path / "x")]
    )
    records = run(args, FakeArithmeticLLM(), FakeCharEmbedder())
    families = {r["family"]: r for r in records if r["record"] == "family"}
    # The fake solves every English question; chance is a uniform pick among the question's numbers.
    assert {f: (r["items"], r["english_accuracy"]) for f, r in families.items()} == {
        "arithmetic": (6, 1.0),
        "compare": (6, 1.0),
        "lookup": (6, 1.0),
    }
    assert families["lookup"]["chance"] == round(1 / 3, 4) and families["compare"]["chance"] == 0.5
    records = {r["record"]: r for r in records}
    assert {"machine", "tool", "rollouts", "pareto_points", "call_rate_by_tier", "pareto_summary", "end"} <= set(
        records
    )
    assert records["tool"]["round_trips"] == 27 and records["tool"]["kept"] == 27
    assert records["rollouts"]["english_accuracy"] == 1.0 and records["rollouts"]["errors"] == 0
    # Counts and Wilson intervals next to every rate: 3 English items x 2 samples, all correct.
    english = records["rollouts"]["english"]
    assert (english["n"], english["k"], english["high"]) == (6, 6, 1.0) and 0.5 < english["low"] < 1.0
    high_tier = {r["mode"]: r for r in records["rollouts"]["by_tier_and_mode"] if r["tier"] == "High"}
    # High: en (direct only) + es, fr, de, zh, ja: 5 translated languages x 3 items x 2 samples per mode.
    assert high_tier["translated"]["accuracy"]["n"] == 30 and high_tier["direct"]["accuracy"]["n"] == 36
    assert high_tier["free"]["call_rate"]["rate"] == 1.0 and high_tier["direct"]["call_rate"]["k"] == 0
    assert records["pareto_summary"]["train_tasks_by_tier"] == {"High": 9, "Low": 3, "XLow": 3}
    # The fake solves only English, so calling is always worth it: full reward needs the full cost.
    assert records["pareto_summary"]["cost_share_at_full_reward_train"] == 1.0
