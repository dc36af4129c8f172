"""The reward against BFCL's own checker (PyPI `bfcl-eval`): every bundled single-turn category, perturbed.

The BFCL-exact mode must agree with BFCL on every probe; every strict-mode disagreement must be explained
by one documented `Deviation` (or a pair). Skips, saying why, only when `bfcl-eval` is not installed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from ops.tooluse.bfcl import BfclExample, ExpectedCall, FunctionSpec, load_single_turn
from ops.tooluse.bfcl_differential import DifferentialReport, compare, perturbed_outputs
from ops.tooluse.bfcl_reference import BfclReference, load_reference
from ops.tooluse.reward import BFCL_EXACT, DEVIATION_REASONS, STRICT, Deviation, score_output

BFCL_DIR = Path(__file__).resolve().parent.parent / "samples" / "bfcl_v3"
CATEGORIES = ("simple", "multiple", "parallel", "parallel_multiple", "irrelevance", "java", "javascript")


@pytest.fixture(scope="module")
def reference() -> BfclReference:
    found = load_reference()
    if found is None:
        pytest.skip("bfcl-eval is not installed (make install adds it with --no-deps); no oracle to compare with")
    return found


@pytest.fixture(scope="module")
def examples() -> list[BfclExample]:
    return load_single_turn(BFCL_DIR, CATEGORIES)


@pytest.fixture(scope="module")
def report(reference: BfclReference, examples: list[BfclExample]) -> DifferentialReport:
    probes = [probe for ex in examples for probe in perturbed_outputs(ex)]
    result = compare(probes, reference.score)
    print(
        f"\nBFCL differential ({reference.version}): {result.total} probes, {len(result.undocumented)} undocumented; "
        f"strict-mode differences by deviation {dict(result.strict_by_deviation)}, "
        f"by category {dict(result.strict_by_category)}, by perturbation {dict(result.strict_by_kind)}"
    )
    return result


def test_every_category_and_perturbation_is_probed(report: DifferentialReport, examples: list[BfclExample]) -> None:
    assert Counter(ex.category for ex in examples) == {
        "simple": 400,
        "multiple": 200,
        "parallel": 200,
        "parallel_multiple": 200,
        "irrelevance": 240,
        "java": 100,
        "javascript": 50,
    }
    for kind in (
        "oracle",
        "other_accepted",
        "wrong_name",
        "drop_param",
        "extra_param",
        "mistyped",
        "string_tab",
        "string_nbsp",
        "string_upper",
        "kwarg_order",
        "call_order",
        "abstention",
        "broken_call",
        "int_in_float_list",
        "bool_as_int_in_dict",
    ):
        assert report.probes[kind] > 0, kind
    assert report.total > 40_000


def test_no_undocumented_disagreement(report: DifferentialReport) -> None:
    assert report.undocumented == [], report.undocumented[:20]


def test_strict_differences_are_the_documented_deviations(report: DifferentialReport) -> None:
    reasons = {part for reason in report.strict_by_deviation for part in reason.split("+")}
    assert reasons <= {d.value for d in DEVIATION_REASONS}
    for deviation in (Deviation.EXTRA_FORMATS, Deviation.DOTTED_ALIAS, Deviation.UNPARSEABLE_NOT_ABSTENTION):
        assert report.strict_by_deviation[deviation.value] > 0, deviation


def test_exact_mode_agrees_on_the_oracle_calls(reference: BfclReference, examples: list[BfclExample]) -> None:
    probes = [p for ex in examples for p in perturbed_outputs(ex) if p.kind in ("oracle", "abstention")]
    agree = sum(
        reference.score(p.text, p.example)
        == score_output(p.text, p.example.expected, p.example.functions, BFCL_EXACT, p.example.language).score
        for p in probes
    )
    assert agree == len(probes)


SPEC = FunctionSpec(
    "f",
    "",
    {
        "type": "dict",
        "properties": {
            "city": {"type": "string"},
            "n": {"type": "integer"},
            "opts": {"type": "dict"},
            "xs": {"type": "array", "items": {"type": "float"}},
        },
        "required": ["city"],
    },
)


@pytest.mark.parametrize(
    ("text", "bfcl", "strict"),
    [
        ('f(city="Paris\t")', 0.0, 0.0),  # BFCL strips only spaces: a tab is part of the value
        ('f(city=" paris ")', 1.0, 1.0),
        ('f(city="Paris", n="dontcare")', 1.0, 1.0),  # string oracle for an integer: compared exactly
        ('f(city="Paris", n="DontCare")', 0.0, 0.0),
        ('f(city="Paris", opts={"fast": 1})', 1.0, 0.0),  # 1 == True inside a dict in BFCL
        ('f(city="Paris", xs=[1, 2.5])', 1.0, 1.0),  # BFCL skips the item type check when "" is accepted
        ("f_g(city='Paris')", 0.0, 0.0),
    ],
)
def test_documented_differences_on_hand_cases(text: str, bfcl: float, strict: float) -> None:
    expected = [
        ExpectedCall(
            "f", {"city": ["Paris"], "n": ["dontcare", ""], "opts": [{"fast": [True]}, ""], "xs": [[1.0, 2.5], ""]}
        )
    ]
    assert score_output(text, expected, [SPEC], BFCL_EXACT).score == bfcl
    assert score_output(text, expected, [SPEC], STRICT).score == strict


def test_int_in_float_array() -> None:
    expected = [ExpectedCall("f", {"city": ["Paris"], "xs": [[1.0, 2.5]]})]
    assert score_output('f(city="Paris", xs=[1, 2.5])', expected, [SPEC], BFCL_EXACT).score == 0.0
    assert score_output('f(city="Paris", xs=[1, 2.5])', expected, [SPEC], STRICT).score == 1.0


def test_greedy_parallel_matching_versus_bipartite() -> None:
    spec = FunctionSpec("w", "", {"properties": {"city": {"type": "string"}}, "required": ["city"]})
    expected = [ExpectedCall("w", {"city": ["Paris", "Rome"]}), ExpectedCall("w", {"city": ["Paris"]})]
    text = '[w(city="Paris"), w(city="Rome")]'
    assert score_output(text, expected, [spec], BFCL_EXACT).score == 0.0  # the first oracle call takes "Paris"
    assert score_output(text, expected, [spec], STRICT).score == 1.0


ABSTAIN = [
    "Sorry (I can't) do that.",
    "I'm sorry, but I can't help with that.",
    "None of the functions (weather, search) can answer this.",
    "Unfortunately, I cannot calculate that: the tools provided do not cover it.",
    "",
    "[]",
]


@pytest.mark.parametrize("text", ABSTAIN)
def test_real_abstentions_are_no_call(text: str) -> None:
    expected = [ExpectedCall("f", {"city": ["Paris"]})]
    assert score_output(text, [], [SPEC], STRICT).outcome == "correct_abstention"
    assert score_output(text, [], [SPEC], BFCL_EXACT).score == 1.0
    assert score_output(text, expected, [SPEC], STRICT).outcome == "no_call"


@pytest.mark.parametrize("text", ['f(city="Paris"', '[f(city="Paris"), g(', "f(city=Paris Texas)"])
def test_attempted_calls_that_break_are_unparseable(text: str) -> None:
    assert score_output(text, [], [SPEC], STRICT).outcome == "unparseable"
    assert score_output(text, [], [SPEC], BFCL_EXACT).score == 1.0  # BFCL credits any decode failure


def test_modes_are_named_and_every_deviation_has_a_reason() -> None:
    assert (STRICT.name, BFCL_EXACT.name) == ("strict", "bfcl")
    assert STRICT.deviations == frozenset(Deviation) and not BFCL_EXACT.deviations
    assert set(DEVIATION_REASONS) == set(Deviation) and all(DEVIATION_REASONS.values())
    assert STRICT.without(Deviation.EXACT_BOOL).exact_bool is False and STRICT.exact_bool is True
