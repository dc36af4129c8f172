"""The multi-task MLP filter: one shared trunk over document embeddings, one softmax head per dimension.

This is the paper's cheapest student: once a corpus is embedded (E5, or the packaged MiniLM), every
taxonomy dimension is predicted by a small MLP at tens of thousands of documents a second, so the
whole corpus can be labelled and later filters can threshold the kept probabilities.

Training choices, all in `MLPConfig`:
- Primary label: weighted cross-entropy per dimension, averaged over dimensions.
- Secondary label (`secondary_weight`, off by default): an auxiliary cross-entropy of the *same* head
  against the secondary code, scaled by the weight. Minimising `CE(primary) + w * CE(secondary)` on
  one softmax is the same as a soft target of `1/(1+w)` on the primary and `w/(1+w)` on the
  secondary, so the head learns to rank the teacher's secondary second, which is exactly what
  `predictions_frame` reads back as `{d}__secondary`. Null, abstain ("-1") and secondaries equal to
  the primary are ignored (no auxiliary loss for that row). It is off by default because whether it
  helps depends on the teacher: enable it when validation agreement on the primary does not drop.
- Class weights (`class_weighting`): a class with ten times fewer training examples than the
  dimension's most common class counts ten times as much per example, clipped at
  `max_class_weight`, so skewed dimensions (most documents are "not outdated", "no artifacts") do not
  collapse to the majority code.
- AdamW, early stopping on the validation loss with patience; the best epoch's weights are kept.
- Seeded: `torch.manual_seed` for initialisation and dropout, `numpy.default_rng` for shuffling.

All heads share one output matrix whose columns are split per dimension: the same model as separate
heads, but one matrix product at inference time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields

import numpy as np
import polars as pl
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import nn
from torch.nn import functional as F

MLP_FORMAT = "assay.webdocs.mlp_filter/1"
ABSTAIN = "-1"
IGNORE_INDEX = -100
DEFAULT_SECONDARY_THRESHOLD = 0.2


@dataclass(frozen=True)
class MLPConfig:
    """Architecture and training settings of the MLP filter."""

    hidden_sizes: tuple[int, ...] = (1024, 512)
    dropout: float = 0.1
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    batch_size: int = 256
    max_epochs: int = 50
    patience: int = 3  # epochs without a validation-loss improvement before stopping
    min_delta: float = 1e-4  # smallest decrease of the validation loss that counts as an improvement
    class_weighting: bool = True
    max_class_weight: float = 10.0
    secondary_weight: float = 0.0  # 0 = primary labels only; see the module docstring
    seed: int = 0

    @classmethod
    def from_dict(cls, values: Mapping[str, object]) -> MLPConfig:
        """Rebuild a config read back from JSON (lists become tuples, unknown keys are an error)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown MLPConfig fields: {unknown}")
        data = dict(values)
        if "hidden_sizes" in data:
            data["hidden_sizes"] = tuple(int(size) for size in data["hidden_sizes"])  # type: ignore[union-attr]
        return cls(**data)  # type: ignore[arg-type]


@dataclass(frozen=True)
class EpochMetrics:
    """Losses and validation accuracy (primary label, per dimension) after one epoch; epochs count from 1."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: dict[str, float]

    @property
    def mean_val_accuracy(self) -> float:
        """Unweighted mean of the per-dimension validation accuracies."""
        return float(np.mean(list(self.val_accuracy.values()))) if self.val_accuracy else float("nan")


class MultiTaskMLP(nn.Module):
    """Shared trunk (Linear, GELU, Dropout per hidden size) and one softmax head per dimension."""

    def __init__(self, input_dim: int, hidden_sizes: Sequence[int], head_sizes: Sequence[int], dropout: float):
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), nn.GELU(), nn.Dropout(dropout)]
            width = size
        self.trunk = nn.Sequential(*layers)
        self.heads = nn.Linear(width, sum(head_sizes))
        self.head_sizes = tuple(int(size) for size in head_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of all heads side by side, shape (batch, sum(head_sizes)); split with `head_sizes`."""
        return self.heads(self.trunk(x))


@dataclass
class TrainedClassifier:
    """What every trained multi-head student carries: its model, label sets, history and baseline."""

    model: nn.Module
    vocabularies: dict[str, tuple[str, ...]]
    history: list[EpochMetrics]
    best_epoch: int
    train_size: int
    val_size: int
    baseline_accuracy: dict[str, float]  # majority code of the training split, scored on validation

    @property
    def dimensions(self) -> list[str]:
        """Dimension names in head order."""
        return list(self.vocabularies)

    @property
    def parameter_count(self) -> int:
        """Number of parameters of the whole model."""
        return sum(parameter.numel() for parameter in self.model.parameters())

    @property
    def best_metrics(self) -> EpochMetrics:
        """Metrics of the epoch whose weights were kept."""
        return self.history[self.best_epoch - 1]


@dataclass
class TrainedMLP(TrainedClassifier):
    """A trained (or loaded) MLP filter with everything needed to predict and describe it."""

    config: MLPConfig
    input_dim: int


class EarlyStopping:
    """Per-epoch bookkeeping of a training run: history, best validation loss and its weights, patience."""

    def __init__(
        self, model: nn.Module, patience: int, min_delta: float, on_epoch: Callable[[EpochMetrics], None] | None = None
    ):
        self.patience = patience
        self.min_delta = min_delta
        self.on_epoch = on_epoch
        self.history: list[EpochMetrics] = []
        self.best_loss = float("inf")
        self.best_epoch = 0
        self.best_state = clone_state(model)
        self.stale_epochs = 0

    def end_epoch(self, model: nn.Module, metrics: EpochMetrics) -> bool:
        """Record an epoch, keeping its weights when its validation loss is the best; True to stop."""
        self.history.append(metrics)
        if self.on_epoch is not None:
            self.on_epoch(metrics)
        if metrics.val_loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.stale_epochs = metrics.val_loss, metrics.epoch, 0
            self.best_state = clone_state(model)
        else:
            self.stale_epochs += 1
        return self.stale_epochs >= self.patience

    def restore_best(self, model: nn.Module) -> None:
        """Load the best epoch's weights back into the model, in evaluation mode."""
        model.load_state_dict(self.best_state)
        model.eval()


def class_weight_tensors(
    targets: Sequence[np.ndarray], vocabularies: Mapping[str, Sequence[str]], enabled: bool, max_weight: float
) -> list[torch.Tensor | None]:
    """Per dimension, the class weights of its training targets (None everywhere when disabled)."""
    return [
        torch.from_numpy(class_weights(target, len(vocabulary), max_weight)) if enabled else None
        for target, vocabulary in zip(targets, vocabularies.values(), strict=True)
    ]


def encode_labels(labels: Sequence[str], vocabulary: Sequence[str], dimension: str) -> np.ndarray:
    """Indices of the codes in `vocabulary`; a code outside it is an error, not a silent class."""
    index = {code: position for position, code in enumerate(vocabulary)}
    unknown = sorted({repr(code) for code in labels if code not in index})
    if unknown:
        raise ValueError(f"{dimension}: labels outside the vocabulary: {', '.join(unknown[:10])}")
    return np.fromiter((index[code] for code in labels), dtype=np.int64, count=len(labels))


def encode_secondary(
    labels: Sequence[str | None], primary: np.ndarray, vocabulary: Sequence[str], dimension: str
) -> np.ndarray:
    """Indices of secondary codes, IGNORE_INDEX where there is none (null, abstain, same as primary)."""
    index = {code: position for position, code in enumerate(vocabulary)}
    unknown = sorted({repr(code) for code in labels if code is not None and code not in index})
    if unknown:
        raise ValueError(f"{dimension}: secondary labels outside the vocabulary: {', '.join(unknown[:10])}")
    encoded = np.array(
        [IGNORE_INDEX if code is None or code == ABSTAIN else index[code] for code in labels], dtype=np.int64
    )
    encoded[encoded == primary] = IGNORE_INDEX
    return encoded


def class_weights(targets: np.ndarray, n_classes: int, max_weight: float) -> np.ndarray:
    """Per-class loss weights: count of the most common class / count of this class, clipped.

    The most common class weighs 1; classes absent from training get `max_weight` (they can still
    appear as secondary targets).
    """
    counts = np.bincount(targets[targets >= 0], minlength=n_classes).astype(np.float64)
    weights = np.full(n_classes, max_weight, dtype=np.float64)
    present = counts > 0
    if present.any():
        weights[present] = np.minimum(counts.max() / counts[present], max_weight)
    return weights.astype(np.float32)


def multitask_loss(
    logits: torch.Tensor,
    head_sizes: Sequence[int],
    primary: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor | None],
    secondary: Sequence[torch.Tensor] | None = None,
    secondary_weight: float = 0.0,
) -> torch.Tensor:
    """Mean over dimensions of the weighted primary cross-entropy plus the weighted secondary term."""
    losses = []
    for position, head_logits in enumerate(torch.split(logits, list(head_sizes), dim=1)):
        loss = F.cross_entropy(head_logits, primary[position], weight=weights[position])
        if secondary is not None and secondary_weight > 0:
            has_secondary = secondary[position] != IGNORE_INDEX
            if bool(has_secondary.any()):
                loss = loss + secondary_weight * F.cross_entropy(
                    head_logits[has_secondary], secondary[position][has_secondary], weight=weights[position]
                )
        losses.append(loss)
    return torch.stack(losses).mean()


def primary_accuracy(
    logits: torch.Tensor,
    head_sizes: Sequence[int],
    primary: Sequence[torch.Tensor],
    dimensions: Sequence[str],
) -> dict[str, float]:
    """Share of rows whose argmax equals the primary label, per dimension."""
    return {
        dimension: float((head_logits.argmax(dim=1) == primary[position]).float().mean())
        for position, (dimension, head_logits) in enumerate(
            zip(dimensions, torch.split(logits, list(head_sizes), dim=1), strict=True)
        )
    }


def majority_baseline(
    train_primary: Sequence[np.ndarray], val_primary: Sequence[np.ndarray], dimensions: Sequence[str]
) -> dict[str, float]:
    """Validation accuracy of always answering the training split's most common code."""
    return {
        dimension: float(np.mean(val == np.bincount(train).argmax())) if len(val) else float("nan")
        for dimension, train, val in zip(dimensions, train_primary, val_primary, strict=True)
    }


def train_mlp_filter(
    train_x: np.ndarray,
    train_labels: Mapping[str, Sequence[str]],
    val_x: np.ndarray,
    val_labels: Mapping[str, Sequence[str]],
    vocabularies: Mapping[str, Sequence[str]],
    config: MLPConfig | None = None,
    *,
    train_secondary: Mapping[str, Sequence[str | None]] | None = None,
    val_secondary: Mapping[str, Sequence[str | None]] | None = None,
    on_epoch: Callable[[EpochMetrics], None] | None = None,
) -> TrainedMLP:
    """Train the filter on embeddings and the teacher's primary codes; keep the best validation epoch.

    `vocabularies` fixes the dimensions (and head order) and each head's classes, "-1" included.
    Secondary labels are needed only when `config.secondary_weight > 0`. `on_epoch` receives each
    epoch's metrics (for logging from an asset).
    """
    config = config or MLPConfig()
    dimensions = list(vocabularies)
    vocabs = {dimension: tuple(vocabularies[dimension]) for dimension in dimensions}
    train_x, val_x = _as_matrix(train_x, "train_x"), _as_matrix(val_x, "val_x")
    if train_x.shape[1] != val_x.shape[1]:
        raise ValueError(f"train_x has {train_x.shape[1]} columns but val_x has {val_x.shape[1]}")
    if len(train_x) == 0 or len(val_x) == 0:
        raise ValueError("training and validation splits must both hold at least one row")
    train_primary = encode_split(train_labels, vocabs, len(train_x), "train")
    val_primary = encode_split(val_labels, vocabs, len(val_x), "validation")
    train_sec = val_sec = None
    if config.secondary_weight > 0:
        if train_secondary is None or val_secondary is None:
            raise ValueError("secondary_weight > 0 needs train_secondary and val_secondary labels")
        train_sec = _encode_secondary_split(train_secondary, train_primary, vocabs)
        val_sec = _encode_secondary_split(val_secondary, val_primary, vocabs)
    weights = class_weight_tensors(train_primary, vocabs, config.class_weighting, config.max_class_weight)

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = MultiTaskMLP(train_x.shape[1], config.hidden_sizes, [len(vocabs[d]) for d in dimensions], config.dropout)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    features = torch.from_numpy(train_x)
    targets = [torch.from_numpy(target) for target in train_primary]
    secondary = [torch.from_numpy(target) for target in train_sec] if train_sec is not None else None
    val_targets = [torch.from_numpy(target) for target in val_primary]
    val_secondary_t = [torch.from_numpy(target) for target in val_sec] if val_sec is not None else None
    stopper = EarlyStopping(model, config.patience, config.min_delta, on_epoch)

    for epoch in range(1, config.max_epochs + 1):
        model.train()
        total, seen = 0.0, 0
        for batch in np.array_split(rng.permutation(len(features)), max(1, -(-len(features) // config.batch_size))):
            rows = torch.from_numpy(batch)
            loss = multitask_loss(
                model(features[rows]),
                model.head_sizes,
                [target[rows] for target in targets],
                weights,
                [target[rows] for target in secondary] if secondary is not None else None,
                config.secondary_weight,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
            seen += len(batch)
        model.eval()
        with torch.inference_mode():
            val_logits = _logits(model, val_x, 4096)
            val_loss = float(
                multitask_loss(
                    val_logits,
                    model.head_sizes,
                    val_targets,
                    weights,
                    val_secondary_t,
                    config.secondary_weight,
                )
            )
            accuracy = primary_accuracy(val_logits, model.head_sizes, val_targets, dimensions)
        metrics = EpochMetrics(epoch=epoch, train_loss=total / seen, val_loss=val_loss, val_accuracy=accuracy)
        if stopper.end_epoch(model, metrics):
            break

    stopper.restore_best(model)
    return TrainedMLP(
        model=model,
        config=config,
        input_dim=int(train_x.shape[1]),
        vocabularies=vocabs,
        history=stopper.history,
        best_epoch=stopper.best_epoch,
        train_size=len(train_x),
        val_size=len(val_x),
        baseline_accuracy=majority_baseline(train_primary, val_primary, dimensions),
    )


def predict_proba(trained: TrainedMLP, x: np.ndarray, batch_size: int = 4096) -> dict[str, np.ndarray]:
    """Per dimension, a float32 (rows, vocabulary) matrix of probabilities in vocabulary order; rows sum to 1.

    Works on any batch, so a corpus is labelled by streaming its embeddings through in chunks.
    """
    matrix = _as_matrix(x, "x")
    if matrix.shape[1] != trained.input_dim:
        raise ValueError(f"x has {matrix.shape[1]} columns, the model expects {trained.input_dim}")
    trained.model.eval()
    with torch.inference_mode():
        logits = _logits(trained.model, matrix, batch_size)
        return {
            dimension: torch.softmax(head_logits, dim=1).numpy()
            for dimension, head_logits in zip(
                trained.dimensions, torch.split(logits, list(trained.model.head_sizes), dim=1), strict=True
            )
        }


def predict_labels(trained: TrainedMLP, x: np.ndarray, batch_size: int = 4096) -> dict[str, list[str]]:
    """Per dimension, the most probable code of each row."""
    return {
        dimension: [trained.vocabularies[dimension][i] for i in probabilities.argmax(axis=1)]
        for dimension, probabilities in predict_proba(trained, x, batch_size).items()
    }


def predictions_frame(
    doc_ids: Sequence[str],
    probabilities: Mapping[str, np.ndarray],
    vocabularies: Mapping[str, Sequence[str]],
    *,
    secondary_threshold: float = DEFAULT_SECONDARY_THRESHOLD,
) -> pl.DataFrame:
    """One row per document: `doc_id`, then per dimension `{d}__primary`, `{d}__secondary`, `{d}__probs`.

    The primary is the most probable code; the secondary is the second most probable one when its
    probability reaches `secondary_threshold` and it is not the abstain code, else null. `{d}__probs`
    keeps the whole distribution (list[f32], vocabulary order) so later filters can threshold it.
    A head trained with `secondary_weight` w puts about w / (1 + w) on a taught secondary, so keep
    the threshold below that (the default 0.2 suits w >= 0.5).
    """
    columns: list[pl.Series] = [pl.Series("doc_id", list(doc_ids), dtype=pl.String)]
    for dimension, probs in probabilities.items():
        vocabulary = np.asarray(vocabularies[dimension], dtype=object)
        if probs.shape != (len(doc_ids), len(vocabulary)):
            raise ValueError(f"{dimension}: probabilities of shape {probs.shape} for {len(doc_ids)} documents")
        if len(vocabulary) > 1:
            top_two = np.argsort(-probs, axis=1, kind="stable")[:, :2]
        else:
            top_two = np.zeros((len(doc_ids), 2), dtype=np.int64)
        second_prob = probs[np.arange(len(probs)), top_two[:, 1]]
        second = vocabulary[top_two[:, 1]]
        keep = (second_prob >= secondary_threshold) & (second != ABSTAIN) & (len(vocabulary) > 1)
        columns += [
            pl.Series(f"{dimension}__primary", vocabulary[top_two[:, 0]].tolist(), dtype=pl.String),
            pl.Series(f"{dimension}__secondary", np.where(keep, second, None).tolist(), dtype=pl.String),
            pl.Series(f"{dimension}__probs", probs.astype(np.float32, copy=False)).cast(pl.List(pl.Float32)),
        ]
    return pl.DataFrame(columns)


def save_mlp(trained: TrainedMLP, card_fields: Mapping[str, object] | None = None) -> dict[str, bytes]:
    """Serialise to `model.safetensors`, `config.json` and `card.md`; the bytes depend only on the model.

    `card_fields` (e.g. training data version, embedding model) are listed at the top of the card and
    kept in config.json under "card_fields".
    """
    extra = {str(key): str(value) for key, value in (card_fields or {}).items()}
    config = {
        "format": MLP_FORMAT,
        "input_dim": trained.input_dim,
        "dimensions": trained.dimensions,
        "vocabularies": {dimension: list(codes) for dimension, codes in trained.vocabularies.items()},
        "config": asdict(trained.config),
        "parameter_count": trained.parameter_count,
        "best_epoch": trained.best_epoch,
        "train_size": trained.train_size,
        "val_size": trained.val_size,
        "baseline_accuracy": trained.baseline_accuracy,
        "history": [asdict(metrics) for metrics in trained.history],
        "card_fields": extra,
    }
    return {
        "model.safetensors": save_safetensors(clone_state(trained.model)),
        "config.json": json.dumps(config, indent=2, sort_keys=True).encode(),
        "card.md": _model_card(trained, extra).encode(),
    }


def load_mlp(files: Mapping[str, bytes]) -> TrainedMLP:
    """Rebuild a filter written by `save_mlp`."""
    config = json.loads(files["config.json"])
    if config.get("format") != MLP_FORMAT:
        raise ValueError(f"not an MLP filter (format {config.get('format')!r}, expected {MLP_FORMAT!r})")
    settings = MLPConfig.from_dict(config["config"])
    vocabularies = {dimension: tuple(config["vocabularies"][dimension]) for dimension in config["dimensions"]}
    model = MultiTaskMLP(
        config["input_dim"],
        settings.hidden_sizes,
        [len(codes) for codes in vocabularies.values()],
        settings.dropout,
    )
    model.load_state_dict(load_safetensors(files["model.safetensors"]))
    model.eval()
    return TrainedMLP(
        model=model,
        config=settings,
        input_dim=config["input_dim"],
        vocabularies=vocabularies,
        history=[EpochMetrics(**metrics) for metrics in config["history"]],
        best_epoch=config["best_epoch"],
        train_size=config["train_size"],
        val_size=config["val_size"],
        baseline_accuracy=config["baseline_accuracy"],
    )


def metrics_card_sections(
    history: Sequence[EpochMetrics],
    best_epoch: int,
    vocabularies: Mapping[str, Sequence[str]],
    baseline_accuracy: Mapping[str, float],
    config: object,
) -> list[str]:
    """Markdown sections shared by the students' model cards: accuracy at the best epoch, config, history."""
    best = history[best_epoch - 1]
    lines = [
        f"## Validation accuracy at the best epoch ({best_epoch} of {len(history)})",
        "",
        "| dimension | classes | accuracy | majority baseline |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {d} | {len(vocabularies[d])} | {best.val_accuracy[d]:.4f} | {baseline_accuracy[d]:.4f} |"
        for d in vocabularies
    ]
    lines += ["", "## Config", "", "| setting | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in asdict(config).items()]  # type: ignore[call-overload]
    lines += [
        "",
        "## Training history",
        "",
        "| epoch | train loss | val loss | mean val accuracy |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m.epoch} | {m.train_loss:.4f} | {m.val_loss:.4f} | {m.mean_val_accuracy:.4f} |" for m in history]
    return lines


def card_header(title: str, summary: str, card_fields: Mapping[str, str], facts: Mapping[str, object]) -> list[str]:
    """Title, one-paragraph summary and a table of facts (caller's card fields first)."""
    lines = [f"# {title}", "", summary, "", "| field | value |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in {**card_fields, **facts}.items()]
    return [*lines, ""]


def _model_card(trained: TrainedMLP, card_fields: Mapping[str, str]) -> str:
    summary = (
        "Multi-task MLP over document embeddings: a shared trunk and one softmax head per taxonomy "
        "dimension, trained on the teacher LLM's primary labels with class weighting and early stopping "
        "on the validation loss. It labels a corpus at MLP speed; its probabilities are kept for filters."
    )
    facts = {
        "embedding dimension": trained.input_dim,
        "dimensions": len(trained.vocabularies),
        "parameters": trained.parameter_count,
        "training documents": trained.train_size,
        "validation documents": trained.val_size,
        "best epoch": trained.best_epoch,
        "best validation loss": f"{trained.best_metrics.val_loss:.4f}",
        "mean validation accuracy": f"{trained.best_metrics.mean_val_accuracy:.4f}",
    }
    lines = card_header("Web-document MLP filter", summary, card_fields, facts)
    lines += metrics_card_sections(
        trained.history, trained.best_epoch, trained.vocabularies, trained.baseline_accuracy, trained.config
    )
    return "\n".join(lines) + "\n"


def _as_matrix(x: np.ndarray, name: str) -> np.ndarray:
    matrix = np.ascontiguousarray(x, dtype=np.float32)
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be a 2-d array, got shape {matrix.shape}")
    return matrix


def encode_split(
    labels: Mapping[str, Sequence[str]], vocabularies: Mapping[str, Sequence[str]], rows: int, split: str
) -> list[np.ndarray]:
    """Class indices of one split's labels, one array per dimension in vocabulary order (checked)."""
    encoded = []
    for dimension, vocabulary in vocabularies.items():
        if dimension not in labels:
            raise ValueError(f"{split} labels lack dimension {dimension!r}")
        if len(labels[dimension]) != rows:
            raise ValueError(f"{split} labels of {dimension!r}: {len(labels[dimension])} for {rows} rows")
        encoded.append(encode_labels(labels[dimension], vocabulary, dimension))
    return encoded


def _encode_secondary_split(
    labels: Mapping[str, Sequence[str | None]],
    primary: Sequence[np.ndarray],
    vocabularies: Mapping[str, Sequence[str]],
) -> list[np.ndarray]:
    return [
        encode_secondary(labels[dimension], target, vocabulary, dimension)
        for (dimension, vocabulary), target in zip(vocabularies.items(), primary, strict=True)
    ]


def _logits(model: nn.Module, matrix: np.ndarray, batch_size: int) -> torch.Tensor:
    parts = [model(torch.from_numpy(matrix[start : start + batch_size])) for start in range(0, len(matrix), batch_size)]
    if not parts:
        return model(torch.zeros((0, matrix.shape[1]), dtype=torch.float32))
    return torch.cat(parts)


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of the model's weights (the best epoch's, restored at the end of training)."""
    return {name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()}
