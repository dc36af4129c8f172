"""Measurement ops of the webdocs taxonomy: Essential-Web NMI, student agreement, the seeded split."""

from __future__ import annotations

import math
from math import log2

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import cohen_kappa_score

from ops.webdocs.agreement import agreement_bar_png, agreement_table, eai_agrees
from ops.webdocs.nmi import highest_nmi, nmi_from_contingency, nmi_heatmap_png, nmi_matrix, weighted_contingency
from ops.webdocs.split import train_validation_split

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def annotations(chars: list[int], **labels: list[tuple[str | None, str | None]]) -> pl.DataFrame:
    """An annotation frame: one (primary, secondary) list per synthetic dimension."""
    data: dict[str, list] = {
        "doc_id": [f"d{i}" for i in range(len(chars))],
        "shard": ["s0"] * len(chars),
        "chars": chars,
    }
    for name, pairs in labels.items():
        data[f"{name}__primary"] = [p for p, _ in pairs]
        data[f"{name}__secondary"] = [s for _, s in pairs]
    schema = {"doc_id": pl.String, "shard": pl.String, "chars": pl.Int64}
    schema |= {column: pl.String for column in data if "__" in column}
    return pl.DataFrame(data, schema=schema)


# ---------------------------------------------------------------- NMI


def test_nmi_length_weighting_and_abstain_dropping_match_hand_computation() -> None:
    # doc  chars  a    b
    # d0   2      1    1
    # d1   1      1    2
    # d2   1      2    2
    # d3   5      -1   1    <- a abstains: the pair is dropped, its 5 chars count nowhere
    # d4   3      2    -1   <- b abstains: dropped
    # Length-weighted table (rows a=1,2; columns b=1,2): [[2, 1], [0, 1]], total 4.
    frame = annotations(
        [2, 1, 1, 5, 3],
        a=[("1", None), ("1", None), ("2", None), ("-1", None), ("2", None)],
        b=[("1", None), ("2", None), ("2", None), ("1", None), ("-1", None)],
    )
    matrix, a_codes, b_codes = weighted_contingency(frame, "a", "b")
    assert (a_codes, b_codes) == (["1", "2"], ["1", "2"])
    np.testing.assert_allclose(matrix, [[2.0, 1.0], [0.0, 1.0]])
    # p = [[.5, .25], [0, .25]]; p(a) = (.75, .25); p(b) = (.5, .5)
    # H(a) = -(.75 log2 .75 + .25 log2 .25) = 0.811278;  H(b) = 1
    # I = .5 log2(.5/(.75*.5)) + .25 log2(.25/(.75*.5)) + .25 log2(.25/(.25*.5))
    #   = .5 log2(4/3) + .25 log2(2/3) + .25 log2(2) = 0.207519 - 0.146241 + 0.25 = 0.311278
    # NMI = 2 * 0.311278 / (0.811278 + 1) = 0.343711
    mutual = 0.5 * log2(4 / 3) + 0.25 * log2(2 / 3) + 0.25
    h_a = -(0.75 * log2(0.75) + 0.25 * log2(0.25))
    expected = 2 * mutual / (h_a + 1.0)
    assert expected == pytest.approx(0.343711, abs=1e-6)
    assert nmi_from_contingency(matrix) == pytest.approx(expected, rel=1e-12)


def test_secondary_pairs_weigh_one_and_cross_pairs_one_hundredth() -> None:
    # d0 (10 chars): a = (1, 2), b = (1, 2)
    #   primary x primary     (1, 1) += 10
    #   secondary x secondary (2, 2) += 10
    #   primary_a x second_b  (1, 2) += 0.01 * 10 = 0.1
    #   second_a x primary_b  (2, 1) += 0.1
    # d1 (4 chars): a = (1, null), b = (2, -1)
    #   (1, 2) += 4 from the primaries; every pair touching the null or the -1 is dropped.
    # Table (rows a=1,2; columns b=1,2): [[10, 4.1], [0.1, 10]], total 24.2
    frame = annotations([10, 4], a=[("1", "2"), ("1", None)], b=[("1", "2"), ("2", "-1")])
    matrix, a_codes, b_codes = weighted_contingency(frame, "a", "b")
    assert (a_codes, b_codes) == (["1", "2"], ["1", "2"])
    np.testing.assert_allclose(matrix, [[10.0, 4.1], [0.1, 10.0]])
    # p(a) = (14.1, 10.1)/24.2, p(b) = (10.1, 14.1)/24.2: both H = h(14.1/24.2) = 0.980180
    # I = sum p_ij log2(p_ij / (p_i p_j)), cells written out below (in units of 1/24.2):
    #   10  * log2(10  * 24.2 / (14.1 * 10.1))   (a=1, b=1)
    #   4.1 * log2(4.1 * 24.2 / (14.1 * 14.1))   (a=1, b=2)
    #   0.1 * log2(0.1 * 24.2 / (10.1 * 10.1))   (a=2, b=1)
    #   10  * log2(10  * 24.2 / (10.1 * 14.1))   (a=2, b=2)
    # NMI = 2 I / (H + H) = I / H = 0.448902
    t = 24.2
    mutual = (
        10 * log2(10 * t / (14.1 * 10.1))
        + 4.1 * log2(4.1 * t / (14.1 * 14.1))
        + 0.1 * log2(0.1 * t / (10.1 * 10.1))
        + 10 * log2(10 * t / (10.1 * 14.1))
    ) / t
    entropy = -(14.1 / t * log2(14.1 / t) + 10.1 / t * log2(10.1 / t))
    assert nmi_from_contingency(matrix) == pytest.approx(mutual / entropy, rel=1e-12)
    assert nmi_from_contingency(matrix) == pytest.approx(0.448902, abs=1e-6)


def test_codes_are_strings_in_numeric_order_and_zero_length_documents_count_nothing() -> None:
    frame = annotations(
        [3, 3, 3, 0],
        a=[("51", None), ("005.1", None), ("5", None), ("7", None)],
        b=[("10", None), ("9", None), ("0", None), ("7", None)],
    )
    matrix, a_codes, b_codes = weighted_contingency(frame, "a", "b")
    # "0" is a real code (extraction_artifacts 0 = none); only codes < 0 are dropped.
    assert a_codes == ["5", "005.1", "51"]
    assert b_codes == ["0", "9", "10"]
    np.testing.assert_allclose(matrix, [[3, 0, 0], [0, 3, 0], [0, 0, 3]])


def test_identical_and_relabelled_dimensions_give_one() -> None:
    codes = ["1", "2", "3", "1", "2", "1"]
    relabel = {"1": "7", "2": "5", "3": "6"}
    frame = annotations(
        [5, 1, 2, 8, 3, 4],
        a=[(c, None) for c in codes],
        same=[(c, None) for c in codes],
        renamed=[(relabel[c], None) for c in codes],
    )
    for other in ("same", "renamed"):
        matrix, _, _ = weighted_contingency(frame, "a", other)
        assert nmi_from_contingency(matrix) == pytest.approx(1.0, abs=1e-12)


def test_independent_dimensions_give_zero() -> None:
    # Equal lengths, every (a, b) combination once: the table is uniform, I = 0 exactly.
    frame = annotations(
        [4, 4, 4, 4],
        a=[("1", None), ("1", None), ("2", None), ("2", None)],
        b=[("1", None), ("2", None), ("1", None), ("2", None)],
    )
    matrix, _, _ = weighted_contingency(frame, "a", "b")
    assert nmi_from_contingency(matrix) == pytest.approx(0.0, abs=1e-12)
    # Independently drawn labels with secondaries and random lengths: close to zero.
    rng = np.random.default_rng(0)
    n = 4000

    def draw(k: int) -> list[tuple[str, str | None]]:
        primary = rng.integers(1, k + 1, n)
        secondary = rng.integers(0, k + 1, n)  # 0 -> no secondary
        return [(str(p), str(s) if s else None) for p, s in zip(primary, secondary, strict=True)]

    frame = annotations(rng.integers(100, 5000, n).tolist(), a=draw(4), b=draw(5))
    matrix, _, _ = weighted_contingency(frame, "a", "b")
    assert nmi_from_contingency(matrix) < 0.01


def test_nmi_is_symmetric() -> None:
    rng = np.random.default_rng(1)
    n = 200
    a = rng.integers(1, 4, n)
    b = np.where(rng.random(n) < 0.7, a, rng.integers(1, 6, n))  # correlated with a
    frame = annotations(
        rng.integers(10, 1000, n).tolist(),
        a=[(str(x), str((x % 3) + 1)) for x in a],
        b=[(str(y), None) for y in b],
    )
    ab, a_codes, b_codes = weighted_contingency(frame, "a", "b")
    ba, b_codes_2, a_codes_2 = weighted_contingency(frame, "b", "a")
    assert (a_codes, b_codes) == (a_codes_2, b_codes_2)
    np.testing.assert_allclose(ab, ba.T)
    assert nmi_from_contingency(ab) == pytest.approx(nmi_from_contingency(ba), rel=1e-12)
    assert 0.1 < nmi_from_contingency(ab) < 1.0


def test_undefined_nmi_is_nan() -> None:
    assert math.isnan(nmi_from_contingency(np.zeros((0, 0))))
    assert math.isnan(nmi_from_contingency(np.array([[5.0]])))  # one code on both sides: 0 / 0
    assert nmi_from_contingency(np.array([[2.0, 3.0]])) == 0.0  # one side constant: I = 0, H(Y) > 0
    with pytest.raises(ValueError):
        nmi_from_contingency(np.array([[-1.0, 1.0]]))


def test_nmi_matrix_is_square_symmetric_with_unit_diagonal_and_highest_nmi() -> None:
    # x and copy agree perfectly; noise is independent of x; constant uses a single code.
    frame = annotations(
        [1, 1, 1, 1],
        x=[("1", "2"), ("1", None), ("2", None), ("2", None)],
        copy=[("1", "2"), ("1", None), ("2", None), ("2", None)],
        noise=[("1", None), ("2", None), ("1", None), ("2", None)],
        constant=[("3", None), ("3", None), ("3", "-1"), ("-1", None)],
    )
    names = ["x", "copy", "noise", "constant"]
    result = nmi_matrix(frame, names)
    assert result.columns == ["dimension", *names]
    assert result["dimension"].to_list() == names
    values = result.select(names).to_numpy()
    np.testing.assert_allclose(values, values.T, equal_nan=True)
    assert values[0, 0] == values[1, 1] == values[2, 2] == 1.0
    assert math.isnan(values[3, 3])  # one code: no entropy, NMI with itself undefined
    assert values[0, 3] == 0.0  # constant vs varied: defined, zero
    # x vs copy: the secondary pair (2, 2) at weight 1 and the cross pairs (1, 2), (2, 1) at 0.01 keep it below 1.
    assert 0.9 < values[0, 1] < 1.0
    assert values[0, 2] == pytest.approx(0.0, abs=0.02)
    assert highest_nmi(result, "x", names) == ("copy", values[0, 1])
    assert highest_nmi(result, "noise", ["x", "constant"])[0] == "x"
    assert highest_nmi(result, "constant", names) == ("x", 0.0)  # all zero: the first listed wins
    with pytest.raises(ValueError):
        highest_nmi(result, "x", ["x"])


def test_highest_nmi_skips_nan_and_reports_all_nan() -> None:
    frame = pl.DataFrame(
        {
            "dimension": ["p", "q", "r"],
            "p": [1.0, math.nan, 0.2],
            "q": [math.nan, math.nan, math.nan],
            "r": [0.2, math.nan, 1.0],
        }
    )
    assert highest_nmi(frame, "p", ["q", "r"]) == ("r", 0.2)
    name, value = highest_nmi(frame, "q", ["p", "r"])
    assert name == "" and math.isnan(value)


def test_nmi_heatmap_renders_png() -> None:
    frame = annotations([1, 2, 3], a=[("1", None), ("2", None), ("1", "2")], b=[("1", None), ("1", None), ("2", None)])
    png = nmi_heatmap_png(nmi_matrix(frame, ["a", "b"]))
    assert png.startswith(PNG_MAGIC) and len(png) > 1000


# ---------------------------------------------------------------- agreement


def test_kappa_and_accuracy_match_scikit_learn_and_hand_values() -> None:
    teacher_codes = ["1", "1", "2", "2", "3", "3"]
    student_codes = ["1", "1", "2", "3", "3", "3"]
    teacher = annotations([1] * 6, d=[(c, None) for c in teacher_codes])
    student = annotations([1] * 6, d=[(c, None) for c in student_codes])
    row = agreement_table(teacher, student, ["d"], "mlp").row(0, named=True)
    # p_o = 5/6; marginals teacher (2, 2, 2)/6, student (2, 1, 3)/6
    # p_e = (2*2 + 2*1 + 2*3) / 36 = 1/3;  kappa = (5/6 - 1/3) / (1 - 1/3) = 0.75
    assert row["cohens_kappa"] == pytest.approx(0.75, rel=1e-12)
    assert row["cohens_kappa"] == pytest.approx(cohen_kappa_score(teacher_codes, student_codes), rel=1e-12)
    assert row["accuracy"] == pytest.approx(5 / 6)
    assert (row["student"], row["dimension"], row["n"]) == ("mlp", "d", 6)


def test_kappa_with_a_single_label() -> None:
    teacher = annotations([1] * 4, d=[("2", None)] * 4, e=[("2", None)] * 4)
    student = annotations([1] * 4, d=[("2", None)] * 4, e=[("2", None), ("1", None), ("2", None), ("2", None)])
    table = agreement_table(teacher, student, ["d", "e"], "s")
    d, e = table.rows(named=True)
    # Both raters always say "2": perfect accuracy but chance agreement is 1, so kappa is 0/0 -> NaN.
    assert d["accuracy"] == 1.0 and math.isnan(d["cohens_kappa"])
    # Teacher constant, student varies: p_o = 3/4 = p_e, kappa = 0 (as scikit-learn).
    assert e["cohens_kappa"] == pytest.approx(0.0, abs=1e-12)
    assert e["cohens_kappa"] == pytest.approx(cohen_kappa_score(["2"] * 4, ["2", "1", "2", "2"]), abs=1e-12)


@pytest.mark.parametrize(
    ("teacher", "student", "agree"),
    [
        (("1", "2"), ("2", "3"), True),  # teacher secondary = student primary
        (("1", "-1"), ("3", "1"), True),  # teacher primary = student secondary
        (("1", None), ("2", None), False),
        (("1", "2"), ("3", "4"), False),
        (("-1", None), ("-1", None), True),  # both abstain entirely: agreement
        (("-1", "-1"), ("-1", None), True),
        (("-1", None), ("1", None), False),  # teacher abstains, student labels
        (("1", None), ("-1", None), False),  # student abstains, teacher labels
        (("-1", "-1"), ("-1", "1"), False),
    ],
)
def test_eai_agreement_rule(teacher: tuple, student: tuple, agree: bool) -> None:
    assert eai_agrees(*teacher, *student) is agree


def test_agreement_table_joins_on_doc_id_and_averages_the_overlap_rule() -> None:
    teacher = annotations([1] * 4, d=[("1", "2"), ("1", None), ("-1", None), ("3", None)])
    student = annotations([1] * 4, d=[("2", None), ("1", None), ("-1", None), ("9", None)])
    # The student never saw d3 and lists its rows in another order: the join, not the order, pairs them.
    student = student.filter(pl.col("doc_id") != "d3").reverse()
    row = agreement_table(teacher, student, ["d"], "gen").row(0, named=True)
    # d0: {1,2} vs {2} overlap; d1: {1} vs {1}; d2: both abstain -> 3 of 3 agree by the EAI rule.
    # Primary accuracy: d0 1 != 2, d1 equal, d2 "-1" == "-1" -> 2/3.
    assert row["n"] == 3
    assert row["eai_agreement"] == 1.0
    assert row["accuracy"] == pytest.approx(2 / 3)


def test_agreement_bar_chart_renders_png() -> None:
    teacher = annotations([1] * 4, d=[("1", None), ("2", None)] * 2, e=[("1", None)] * 4)
    student = annotations([1] * 4, d=[("1", None), ("1", None)] * 2, e=[("1", None)] * 4)
    table = pl.concat(
        [agreement_table(teacher, student, ["d", "e"], "mlp"), agreement_table(teacher, teacher, ["d", "e"], "gen")]
    )
    assert agreement_bar_png(table).startswith(PNG_MAGIC)


# ---------------------------------------------------------------- split


def test_split_is_deterministic_stable_under_growth_and_near_the_fraction() -> None:
    ids = [f"doc-{i:05d}" for i in range(3000)]
    train, validation = train_validation_split(ids, 0.2, seed=7)
    assert (train, validation) == train_validation_split(ids, 0.2, seed=7)
    assert sorted(train + validation) == sorted(ids) and not set(train) & set(validation)
    assert train == [i for i in ids if i in set(train)]  # input order kept
    # 3000 draws at p = 0.2: mean 600, sd 21.9; 4 sd either side.
    assert 510 < len(validation) < 690
    # Adding documents moves none of the earlier ones.
    small_train, small_validation = train_validation_split(ids[:500], 0.2, seed=7)
    assert set(small_train) <= set(train) and set(small_validation) <= set(validation)
    # Another seed draws another split.
    assert train_validation_split(ids, 0.2, seed=8)[1] != validation


def test_split_keeps_one_document_per_side_and_validates_input() -> None:
    for fraction in (0.001, 0.999):
        train, validation = train_validation_split(["a", "b"], fraction, seed=0)
        assert len(train) == 1 and len(validation) == 1
    assert sum(map(len, train_validation_split(["only"], 0.5, seed=0))) == 1
    with pytest.raises(ValueError):
        train_validation_split(["a", "b"], 1.0, seed=0)
    with pytest.raises(ValueError):
        train_validation_split(["a", "a"], 0.5, seed=0)


def test_student_label_lines_abstain_when_unparseable():
    from ops.webdocs.annotation import condensed_labels
    from ops.webdocs.student_data import label_lines_frame
    from ops.webdocs.taxonomy import DIMENSIONS, vocabularies

    row = {}
    for dimension, codes in vocabularies().items():
        row[f"{dimension}__primary"], row[f"{dimension}__secondary"] = codes[1], None
    row["fdc__primary"], row["fdc__secondary"] = vocabularies()["fdc_level1"][1], None
    frame, unparseable = label_lines_frame(["a", "b"], [condensed_labels(row), "fdc:banana"])
    assert unparseable == 1 and frame["doc_id"].to_list() == ["a", "b"]
    assert frame.filter(pl.col("doc_id") == "b").row(0, named=True)["timeliness__primary"] == "-1"
    assert frame.filter(pl.col("doc_id") == "a")["timeliness__primary"].item() == row["timeliness__primary"]
    assert frame.width == 1 + 2 * len(DIMENSIONS)
