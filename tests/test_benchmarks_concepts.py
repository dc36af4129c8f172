"""The concepts benchmark end to end at a tiny size (random tiny Llama): every record is there and sane.

No timing is asserted; the figures come from `python -m benchmarks.concepts`.
"""

from __future__ import annotations

import json
import math

from benchmarks.concepts import main
from training.webdocs.generative_student import byte_tokenizer, tiny_base


def test_benchmark_records_at_tiny_size(tmp_path) -> None:
    folder = tiny_base(tmp_path / "tiny", byte_tokenizer(), layers=2, hidden=32)
    out = tmp_path / "concepts.json"
    sizes = "--concepts 4 --unsafe-per-root 1 --docs 3 --doc-tokens 16 --k 4 --free-latents 8 --steps 4"
    main(
        [
            *sizes.split(),
            "--model",
            str(folder),
            "--prompts",
            "1",
            "--strengths",
            "0",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    records = json.loads(out.read_text())
    kinds = [record["record"] for record in records]
    assert kinds[:4] == ["machine", "load", "activations", "dictionary"] and kinds[-1] == "summary"
    saes = {record["init"]: record for record in records if record["record"] == "sae"}
    assert set(saes) == {"dictionary", "random"}
    assert all(math.isfinite(point["fvu"]) and point["l0"] <= 4 for sae in saes.values() for point in sae["curve"])
    steering = [record for record in records if record["record"] == "steering"]
    assert {(r["method"], r["strength"]) for r in steering} == {
        (m, s) for m in ("elastic_net", "mean_difference", "sae_latents") for s in (0.0, 1.0)
    }
    baseline = [r for r in steering if r["strength"] == 0.0]
    assert all(r["benign_kl"] == 0.0 for r in baseline) and len({r["harm_target_logprob"] for r in baseline}) == 1
    assert all(r["benign_kl"] >= 0 for r in steering)
