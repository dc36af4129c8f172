"""A tiny run of `benchmarks.real_inputs`: its records add up (no timing asserted)."""

import json

from benchmarks.real_inputs import main


def test_real_inputs_benchmark_at_a_tiny_size(tmp_path):
    out = tmp_path / "real_inputs.json"
    assert main(["--customers", "4", "--span-months", "2", "--doc-limit", "30", "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    quality = [r for r in records if r["record"] == "quality_rules"]
    assert len(quality) == 2
    for record in quality:
        assert record["kept_without_rules"] - record["kept_with_rules"] <= record["quality_filtered"]
        assert record["reached_quality_rules"] >= record["kept_without_rules"]  # plus exact duplicates
    runs = {r["run"]: r for r in records if r["record"] == "currency"}
    before, now = runs["INR shop, GBP numbers (before)"], runs["INR shop, INR defaults (now)"]
    assert now["purchases"] > before["purchases"]
