"""Load a policy (base causal LM + optional LoRA adapter), generate with it, and store its adapter.

The base comes through the same `from_pretrained` path as the generative student
(`training.webdocs.generative_student`): a folder, a hub id, or the packaged SmolLM2-135M GGUF that
transformers dequantizes to float32. Only adapters are stored; the base comes back from its package or id.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ops.common.llm import ChatRequest, ChatResult
from training.rl.config import LoraSettings, PolicyConfig

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_FILES = (ADAPTER_WEIGHTS, ADAPTER_CONFIG)
Chat = Sequence[Mapping[str, str]]


@dataclass
class Policy:
    """A loaded policy: the (possibly LoRA-wrapped) model and its tokenizer."""

    model: Any
    tokenizer: Any
    config: PolicyConfig


def load_base(config: PolicyConfig) -> tuple[Any, Any]:
    """The frozen base model and its tokenizer (pad token = end of sequence when it has none)."""
    # torch and transformers come with the student module: imported here, so loading the code location skips them
    from training.webdocs.generative_student import GenerativeConfig, load_base_model, load_tokenizer

    student = GenerativeConfig(
        base_model=config.base_model, gguf_file=config.gguf_file, device=config.device, dtype=config.dtype
    )
    model = load_base_model(student)
    _drop_gguf_marker(model)
    return model, load_tokenizer(config.base_model, config.gguf_file)


def _drop_gguf_marker(model: Any) -> None:
    """Unmark a model read from GGUF as quantized: transformers dequantized every weight to `dtype` on load,
    but keeps its GGUF quantizer attached, and `Trainer` then refuses to fine-tune it."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None and str(quantizer.quantization_config.quant_method).lower().endswith("gguf"):
        quantizer.remove_quantization_config(model)


def lora_config(settings: LoraSettings) -> Any:
    """PEFT's LoraConfig for causal LMs from our settings."""
    from peft import LoraConfig

    return LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules),
        task_type="CAUSAL_LM",
    )


def write_adapter(files: Mapping[str, bytes], folder: Path) -> Path:
    """Write adapter files (at least `ADAPTER_FILES`) into `folder` and return it."""
    missing = [name for name in ADAPTER_FILES if name not in files]
    if missing:
        raise ValueError(f"adapter files {missing} missing")
    folder.mkdir(parents=True, exist_ok=True)
    for name in ADAPTER_FILES:
        (folder / name).write_bytes(files[name])
    return folder


def with_adapter(model: Any, adapter: Path | Mapping[str, bytes], trainable: bool = False) -> Any:
    """`model` wrapped with a stored LoRA adapter (a folder or `adapter_files` bytes)."""
    from peft import PeftModel

    if isinstance(adapter, Mapping):
        with tempfile.TemporaryDirectory() as folder:
            return PeftModel.from_pretrained(model, write_adapter(adapter, Path(folder)), is_trainable=trainable)
    return PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)


def load_policy(config: PolicyConfig, adapter: Path | Mapping[str, bytes] | None = None) -> Policy:
    """Base model (+ adapter when given), in eval mode, ready for `generate`."""
    model, tokenizer = load_base(config)
    if adapter is not None:
        model = with_adapter(model, adapter)
    model.eval()
    return Policy(model=model, tokenizer=tokenizer, config=config)


def prompt_text(tokenizer: Any, prompt: str | Chat) -> str:
    """The text the model continues: a chat rendered with the generation prompt, or a plain string."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)


def generate(
    policy: Policy,
    prompts: Sequence[str | Chat],
    max_new_tokens: int = 128,
    batch_size: int = 8,
    max_prompt_tokens: int | None = None,
    budgets: Sequence[int] | None = None,
) -> list[str]:
    """Greedy completions, in order (left-padded batches; prompts cut from the left to `max_prompt_tokens`).

    `budgets` gives each prompt its own new-token limit (else `max_new_tokens` for all): a batch decodes up to
    its largest budget and each completion is cut at its own. Greedy decoding is causal, so the cut text is what
    decoding that prompt to its budget alone gives (up to the float noise of padding, as for any batch).
    """
    import torch

    limits = list(budgets) if budgets is not None else [max_new_tokens] * len(prompts)
    if len(limits) != len(prompts):
        raise ValueError(f"{len(limits)} budgets for {len(prompts)} prompts")
    tokenizer, model = policy.tokenizer, policy.model
    tokenizer.padding_side = "left"
    outputs: list[str] = []
    for start in range(0, len(prompts), batch_size):
        texts = [prompt_text(tokenizer, prompt) for prompt in prompts[start : start + batch_size]]
        caps = limits[start : start + batch_size]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        if max_prompt_tokens:
            encoded = {key: value[:, -max_prompt_tokens:] for key, value in encoded.items()}
        encoded = {key: value.to(policy.config.device) for key, value in encoded.items()}
        with torch.no_grad():
            generated = model.generate(
                **encoded,
                max_new_tokens=max(caps),
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = generated[:, encoded["input_ids"].shape[1] :]
        rows = [row[:cap] for row, cap in zip(new, caps, strict=True)]
        outputs.extend(text.strip() for text in tokenizer.batch_decode(rows, skip_special_tokens=True))
    return outputs


class PolicyClient:
    """An `ops.common.llm.LLMClient` backed by a loaded policy, so domain code (the Customer Agent, the
    tool-use policy evaluation) runs a trained checkpoint unchanged.

    Greedy decoding; `json_schema` is not enforced (the text is returned for the caller's own parsing,
    `parsed` stays None), so a checkpoint is judged on what it writes, not on what a grammar forces.
    """

    def __init__(self, policy: Policy, name: str, batch_size: int = 8, max_prompt_tokens: int | None = None) -> None:
        self.policy = policy
        self.name = name
        self.batch_size = batch_size
        self.max_prompt_tokens = max_prompt_tokens

    @property
    def model_id(self) -> str:
        return self.name

    def chat(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """One greedy completion per request, in order; requests of similar `max_tokens` share a batch, each
        cut to its own budget (`generate`'s `budgets`), so budgets that differ by request still batch."""
        order = sorted(range(len(requests)), key=lambda i: requests[i].max_tokens)
        started = time.perf_counter()
        texts = generate(
            self.policy,
            [requests[i].messages for i in order],
            batch_size=self.batch_size,
            max_prompt_tokens=self.max_prompt_tokens,
            budgets=[requests[i].max_tokens for i in order],
        )
        latency = (time.perf_counter() - started) / max(1, len(requests))
        results: list[ChatResult] = [None] * len(requests)  # type: ignore[list-item]
        for i, text in zip(order, texts, strict=True):
            tokens = len(self.policy.tokenizer(text, add_special_tokens=False)["input_ids"])
            results[i] = ChatResult(requests[i].request_id, text, None, None, 0, tokens, latency, False)
        return results
