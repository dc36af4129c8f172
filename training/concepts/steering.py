"""Steering a frozen causal LM at generation time: a forward hook rewrites one layer's hidden states.

A steerer is a plain function from hidden states [tokens, hidden] (float64 numpy) to the same shape,
e.g. `ops.concepts.decomposition.remove_concepts` bound to a dictionary. The hook applies it to every
position the layer computes: the prompt once, then each generated token (with the KV cache). Utility is
measured teacher-forced on benign text: the mean KL divergence of the steered next-token distribution
from the unsteered one, and both perplexities.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from training.concepts.activations import check_layers, decoder_layers

if TYPE_CHECKING:
    import torch

Steerer = Callable[[np.ndarray], np.ndarray]


@contextmanager
def steered(model: Any, layer: int, steerer: Steerer | None) -> Iterator[None]:
    """Within the block, layer `layer`'s output hidden states pass through `steerer` (None: untouched)."""
    import torch

    if steerer is None:
        yield
        return
    check_layers(model, [layer])

    def hook(_module: Any, _inputs: Any, output: Any) -> Any:
        hidden = output[0] if isinstance(output, tuple) else output
        flat = hidden.reshape(-1, hidden.shape[-1]).detach().cpu().double().numpy()
        changed = torch.from_numpy(steerer(flat)).to(hidden.dtype).to(hidden.device).reshape(hidden.shape)
        return (changed, *output[1:]) if isinstance(output, tuple) else changed

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def chat_prompt_ids(tokenizer: Any, prompt: str) -> list[int]:
    """The user prompt in the model's chat template with the assistant turn opened."""
    messages = [{"role": "user", "content": prompt}]
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = f"User: {prompt}\nAssistant: "
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def generate(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, layer: int, steerer: Steerer | None
) -> list[str]:
    """Greedy answers to `prompts` (one left-padded batch) with the steerer applied at `layer`."""
    import torch

    rows = [chat_prompt_ids(tokenizer, prompt) for prompt in prompts]
    width = max(len(row) for row in rows)
    pad = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad] * (width - len(row)) + row for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    with steered(model, layer, steerer), torch.no_grad():
        output = model.generate(
            input_ids=input_ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
    return [text.strip() for text in tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)]


@dataclass(frozen=True)
class Utility:
    """Teacher-forced effect of a steerer on benign text: mean KL(base || steered) and both perplexities."""

    kl: float
    perplexity_base: float
    perplexity_steered: float

    @property
    def perplexity_ratio(self) -> float:
        """Steered over unsteered perplexity (1 = no utility cost)."""
        return self.perplexity_steered / self.perplexity_base


def _log_probs(model: Any, ids: list[int], layer: int, steerer: Steerer | None) -> torch.Tensor:
    import torch

    with steered(model, layer, steerer), torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, :-1].float()
    return torch.log_softmax(logits, dim=-1)


def utility(
    model: Any, tokenizer: Any, texts: Sequence[str], layer: int, steerer: Steerer | None, max_tokens: int = 64
) -> Utility:
    """KL and perplexities over every next-token prediction of `texts` (each cut to `max_tokens`)."""
    import torch

    kl_sum, base_nll, steered_nll, count = 0.0, 0.0, 0.0, 0
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
        if len(ids) < 2:
            continue
        base = _log_probs(model, ids, layer, None)
        changed = _log_probs(model, ids, layer, steerer) if steerer is not None else base
        targets = torch.tensor(ids[1:])
        kl_sum += float((base.exp() * (base - changed)).sum())
        base_nll -= float(base[torch.arange(len(targets)), targets].sum())
        steered_nll -= float(changed[torch.arange(len(targets)), targets].sum())
        count += len(targets)
    if count == 0:
        raise ValueError("utility needs at least one text of two or more tokens")
    return Utility(kl_sum / count, math.exp(base_nll / count), math.exp(steered_nll / count))


ANSWERS_SCHEMA: dict[str, pl.DataType] = {
    "answer_id": pl.String(),
    "method": pl.String(),
    "prompt_id": pl.String(),
    "kind": pl.String(),
    "prompt": pl.String(),
    "answer": pl.String(),
}


def steered_answers(
    model: Any,
    tokenizer: Any,
    prompts: pl.DataFrame,
    methods: Mapping[str, Steerer | None],
    layer: int,
    max_new_tokens: int,
    batch_size: int = 8,
) -> pl.DataFrame:
    """Every prompt (`prompt_id`, `kind`, `prompt`) answered under every steering method, greedy."""
    rows = []
    records = prompts.to_dicts()
    for method, steerer in methods.items():
        for start in range(0, len(records), batch_size):
            batch = records[start : start + batch_size]
            texts = generate(model, tokenizer, [r["prompt"] for r in batch], max_new_tokens, layer, steerer)
            rows += [
                {
                    "answer_id": f"{method}:{r['prompt_id']}",
                    "method": method,
                    **{key: r[key] for key in ("prompt_id", "kind", "prompt")},
                    "answer": text,
                }
                for r, text in zip(batch, texts, strict=True)
            ]
    return pl.DataFrame(rows, schema=ANSWERS_SCHEMA)


def utility_table(
    model: Any, tokenizer: Any, texts: Sequence[str], methods: Mapping[str, Steerer | None], layer: int
) -> pl.DataFrame:
    """Per method: KL from the unsteered model and the perplexity ratio on benign `texts`."""
    rows = []
    for method, steerer in methods.items():
        result = utility(model, tokenizer, texts, layer, steerer)
        rows.append({"method": method, "kl": result.kl, "perplexity_ratio": result.perplexity_ratio})
    return pl.DataFrame(rows)


def target_logprob(
    model: Any, tokenizer: Any, prompts: Sequence[str], targets: Sequence[str], layer: int, steerer: Steerer | None
) -> float:
    """Mean per-token log-probability of each `target` continuation after its chat-formatted prompt.

    With JBB's affirmative targets ("Sure, here is ...") on harmful prompts this is a compliance score that
    needs no judge: steering that removes harmful concepts should lower it.
    """
    import torch

    total, count = 0.0, 0
    for prompt, target in zip(prompts, targets, strict=True):
        head = chat_prompt_ids(tokenizer, prompt)
        tail = tokenizer(target, add_special_tokens=False)["input_ids"]
        log_probs = _log_probs(model, head + tail, layer, steerer)[len(head) - 1 :]
        total += float(log_probs[torch.arange(len(tail)), torch.tensor(tail)].sum())
        count += len(tail)
    return total / max(count, 1)
