"""The taxonomy benchmark's bookkeeping: buckets, document choice, mixed rates, ratios, kappa reading.

No timing here: the figures come from `python -m benchmarks.taxonomy_throughput`.
"""

import math

import dagster as dg
import numpy as np
import polars as pl
import pytest

from benchmarks.taxonomy_throughput import (
    ENCODER,
    GENERATIVE,
    KAPPA_MISSING,
    MIX,
    TEACHER,
    bucket_of,
    bucket_shares,
    mixed_rate,
    select_documents,
    speed_ratios,
    student_kappas,
    summarize,
    synthetic_label_row,
)
from ops.webdocs.annotation import condensed_labels, parse_condensed


def test_buckets_split_at_1500_and_4000_characters():
    assert [bucket_of(n) for n in (0, 1_499, 1_500, 3_999, 4_000, 10**6)] == [
        "short",
        "short",
        "medium",
        "medium",
        "long",
        "long",
    ]


def test_select_documents_times_the_first_per_bucket_and_keeps_spares_outside():
    texts = ["s" * 10, "m" * 2_000, "s" * 20, "l" * 5_000, "s" * 30, "m" * 2_100, "l" * 5_100, "m" * 2_200]
    timed, spares = select_documents(texts, per_bucket=1, spare=3)
    assert timed == {"short": ["s" * 10], "medium": ["m" * 2_000], "long": ["l" * 5_000]}
    assert spares == ["s" * 20, "m" * 2_100, "l" * 5_100]  # round-robin over buckets
    with pytest.raises(ValueError, match="lower --docs-per-bucket"):
        select_documents(texts, per_bucket=2, spare=0)
    assert bucket_shares(texts) == {"short": 3 / 8, "medium": 3 / 8, "long": 2 / 8}


def test_mixed_rate_weighs_the_time_per_document_not_the_rate():
    # 3/4 of the documents at 4 docs/s (0.25 s each), 1/4 at 1 doc/s (1 s each): 0.4375 s per document.
    assert mixed_rate({"short": 4.0, "long": 1.0}, {"short": 0.75, "long": 0.25}) == pytest.approx(1 / 0.4375)


def test_speed_ratios_per_bucket_and_only_for_measured_pairs():
    rates = {"fast": {"short": 100.0, "long": 10.0}, "slow": {"short": 2.0, "long": 0.5, "only_slow": 1.0}}
    ratios = speed_ratios(rates, [("fast", "slow"), ("fast", "absent")])
    assert ratios == {"fast_over_slow": {"short": 50.0, "long": 20.0}}


def test_summarize_adds_the_c4_mix_and_the_ratios():
    shares = {"short": 0.5, "long": 0.5}
    runs = [
        {"model": TEACHER, "docs_per_s": {"short": 0.1, "long": 0.05}, "peak_rss_mib": 300.0},
        {"model": GENERATIVE, "docs_per_s": {"short": 0.4, "long": 0.2}, "peak_rss_mib": 1200.0},
        {"model": ENCODER, "docs_per_s": {"short": 8.0, "long": 8.0}, "peak_rss_mib": 700.0},
        {"model": "mlp_only", "embeddings_per_s": 30_000.0, "peak_rss_mib": 350.0},
    ]
    summary = summarize(runs, shares)
    assert summary["docs_per_s"][GENERATIVE][MIX] == pytest.approx(1 / (0.5 / 0.4 + 0.5 / 0.2), rel=1e-3)
    assert summary["ratios"][f"{GENERATIVE}_over_{TEACHER}"] == {"short": 4.0, "long": 4.0, MIX: 4.0}
    assert summary["ratios"][f"{ENCODER}_over_{GENERATIVE}"]["long"] == 40.0
    assert summary["peak_rss_mib"]["mlp_only"] == 350.0
    assert "mlp_only" not in summary["docs_per_s"]


def test_synthetic_label_rows_make_valid_condensed_lines():
    rng = np.random.default_rng(0)
    for _ in range(5):
        line = condensed_labels(synthetic_label_row(rng))
        assert parse_condensed(line)["fdc_level1__primary"] != "-1"


def test_student_kappas_says_run_make_run_without_a_materialization(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    assert student_kappas() == {"record": "kappa", "status": KAPPA_MISSING}
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert student_kappas()["status"] == KAPPA_MISSING


def test_student_kappas_reads_the_latest_student_agreement_artifact(tmp_path, monkeypatch):
    home, artifact = tmp_path / "home", tmp_path / "artifact"
    home.mkdir()
    artifact.mkdir()
    pl.DataFrame(
        {
            "student": ["distilled_classifier", "mlp_filter"],
            "dimension": ["timeliness", "timeliness"],
            "n": [4, 4],
            "accuracy": [0.5, 1.0],
            "cohens_kappa": [0.25, math.nan],
            "eai_agreement": [0.5, 1.0],
        }
    ).write_parquet(artifact / "data.parquet")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        instance.report_runless_asset_event(
            dg.AssetMaterialization("student_agreement", metadata={"artifact_path": dg.MetadataValue.path(artifact)})
        )
    kappa = student_kappas()
    assert kappa["status"] == "ok"
    assert kappa["validation_docs"] == 4
    assert kappa["cohens_kappa"] == {GENERATIVE: {"timeliness": 0.25}, "embed_mlp": {"timeliness": None}}
