"""Hidden states of a causal LM at chosen decoder layers, captured by forward hooks and pooled per text.

A hook on each requested layer records that layer's output; once the deepest requested layer has run,
the forward pass is stopped (`_StopForward`), so neither the later layers nor the vocabulary head cost
anything. Texts are tokenized up to `max_tokens` (the window): a longer text is truncated and the row
says so. A pooled vector with NaN or inf is quarantined by the caller, never stored as a direction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from ops.common.quarantine import Rejected, Split, split

if TYPE_CHECKING:
    import torch

POOLINGS = ("mean", "last")


class _StopForward(Exception):
    """Raised by the deepest hook: everything after it is not needed."""


@dataclass(frozen=True)
class PooledBatch:
    """Pooled hidden states per layer ([texts, hidden]) and, per text, its token count and truncation."""

    by_layer: dict[int, np.ndarray]
    n_tokens: list[int]
    truncated: list[bool]


def decoder_layers(model: Any) -> Any:
    """The model's list of decoder blocks (`model.model.layers` for Llama/Qwen-style models)."""
    inner = getattr(model, "model", model)
    layers = getattr(inner, "layers", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} exposes no `.model.layers` decoder blocks to hook")
    return layers


def check_layers(model: Any, layers: Sequence[int]) -> None:
    """Raise naming the model's depth when a requested layer does not exist."""
    depth = len(decoder_layers(model))
    bad = [layer for layer in layers if not 0 <= layer < depth]
    if bad or not layers:
        raise ValueError(f"layers {list(layers)} are not all in 0..{depth - 1} of this {depth}-layer model")


@contextmanager
def captured(model: Any, layers: Sequence[int], stop_after: bool = True) -> Iterator[dict[int, torch.Tensor]]:
    """Within the block, each forward pass leaves layer `i`'s hidden states ([batch, seq, hidden]) in the dict."""
    check_layers(model, layers)
    blocks, store, deepest = decoder_layers(model), {}, max(layers)

    def hook_for(layer: int) -> Callable:
        def hook(_module: Any, _inputs: Any, output: Any) -> None:
            store[layer] = (output[0] if isinstance(output, tuple) else output).detach()
            if stop_after and layer == deepest:
                raise _StopForward

        return hook

    handles = [blocks[layer].register_forward_hook(hook_for(layer)) for layer in layers]
    try:
        yield store
    finally:
        for handle in handles:
            handle.remove()


def hidden_states(model: Any, layers: Sequence[int], **inputs: torch.Tensor) -> dict[int, torch.Tensor]:
    """Hidden states [batch, seq, hidden] of `layers` for one forward pass, stopped after the deepest layer."""
    import torch

    with captured(model, layers) as store, torch.no_grad(), suppress(_StopForward):
        model(**inputs, use_cache=False)
    return store


def pooled_activations(
    model: Any, tokenizer: Any, texts: Sequence[str], layers: Sequence[int], max_tokens: int, pooling: str = "mean"
) -> PooledBatch:
    """Pooled hidden states of `texts` (one batch, right-padded) at `layers`, float32 on CPU."""
    import torch

    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
    full = tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    ids = [row[:max_tokens] or [tokenizer.eos_token_id] for row in full]
    width = max(len(row) for row in ids)
    device = next(model.parameters()).device
    input_ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in ids], device=device)
    mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in ids], device=device)
    store = hidden_states(model, layers, input_ids=input_ids, attention_mask=mask)
    weights = mask.unsqueeze(-1).float()
    if pooling == "last":
        weights = torch.zeros_like(weights)
        weights[torch.arange(len(ids)), mask.sum(dim=1) - 1] = 1.0
    by_layer = {
        layer: ((store[layer].float() * weights).sum(dim=1) / weights.sum(dim=1)).cpu().numpy() for layer in layers
    }
    return PooledBatch(by_layer, [len(row) for row in ids], [len(row) > max_tokens for row in full])


def token_activations(
    model: Any, tokenizer: Any, texts: Sequence[str], layer: int, max_tokens: int
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Every token's hidden state at `layer` for `texts` cut to `max_tokens`, and its (text index, position)."""
    import torch

    vectors, where = [], []
    for index, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][:max_tokens]
        if not ids:
            continue
        device = next(model.parameters()).device
        store = hidden_states(model, [layer], input_ids=torch.tensor([ids], device=device))
        vectors.append(store[layer][0].float().cpu().numpy())
        where += [(index, position) for position in range(len(ids))]
    if not vectors:
        return np.zeros((0, model.config.hidden_size), dtype=np.float32), where
    return np.concatenate(vectors), where


def load_model(model: str, device: str = "cpu", dtype: str = "float32", cache_dir: str = "") -> tuple[Any, Any, str]:
    """(model, tokenizer, model id) for a Hugging Face id or folder, or "" for the packaged SmolLM2 GGUF.

    The model id recorded with activations and dictionaries is the GGUF file name for the packaged model
    (its folder differs between machines) and the id or folder otherwise. With `cache_dir`, a GGUF is
    dequantized once and kept there as a transformers folder (safetensors): dequantizing takes minutes on
    a loaded CPU, reading the folder seconds.
    """
    from ops.common.packaged_models import smollm2_model_path
    from training.webdocs.generative_student import (
        GenerativeConfig,
        dequantized_folder,
        load_base_model,
        load_tokenizer,
    )

    source = model or str(smollm2_model_path())
    model_id = Path(source).name if source.endswith(".gguf") else source
    if cache_dir and source.endswith(".gguf"):
        source = str(dequantized_folder(Path(source), Path(cache_dir)))
    tokenizer = load_tokenizer(source)
    loaded = load_base_model(GenerativeConfig(base_model=source, device=device, dtype=dtype))
    loaded.eval()
    return loaded, tokenizer, model_id


def token_snippets(
    tokenizer: Any, texts: Sequence[str], where: Sequence[tuple[int, int]], before: int = 6
) -> list[str]:
    """For each (text index, position): the `before` tokens leading up to it and the token itself in [brackets]."""
    ids = {index: tokenizer(texts[index], add_special_tokens=False)["input_ids"] for index in {i for i, _ in where}}
    return [
        tokenizer.decode(ids[index][max(0, position - before) : position])
        + f"[{tokenizer.decode(ids[index][position])}]"
        for index, position in where
    ]


ACTIVATIONS_SCHEMA: dict[str, pl.DataType] = {
    "stimulus_id": pl.String(),
    "synset_id": pl.String(),
    "split": pl.String(),
    "model_id": pl.String(),
    "layer": pl.Int64(),
    "n_tokens": pl.Int64(),
    "truncated": pl.Boolean(),
    "activation": pl.List(pl.Float32()),
}
NON_FINITE = "non_finite_activation"
ACTIVATION_REASONS = (NON_FINITE,)


def stimulus_activations(
    model: Any,
    tokenizer: Any,
    stimuli: pl.DataFrame,
    layers: Sequence[int],
    model_id: str,
    max_tokens: int,
    batch_size: int = 32,
    pooling: str = "mean",
) -> Split:
    """One row per (stimulus, layer) with its pooled hidden state; a NaN/inf vector is quarantined instead.

    Records are (stimulus, layer) pairs: rows in = stimuli x layers = kept + quarantined.
    """
    rows, rejected = [], []
    # Batches of similar length waste little on padding; rows go back to the stimuli's order at the end.
    records = sorted(
        stimuli.select("stimulus_id", "synset_id", "split", "text").to_dicts(), key=lambda r: len(r["text"])
    )
    order = {stimulus_id: index for index, stimulus_id in enumerate(stimuli["stimulus_id"].to_list())}
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        pooled = pooled_activations(model, tokenizer, [r["text"] for r in batch], layers, max_tokens, pooling)
        for layer in layers:
            for i, record in enumerate(batch):
                vector = pooled.by_layer[layer][i]
                if not np.isfinite(vector).all():
                    detail = f"layer {layer}: {int((~np.isfinite(vector)).sum())} non-finite values of {len(vector)}"
                    rejected.append(Rejected(f"{record['stimulus_id']}@{layer}", NON_FINITE, detail, record["text"]))
                    continue
                rows.append(
                    {
                        **{key: record[key] for key in ("stimulus_id", "synset_id", "split")},
                        "model_id": model_id,
                        "layer": layer,
                        "n_tokens": pooled.n_tokens[i],
                        "truncated": pooled.truncated[i],
                        "activation": vector.astype(np.float32).tolist(),
                    }
                )
    rows.sort(key=lambda row: (order[row["stimulus_id"]], row["layer"]))
    return split(rows, ACTIVATIONS_SCHEMA, rejected, len(records) * len(layers), ACTIVATION_REASONS)


def activation_matrix(frame: pl.DataFrame) -> np.ndarray:
    """The `activation` list column as a float32 matrix [rows, hidden]."""
    if frame.is_empty():
        raise ValueError("no activations to stack")
    return np.asarray(frame["activation"].to_list(), dtype=np.float32)
