"""BFCL's own single-turn checker (PyPI `bfcl-eval`) as a reference oracle for the reward's differential test.

`bfcl-eval` is installed without its dependencies (they pin numpy 1.26 and a dozen provider SDKs); the
Makefile installs it with the tree-sitter parsers and tenacity its decoder imports. The checker imports
`bfcl_eval.constants.model_config` only to look up one flag per model (`underscore_to_dot`), and that
module imports every provider SDK, so it is replaced by a one-entry stand-in for a prompting model.
Everything else (decoder, AST checker, Java/JavaScript converters) is BFCL's code, run as shipped.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ops.tooluse.bfcl import BfclExample

REFERENCE_MODEL = "assay-prompting"
BFCL_LANGUAGES = {"python": "Python", "java": "Java", "javascript": "JavaScript"}


@dataclass(frozen=True)
class _PromptingModelConfig:
    underscore_to_dot: bool = False


@dataclass(frozen=True)
class BfclReference:
    """BFCL's decoder and checker functions, loaded from the installed `bfcl_eval` package."""

    version: str
    decode: Callable[..., Any]
    check: Callable[..., dict[str, Any]]
    is_call_format: Callable[[Any], bool]
    is_empty: Callable[[Any], bool]
    _inputs: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = field(default_factory=dict)

    def inputs(self, example: BfclExample) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The example's function docs and possible answers as BFCL's files hold them (built once)."""
        key = f"{example.category}/{example.id}"
        if key not in self._inputs:
            functions = [
                {"name": f.name, "description": f.description, "parameters": f.parameters} for f in example.functions
            ]
            self._inputs[key] = functions, [{e.name: e.accepted} for e in example.expected]
        return self._inputs[key]

    def score(self, output: str, example: BfclExample) -> float:
        """1.0 when BFCL's evaluation runner would count `output` correct on `example`, else 0.0."""
        language = BFCL_LANGUAGES[example.language]
        try:
            decoded = self.decode(output, language=language)
        except Exception:
            return 1.0 if example.expects_no_call else 0.0
        if example.expects_no_call:
            return 1.0 if self.is_empty(decoded) else 0.0
        if not self.is_call_format(decoded):
            return 0.0
        functions, answers = self.inputs(example)
        try:
            result = self.check(functions, decoded, answers, language, example.category, REFERENCE_MODEL)
        except Exception:
            return 0.0
        return 1.0 if result["valid"] else 0.0


def load_reference() -> BfclReference | None:
    """BFCL's checker, or None when `bfcl-eval` (or its decoder's tree-sitter parsers) is not installed."""
    try:
        from importlib.metadata import version

        package_version = version("bfcl-eval")
    except Exception:
        return None
    stand_in = types.ModuleType("bfcl_eval.constants.model_config")
    stand_in.MODEL_CONFIG_MAPPING = {REFERENCE_MODEL: _PromptingModelConfig()}  # type: ignore[attr-defined]
    module = sys.modules.setdefault("bfcl_eval.constants.model_config", stand_in)
    module.MODEL_CONFIG_MAPPING.setdefault(REFERENCE_MODEL, _PromptingModelConfig())  # type: ignore[attr-defined]
    try:
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
        from bfcl_eval.model_handler.utils import default_decode_ast_prompting
        from bfcl_eval.utils import is_empty_output, is_function_calling_format_output
    except ImportError:
        return None
    return BfclReference(
        version=package_version,
        decode=default_decode_ast_prompting,
        check=ast_checker,
        is_call_format=is_function_calling_format_output,
        is_empty=is_empty_output,
    )
