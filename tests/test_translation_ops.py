"""Translation domain logic: cipher, tasks, tool backends, answer-preserving filter, gated reward, Pareto."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ops.translation.cipher import SYNTHETIC_CIPHERS, Cipher, answer_matches, numbers_in, numbers_preserved
from ops.translation.languages import DEFAULT_TIER_COSTS, DEFAULT_TIERS, UnknownLanguageError
from ops.translation.pareto import (
    best_response,
    cost_share_at_full_reward,
    expected,
    fit_confidence_threshold,
    pareto_front,
)
from ops.translation.preserve import answer_preserving_split, back_similarity, round_trips
from ops.translation.reward import (
    ANSWER_TOKENS,
    FEW_SHOT,
    GateConfig,
    call_budget,
    call_budgets,
    call_message,
    direct_messages,
    gated_rewards,
    parse_decision,
    policy_messages,
    trainer_reward,
)
from ops.translation.rollouts import DIRECT, FREE, TRANSLATED, rollout_requests
from ops.translation.tasks import (
    ARITHMETIC_TEMPLATES,
    OPERATION_SETS,
    aligned_records,
    arithmetic_items,
    build_tasks,
    english_answer,
    user_records,
)
from ops.translation.tool import (
    ApertiumBackend,
    CipherBackend,
    OracleBackend,
    Translation,
    TranslationTool,
)


def _random_text(rng: random.Random) -> str:
    alphabet = "abcXYZ é中 0123456789.,?!-\n'" + "".join(chr(c) for c in range(65, 123))
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))


@pytest.mark.parametrize("name", sorted(SYNTHETIC_CIPHERS))
def test_cipher_is_exactly_invertible_and_keeps_numbers(name: str) -> None:
    cipher = SYNTHETIC_CIPHERS[name]
    rng = random.Random(7)
    for _ in range(300):
        text = _random_text(rng)
        coded = cipher.encode(text)
        assert cipher.decode(coded) == text
        assert numbers_in(coded) == numbers_in(text)
    question = "Janet sells 16 eggs at $2.50 each, 1,000 times."
    coded = cipher.encode(question)
    assert coded != question and "16" in coded and "2.50" in coded and "1,000" in coded
    assert cipher.encode(question) == SYNTHETIC_CIPHERS[name].encode(question)  # deterministic


def test_two_synthetic_languages_differ() -> None:
    text = "What is 3 plus 4?"
    assert SYNTHETIC_CIPHERS["syn_a"].encode(text) != SYNTHETIC_CIPHERS["syn_b"].encode(text)
    assert Cipher("x", 1).encode("abc") != Cipher("x", 2).encode("abc")


def test_numbers_and_answers() -> None:
    assert numbers_preserved("3 apples and 4.5 pears", "4.5 poires et 3 pommes")
    assert not numbers_preserved("She eats three and 4", "Elle mange 3 et 4")
    assert answer_matches("3 plus 4 is 7.", "7")
    assert answer_matches("The answer is 1,200", "1200")
    assert not answer_matches("no idea", "7")


def test_tasks_quarantine_bad_rows_and_reject_unknown_languages(tmp_path: Path) -> None:
    lines = [
        {"question": "What is 2 plus 2?", "answer": 4, "language": "en", "id": "ok"},
        {"question": "   ", "answer": "1", "language": "en"},
        {"question": "x" * 100_000, "answer": "1", "language": "es"},
        {"question": "What is it?", "answer": "many", "language": "en"},
        {"question": "What is 2 plus 2?", "answer": "4", "language": "en", "id": "ok"},
    ]
    path = tmp_path / "user.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "{broken\n", encoding="utf-8")
    records, rejected = user_records(path)
    result = build_tasks(records, DEFAULT_TIERS, rejected=rejected)
    assert result.accounted() and result.rows_in == 6
    assert result.kept["task_id"].to_list() == ["ok:en"]
    assert result.reason_counts() == {
        "bad_answer": 1,
        "bad_record": 1,
        "duplicate_task": 1,
        "empty_question": 1,
        "question_too_long": 1,
    }
    bad = [
        {
            "id": "q:xx",
            "item_id": "q",
            "family": "user",
            "language": "xx",
            "question": "a",
            "answer": "1",
            "english_question": None,
        }
    ]
    with pytest.raises(UnknownLanguageError, match=r"'xx'.*q:xx"):
        build_tasks(bad, DEFAULT_TIERS)


@pytest.mark.parametrize("family", sorted(OPERATION_SETS))
def test_generated_families_are_deterministic_aligned_and_answered(family: str) -> None:
    operations = OPERATION_SETS[family]
    items = arithmetic_items(12, seed=3, operations=operations)
    assert items == arithmetic_items(12, seed=3, operations=operations)
    assert items != arithmetic_items(12, seed=4, operations=operations)
    assert len({item["id"] for item in items}) == 12
    for item in items:
        english = item["question"]["en"]
        assert english_answer(english) == item["answer"]
        assert set(item["question"]) == set(ARITHMETIC_TEMPLATES)
        assert all(numbers_preserved(english, text) for text in item["question"].values())
        for cipher in SYNTHETIC_CIPHERS.values():
            coded = cipher.encode(english)
            assert coded != english and cipher.decode(coded) == english and numbers_preserved(english, coded)
    for index, item in enumerate(items):  # operations cycle in order
        template = ARITHMETIC_TEMPLATES["en"][operations[index % len(operations)]]
        assert re.sub(r"\d+", "#", item["question"]["en"]) == re.sub(r"\{[abc]\}", "#", template)
    records = aligned_records(items, "arithmetic", list(DEFAULT_TIERS))
    syn = [r for r in records if r["language"] == "syn_a"]
    assert len(syn) == 12 and all(
        SYNTHETIC_CIPHERS["syn_a"].decode(r["question"]) == r["english_question"] for r in syn
    )
    with pytest.raises(ValueError, match="unknown arithmetic operations"):
        arithmetic_items(1, operations=["divide"])


def test_answer_checker_reads_hand_written_questions() -> None:
    cases = {
        "What is 7 times 8?": "56",
        "What is 9 minus 4?": "5",
        "What number comes before 30?": "29",
        "Which is larger, 37 or 52?": "52",
        "Which is smaller, 37 or 52?": "37",
        "In the list 4, 9, 2, what is the second number?": "9",
        "In the list 4, 9, 2, what is the third number?": "2",
        "In the list 4, 9, what is the second number?": None,
        "Which is larger, 37 or fifty?": None,
    }
    assert {question: english_answer(question) for question in cases} == cases
    # The lookup family's wording decides the answer: the same list gives each of its numbers once.
    answers = {english_answer(f"In the list 4, 9, 2, what is the {o} number?") for o in ("first", "second", "third")}
    assert answers == {"4", "9", "2"}


def test_few_shot_examples_are_correct_and_precede_the_question() -> None:
    assert all(english_answer(question) == answer for question, answer in FEW_SHOT)
    messages = direct_messages("In the list 1, 2, 3, what is the third number?")
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * len(FEW_SHOT) + ["user"]
    assert messages[-1]["content"].endswith("third number?")
    assert policy_messages("x")[1 : 1 + 2 * len(FEW_SHOT)] == messages[1:-1]


class FakeFailingBackend:
    name = "fake_failing"

    def supports(self, source: str, target: str) -> bool:
        return True

    def translate(self, texts, source, target):
        raise RuntimeError("engine crashed")


class FakeLossyBackend:
    """Translates by changing the first digit it sees, or by replacing the text entirely."""

    name = "fake_lossy"

    def __init__(self, mode: str) -> None:
        self.mode = mode

    def supports(self, source: str, target: str) -> bool:
        return True

    def translate(self, texts, source, target):
        if self.mode == "numbers":
            return [Translation(text.replace("3", "8", 1), None, self.name) for text in texts]
        return [Translation("zzzz 3 qqqq 4" if target == "en" else text, None, self.name) for text in texts]


class FakeCharEmbedder:
    """Bag-of-characters vectors: identical texts have similarity 1, unrelated ones far less."""

    model_id = "fake:chars"
    dim = 128

    def embed_passages(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text.lower():
                out[i, ord(ch) % self.dim] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)

    embed_queries = embed_passages


def _tool(*backends) -> TranslationTool:
    return TranslationTool(list(backends), DEFAULT_TIERS, DEFAULT_TIER_COSTS)


def test_tool_routes_prices_and_reports_per_item_errors() -> None:
    oracle = OracleBackend([("i1", "en", "What is 3 plus 4?"), ("i1", "es", "¿Cuánto es 3 más 4?")])
    tool = _tool(CipherBackend(), oracle)
    assert tool.translate(["What is 3 plus 4?", "unknown"], "en", "es") == [
        Translation("¿Cuánto es 3 más 4?", None, "oracle", 1.0),
        Translation(None, "no aligned es text for this en text", "oracle", 1.0),
    ]
    coded = tool.translate(["What is 3 plus 4?"], "en", "syn_a")[0]
    assert coded.backend == "cipher" and coded.cost == DEFAULT_TIER_COSTS["XLow"]
    assert tool.translate([coded.text], "syn_a", "en")[0].text == "What is 3 plus 4?"
    missing = tool.translate(["a", "b"], "en", "sw")
    assert [t.error for t in missing] == ["no backend translates en->sw"] * 2
    assert tool.call_cost("sw", "en") == DEFAULT_TIER_COSTS["Low"]
    failing = _tool(FakeFailingBackend()).translate(["a", "b"], "en", "de")
    assert all(not t.ok and "engine crashed" in (t.error or "") for t in failing)


def test_apertium_absent_supports_nothing(tmp_path: Path) -> None:
    backend = ApertiumBackend(binary="definitely-not-apertium", modes=tmp_path)
    assert not backend.supports("en", "es")


def _english() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "item_id": ["i1", "i2"],
            "family": ["arithmetic"] * 2,
            "question": ["What is 3 plus 4?", "What is 9 minus 2?"],
            "answer": ["7", "7"],
        }
    )


def test_answer_preserving_filter_keeps_exact_and_quarantines_changed_answers() -> None:
    kept = answer_preserving_split(
        round_trips(_tool(CipherBackend()), _english(), ["syn_a", "sw"]), FakeCharEmbedder(), 0.9, DEFAULT_TIERS
    )
    assert kept.accounted() and kept.kept["language"].to_list() == ["syn_a", "syn_a"]
    assert kept.kept["similarity"].to_list() == [1.0, 1.0]
    assert kept.reason_counts() == {"translation_failed": 2}
    lossy = answer_preserving_split(
        round_trips(_tool(FakeLossyBackend("numbers")), _english(), ["de"]), FakeCharEmbedder(), 0.9, DEFAULT_TIERS
    )
    # "3" changed to "8" in i1 only; i2 has no 3 and survives.
    assert lossy.reason_counts() == {"numbers_changed": 1} and lossy.kept["item_id"].to_list() == ["i2"]
    drift = answer_preserving_split(
        round_trips(_tool(FakeLossyBackend("meaning")), _english()[:1], ["de"]), FakeCharEmbedder(), 0.9, DEFAULT_TIERS
    )
    assert drift.reason_counts() == {"low_similarity": 1}


class FakeRefusingEmbedder:
    """Fails the test if called: exact round trips must not be embedded."""

    model_id = "fake:refusing"

    def embed_passages(self, texts):
        raise AssertionError(f"embedded {texts}")


def test_exact_round_trips_are_not_embedded() -> None:
    assert back_similarity(FakeRefusingEmbedder(), ["a 1", "b 2"], ["a 1", "b 2"]) == [1.0, 1.0]
    mixed = back_similarity(FakeCharEmbedder(), ["abc 1", "abc 1"], ["abc 1", "xyz 1"])
    assert mixed[0] == 1.0 and mixed[1] < 0.9


def test_call_budgets_fit_the_call_in_few_sizes() -> None:
    # 4 tokens of margin, rounded up to a multiple of 16.
    assert [call_budget(n) for n in (1, 12, 13, 28, 79)] == [16, 16, 32, 32, 96]
    words = lambda texts: [len(text.split()) for text in texts]  # noqa: E731
    assert call_budgets(["a b", "a " * 40], words) == [
        call_budget(len(call_message("a b").split())),
        call_budget(len(call_message("a " * 40).split())),
    ]
    assert call_budgets(["a " * 40], words)[0] >= len(call_message("a " * 40).split()) + 4


def test_rollout_requests_budgets_and_order() -> None:
    tasks = pl.DataFrame(
        {"task_id": ["i1:es", "i1:sw"], "question": ["q es", "q sw"], "back_translation": ["q en", "q en"]}
    )
    english = pl.DataFrame({"task_id": ["i1:en"], "question": ["q en"]})
    requests = rollout_requests(tasks, english, 2, 0.8, [32, 48])
    modes = [r.request_id.split("|")[1] for r in requests]
    # Mode by mode (shared few-shot prefixes follow each other), two samples each.
    assert modes == [DIRECT] * 6 + [TRANSLATED] * 4 + [FREE] * 4
    assert {r.max_tokens for r in requests if r.request_id.split("|")[1] != FREE} == {ANSWER_TOKENS}
    assert [r.max_tokens for r in requests[-4:]] == [32, 32, 48, 48]
    assert [r.seed for r in requests[:2]] == [0, 1]
    with pytest.raises(ValueError, match="budgets"):
        rollout_requests(tasks, english, 1, 0.8, [32])


def test_gated_reward_hand_computed() -> None:
    # Group g1: accuracies 1, 1, 0, 1 -> 0.75 > tau 0.5, so calls pay lam * cost = 0.5 * 2 = 1.0.
    # Group g2: accuracies 1, 0 -> 0.5, not above tau, so calls are free under the gate.
    correct = [1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    called = [True, False, True, False, True, True]
    costs = [2.0] * 6
    groups = ["g1"] * 4 + ["g2"] * 2
    gated = gated_rewards(correct, called, costs, groups, GateConfig(lam=0.5, tau=0.5, gated=True))
    assert gated == [0.0, 1.0, -1.0, 1.0, 1.0, 0.0]
    ungated = gated_rewards(correct, called, costs, groups, GateConfig(lam=0.5, tau=0.5, gated=False))
    assert ungated == [0.0, 1.0, -1.0, 1.0, 0.0, -1.0]
    assert gated_rewards([1.0], [True], [1.0], ["g"], GateConfig(lam=0.0)) == [1.0]


def test_trainer_reward_parses_calls_and_answers() -> None:
    reward = trainer_reward(GateConfig(lam=0.25, tau=0.5))
    completions = [call_message("¿3 más 4?"), "7", "8", [{"role": "assistant", "content": "It is 7"}]]
    values = reward(
        completions,
        task_id=["t"] * 4,
        answer=["7"] * 4,
        call_cost=[1.0] * 4,
        translated_accuracy=[1.0] * 4,
    )
    # correct = [1, 1, 0, 1] -> group accuracy 0.75 > 0.5: the call pays 0.25.
    assert values == [0.75, 1.0, 0.0, 1.0]
    assert parse_decision('[{"name": "translate", "arguments": {"text": "x"}}]').called
    assert not parse_decision("[{broken").called


def test_pareto_front_hand_computed() -> None:
    costs = [0.0, 1.0, 0.5, 0.5, 1.0, 0.2]
    accs = [0.3, 0.9, 0.8, 0.7, 0.9, 0.3]
    # (0.5, 0.7) is beaten by (0.5, 0.8); (0.2, 0.3) by (0.0, 0.3); the two (1.0, 0.9) tie and both stay.
    assert pareto_front(costs, accs) == [True, True, True, False, True, False]


def _summary() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "task_id": ["hi", "lo", "x"],
            "language": ["es", "sw", "syn_a"],
            "tier": ["High", "Low", "XLow"],
            "held_out": [False] * 3,
            "call_cost": [1.0, 1.0, 2.0],
            "p_direct": [0.8, 0.2, 0.0],
            "p_translated": [0.9, 0.9, 0.4],
            "free_call_rate": [0.0, 0.0, 0.0],
            "free_accuracy": [0.8, 0.2, 0.0],
            "confidence": [1.0, 0.5, 0.25],
        }
    )


def test_best_response_gate_and_cost_share() -> None:
    summary = _summary()
    # lam 0.5 ungated: call values 0.4, 0.4, -0.6 vs direct 0.8, 0.2, 0.0 -> call only "lo".
    assert best_response(summary, GateConfig(0.5, 0.5, gated=False)).tolist() == [0.0, 1.0, 0.0]
    # gated: "x" has p_translated 0.4 <= tau, so its call is free: 0.4 > 0.0 -> call.
    assert best_response(summary, GateConfig(0.5, 0.5, gated=True)).tolist() == [0.0, 1.0, 1.0]
    figures = expected(summary, np.array([0.0, 1.0, 1.0]), GateConfig(0.5, 0.5, gated=True))
    assert figures["accuracy"] == pytest.approx((0.8 + 0.9 + 0.4) / 3)
    assert figures["cost"] == pytest.approx(1.0)
    assert figures["reward"] == pytest.approx((0.8 + 0.4 + 0.4) / 3)
    assert fit_confidence_threshold(summary, GateConfig(0.5, 0.5, gated=True)) == 1.0
    points = pl.DataFrame(
        {"policy": ["never", "always", "a"], "accuracy": [0.33, 0.733, 0.733], "cost": [0.0, 4 / 3, 1.0]}
    )
    assert cost_share_at_full_reward(points) == pytest.approx(0.75)
