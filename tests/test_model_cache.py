"""The dequantized-GGUF cache: the cached folder is the same model as the GGUF, and it is written once."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ops.common.packaged_models import MODEL_CACHE_ENV, model_cache_dir, smollm2_model_path
from training.webdocs.generative_student import GenerativeConfig, _pretrained_source, load_base_model


def test_cache_dir_prefers_explicit_then_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path / "explicit"))
    monkeypatch.setenv("ASSAY_HOME", str(tmp_path / "home"))
    assert model_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv(MODEL_CACHE_ENV)
    assert model_cache_dir() == tmp_path / "home" / "cache" / "models"
    monkeypatch.delenv("ASSAY_HOME")
    assert model_cache_dir() is None


def test_hub_ids_and_folders_pass_through(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(MODEL_CACHE_ENV, str(tmp_path))
    assert _pretrained_source("Qwen/Qwen2.5-0.5B", None) == ("Qwen/Qwen2.5-0.5B", {})
    assert _pretrained_source(str(tmp_path), None) == (str(tmp_path), {})
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_cached_folder_holds_the_gguf_weights() -> None:
    """The suite-wide cache folder (conftest) against llama.cpp's own `gguf` dequantizer, tensor by tensor."""
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors.torch import load_file

    gguf = smollm2_model_path()
    source, extra = _pretrained_source(str(gguf), None)
    assert extra == {} and Path(source).parent == model_cache_dir()
    weights = Path(source) / "model.safetensors"
    written = weights.stat().st_mtime_ns
    assert _pretrained_source(str(gguf), None)[0] == source and weights.stat().st_mtime_ns == written
    cached = load_file(str(weights))
    reader = {tensor.name: tensor for tensor in GGUFReader(str(gguf)).tensors}
    pairs = {
        "token_embd.weight": "lm_head.weight",  # tied: safetensors keeps one name
        "blk.0.ffn_down.weight": "model.layers.0.mlp.down_proj.weight",
        "blk.3.attn_v.weight": "model.layers.3.self_attn.v_proj.weight",
        "blk.0.attn_norm.weight": "model.layers.0.input_layernorm.weight",
    }
    for gguf_name, torch_name in pairs.items():
        tensor = reader[gguf_name]
        expected = torch.from_numpy(dequantize(tensor.data, tensor.tensor_type).copy()).float()
        assert torch.equal(cached[torch_name], expected.reshape(cached[torch_name].shape)), torch_name
    with torch.no_grad():
        logits = load_base_model(GenerativeConfig(base_model=str(gguf)))(torch.tensor([[1, 504, 3458]])).logits
    assert logits.shape == (1, 3, 49152) and torch.isfinite(logits).all()
