"""The ShopTrajQA benchmark's bookkeeping: token counting, latency percentiles, gold checks, answerable shares.

No timing here: the figures come from `python -m benchmarks.shoptrajqa`.
"""

from datetime import datetime

import polars as pl
import pytest

from benchmarks.shoptrajqa import (
    CountingTokenizer,
    _parse_args,
    answerable_shares,
    first_customers,
    latency_summary,
    summarize,
)
from ops.shopping.sandbox import QueryObservation, result_mismatch


def _observation(rows: list[tuple], ok: bool = True, error: str | None = None) -> QueryObservation:
    return QueryObservation(ok=ok, columns=["answer"], rows=rows, truncated=False, error=error, elapsed_s=0.001)


def test_counting_tokenizer_adds_up_calls_texts_and_tokens():
    counter = CountingTokenizer(lambda texts: [len(text.split()) for text in texts])
    assert counter(["a b c", "d"]) == [3, 1]
    assert counter(["e f"]) == [2]
    assert (counter.calls, counter.texts, counter.tokens) == (2, 3, 6)


def test_latency_summary_in_milliseconds():
    summary = latency_summary([0.001 * i for i in range(1, 101)])  # 1 ms .. 100 ms
    assert summary["n"] == 100
    assert summary["p50_ms"] == pytest.approx(50.5)
    assert summary["p95_ms"] == pytest.approx(95.05)
    assert summary["max_ms"] == pytest.approx(100.0)
    assert summary["mean_ms"] == pytest.approx(50.5)
    with pytest.raises(ValueError, match="at least one"):
        latency_summary([])


def test_result_mismatch_compares_the_canonical_form():
    assert result_mismatch(_observation([(12.5,)]), "12.5", "money") is None
    assert result_mismatch(_observation([(3,)]), "3", "number") is None
    assert result_mismatch(_observation([(datetime(2024, 2, 3, 10, 0),)]), "2024-02-03", "date") is None
    assert result_mismatch(_observation([(4,)]), "3", "number") == "got '4', gold '3'"
    assert result_mismatch(_observation([(None,)]), "3", "number") == "NULL result"
    assert result_mismatch(_observation([(1,), (2,)]), "1", "number").startswith("shape: 2 rows")
    assert result_mismatch(_observation([], ok=False, error="boom"), "1", "number") == "error: boom"


def test_a_none_answer_needs_the_word_none_not_any_value():
    assert result_mismatch(_observation([("none",)]), "none", "none") is None
    # format_answer maps any value to "none" under type "none"; the check must not.
    assert result_mismatch(_observation([("Lego City Bus",)]), "none", "none") == "got 'lego city bus', gold 'none'"
    assert result_mismatch(_observation([(0,)]), "none", "none") == "got '0', gold 'none'"


def test_answerable_shares_count_pairs_over_the_rendered_customers_questions():
    ts = datetime(2024, 1, 1)
    questions = pl.DataFrame(
        {
            "question_id": ["q1", "q2", "q3", "q4"],
            "customer_id": ["c1", "c1", "c2", "c9"],  # c9 was not rendered: not in the denominator
            "evidence_start": [ts, datetime(2024, 6, 1), ts, ts],
        }
    )
    contexts = pl.DataFrame(
        {
            "customer_id": ["c1", "c1", "c2", "c2"],
            "budget_tokens": [100, 200, 100, 200],
            "status": ["rendered", "rendered", "rendered", "skipped"],
            "cut": [True, False, False, False],
            "first_kept_ts": [datetime(2024, 3, 1), ts, ts, None],
        }
    )
    # budget 100: c1 cut at March keeps q2 only; c2 whole keeps q3. budget 200: c1 whole (q1, q2); c2 skipped.
    assert answerable_shares(questions, contexts, [100, 200, 300]) == {"100": 0.6667, "200": 0.6667, "300": 0.0}


def test_first_customers_takes_whole_histories_in_id_order():
    events = pl.DataFrame({"customer_id": ["b", "a", "c", "a", "b"], "event_index": [0, 0, 0, 1, 1]})
    assert first_customers(events, 2).sort("customer_id", "event_index")["customer_id"].to_list() == [
        "a",
        "a",
        "b",
        "b",
    ]


def test_defaults_follow_the_brief_and_summary_picks_the_headlines():
    args = _parse_args([])
    assert args.render_budgets == [2_048, 8_192, 32_768, 65_536]
    assert args.eval_budgets == [512, 2_048]
    assert (args.questions_per_customer, args.n_ctx, args.span_months) == (10, 8_192, 36)
    records = {
        "rendering": {"rendered_tokens_per_s": 10, "tokens_counted_per_s": 20, "answerable_share": {"2048": 0.1}},
        "sql_latency": {
            "customers": 5,
            "query_latency": {"p50_ms": 1.0, "p95_ms": 2.0},
            "sandbox_build": {"p50_ms": 90.0},
            "mismatches": 0,
        },
        "agent_eval": {"accuracy_by_budget": [], "seconds_per_question": {"agent": 1.0, "long_context": 2.0}},
    }
    summary = summarize(records)
    assert (summary["sql_query_p95_ms"], summary["sql_mismatches"], summary["tokens_counted_per_s"]) == (2.0, 0, 20)
    assert "near-random" in summary["note"]
