"""The `translate` tool: backends behind one interface, a cost per call, and per-item errors.

Backends (first that supports a language pair wins, in the configured order):
- `cipher`: the exact inverse (and forward) of the synthetic languages;
- `oracle`: the aligned human text of the same item (MGSM, the arithmetic family), in both directions;
- `apertium`: the Apertium MT engine, when its binary and the language pair are installed (Debian);
- `llm`: any `LLMClient` asked to translate (the gpu/cluster profiles' model).
A missing backend, an unsupported pair or a failing call gives an error on the items concerned; the
caller counts them and goes on. Every call costs the tier cost of its non-English language.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ops.common.llm import ChatRequest, LLMClient
from ops.translation.cipher import SYNTHETIC_CIPHERS
from ops.translation.languages import ENGLISH, tier_of

CIPHER, ORACLE, APERTIUM, LLM = "cipher", "oracle", "apertium", "llm"
BACKEND_NAMES = (CIPHER, ORACLE, APERTIUM, LLM)
NO_BACKEND = "none"
APERTIUM_MODES = Path("/usr/share/apertium/modes")
LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "zh": "Chinese",
    "ja": "Japanese",
    "sw": "Swahili",
    "bn": "Bengali",
}


@dataclass(frozen=True)
class Translation:
    """One item's translation (`text`) or why there is none (`error`), the backend and the call's cost."""

    text: str | None
    error: str | None
    backend: str
    cost: float = 0.0

    @property
    def ok(self) -> bool:
        """True when the item was translated."""
        return self.error is None


class TranslationBackend(Protocol):
    """A translator for some language pairs; `translate` returns one `Translation` per text, in order."""

    name: str

    def supports(self, source: str, target: str) -> bool:
        """True when this backend can translate from `source` to `target`."""
        ...

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[Translation]:
        """Translations of `texts`; a bad item carries an error, the call itself may raise."""
        ...


class CipherBackend:
    """English to a synthetic language and back, exactly."""

    name = CIPHER

    def supports(self, source: str, target: str) -> bool:
        """English to a synthetic language or back."""
        pair = {source, target}
        return ENGLISH in pair and len(pair & set(SYNTHETIC_CIPHERS)) == 1

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[Translation]:
        """Encode into the synthetic language, or decode out of it."""
        if source == ENGLISH:
            return [Translation(SYNTHETIC_CIPHERS[target].encode(text), None, self.name) for text in texts]
        return [Translation(SYNTHETIC_CIPHERS[source].decode(text), None, self.name) for text in texts]


class OracleBackend:
    """The aligned text of the same item: exact where a human translation (or cipher) is bundled."""

    name = ORACLE

    def __init__(self, aligned: Sequence[tuple[str, str, str]]) -> None:
        """`aligned`: (item id, language, text) triples, e.g. the rows of `multilingual_tasks`."""
        self._text = {(item, language): text for item, language, text in aligned}
        self._item = {(language, text): item for item, language, text in aligned}
        self._languages = {language for _, language, _ in aligned}

    def supports(self, source: str, target: str) -> bool:
        """Both languages have aligned texts."""
        return source in self._languages and target in self._languages

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[Translation]:
        """The target-language text of the item each source text belongs to."""
        out = []
        for text in texts:
            item = self._item.get((source, text))
            found = self._text.get((item, target)) if item is not None else None
            error = None if found is not None else f"no aligned {target} text for this {source} text"
            out.append(Translation(found, error, self.name))
        return out


class ApertiumBackend:
    """The Apertium rule-based MT engine (Debian `apertium` plus a pair such as `apertium-en-es`)."""

    name = APERTIUM

    def __init__(self, binary: str = "apertium", modes: Path = APERTIUM_MODES, timeout_s: float = 30.0) -> None:
        """Finds the binary on PATH and the installed pairs in `modes` (none when it is not installed)."""
        self.binary = shutil.which(binary)
        self.pairs = {path.stem for path in modes.glob("*.mode")} if self.binary and modes.is_dir() else set()
        self.timeout_s = timeout_s

    def supports(self, source: str, target: str) -> bool:
        """The binary is installed and so is the `source-target` mode."""
        return f"{source}-{target}" in self.pairs

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[Translation]:
        """One `apertium -u source-target` process per text (unknown words unmarked)."""
        return [self._one(text, f"{source}-{target}") for text in texts]

    def _one(self, text: str, mode: str) -> Translation:
        try:
            done = subprocess.run(
                [self.binary or "apertium", "-u", mode],
                input=text,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            return Translation(None, f"apertium failed: {error}", self.name)
        if done.returncode != 0:
            return Translation(None, f"apertium exit {done.returncode}: {done.stderr.strip()[:200]}", self.name)
        return Translation(done.stdout.strip(), None, self.name)


class LLMTranslatorBackend:
    """A chat model asked for a translation only (greedy); its per-item errors pass through."""

    name = LLM

    def __init__(self, client: LLMClient, max_tokens: int = 512) -> None:
        """`client` answers the requests (the LLM resource in the gpu/cluster profiles)."""
        self.client = client
        self.max_tokens = max_tokens

    def supports(self, source: str, target: str) -> bool:
        """Natural languages it can name; never the synthetic ones (a model cannot know a cipher)."""
        return source in LANGUAGE_NAMES and target in LANGUAGE_NAMES and source != target

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[Translation]:
        """One chat request per text."""
        instruction = (
            f"Translate the user's text from {LANGUAGE_NAMES[source]} to {LANGUAGE_NAMES[target]}. "
            "Keep every number exactly as written. Reply with the translation only."
        )
        requests = [
            ChatRequest(
                messages=({"role": "system", "content": instruction}, {"role": "user", "content": text}),
                max_tokens=self.max_tokens,
                request_id=str(index),
            )
            for index, text in enumerate(texts)
        ]
        results = self.client.chat(requests)
        return [
            Translation((r.text or "").strip(), None, self.name) if r.ok else Translation(None, r.error, self.name)
            for r in results
        ]


class TranslationTool:
    """Routes each call to the first backend that supports the pair and prices it by tier."""

    def __init__(
        self, backends: Sequence[TranslationBackend], tiers: Mapping[str, str], costs: Mapping[str, float]
    ) -> None:
        """`backends` in order of preference; `tiers` and `costs` as in `ops.translation.languages`."""
        self.backends = list(backends)
        self.tiers = dict(tiers)
        self.costs = dict(costs)

    def call_cost(self, source: str, target: str) -> float:
        """Cost of one call: the tier cost of the pair's non-English language (the dearer one if both are)."""
        others = [lang for lang in (source, target) if lang != ENGLISH] or [ENGLISH]
        return max(self.costs[tier_of(lang, self.tiers)] for lang in others)

    def backend_for(self, source: str, target: str) -> TranslationBackend | None:
        """The backend that serves the pair, or None."""
        return next((b for b in self.backends if b.supports(source, target)), None)

    def translate(self, texts: Sequence[str], source: str, target: str) -> list[Translation]:
        """One `Translation` per text; a missing or failing backend gives per-item errors, never raises."""
        cost = self.call_cost(source, target)
        backend = self.backend_for(source, target)
        if backend is None:
            return [Translation(None, f"no backend translates {source}->{target}", NO_BACKEND, cost) for _ in texts]
        try:
            results = backend.translate(texts, source, target)
        except Exception as error:  # one failing backend must not stop the run
            results = [Translation(None, f"{backend.name} failed: {error!r}", backend.name) for _ in texts]
        if len(results) != len(texts):
            message = f"{backend.name} returned {len(results)} translations for {len(texts)} texts"
            results = [Translation(None, message, backend.name) for _ in texts]
        return [Translation(r.text, r.error, r.backend, cost) for r in results]
