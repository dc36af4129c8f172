"""The generative student's grammar-constrained decoding: every output is a parseable label line."""

from pathlib import Path

import pytest
import torch

from ops.common.packaged_models import smollm2_model_path
from ops.webdocs.label_grammar import LabelGrammar
from ops.webdocs.student_data import label_lines_frame
from tests.conftest import sample_records
from training.webdocs.generative_student import (
    GenerativeConfig,
    TrainedGenerative,
    byte_tokenizer,
    generate,
    load_base_model,
    load_tokenizer,
    tiny_base,
)

torch.set_num_threads(1)


def untrained_student(base_model: str, **config) -> TrainedGenerative:
    """A base model as the student, no adapter: the hardest case for the label format."""
    student = GenerativeConfig(base_model=base_model, **config)
    return TrainedGenerative(
        model=load_base_model(student), tokenizer=load_tokenizer(student.base_model, student.gguf_file), config=student
    )


def test_random_student_parses_only_when_constrained(tmp_path: Path) -> None:
    student = untrained_student(str(tiny_base(tmp_path / "base", byte_tokenizer())), max_length=512)
    texts = [record["text"] for record in sample_records("c4_en_sample_1000.jsonl", 6)]
    ids = [f"d{i}" for i in range(len(texts))]

    free = generate(student, texts, max_new_tokens=40)
    _, free_unparseable = label_lines_frame(ids, free)
    constrained = generate(student, texts, max_new_tokens=40, grammar=LabelGrammar())
    frame, unparseable = label_lines_frame(ids, constrained)

    assert free_unparseable == len(texts)  # a random model writes bytes, not label lines
    assert unparseable == 0
    assert frame.height == len(texts) and (frame["timeliness__primary"] != "").all()


@pytest.mark.slow
def test_packaged_smollm2_constrained_outputs_all_parse() -> None:
    student = untrained_student(str(smollm2_model_path()), max_length=640, max_doc_chars=300)
    texts = [record["text"] for record in sample_records("c4_en_sample_1000.jsonl", 2)]
    outputs = generate(student, texts, grammar=LabelGrammar())
    _, unparseable = label_lines_frame(["a", "b"], outputs)
    assert unparseable == 0, outputs
