"""Does a teacher's labelling depend on the document? Health figures of one shard's annotations.

A collapsed teacher passes every schema check: its labels are valid codes, only they are (nearly)
the same for every document, or abstentions. Three figures catch it, each with a threshold:
- per dimension, the entropy (bits) of the primary codes across the shard's documents; a dimension
  below `min_entropy_bits` is "constant", and too large a share of constant dimensions is a flag;
- the share of documents whose whole answer (every label of every pass) equals the most common one;
- the mean share of abstentions (code -1) over the dimensions.
Fewer than `min_documents` documents say nothing about dependence, so they are never flagged.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from ops.webdocs.taxonomy import ABSTAIN


@dataclass(frozen=True)
class HealthThresholds:
    """When annotations look independent of the document (config of the health check)."""

    min_documents: int = 5
    min_entropy_bits: float = 0.5
    max_constant_dimension_share: float = 0.5
    max_identical_answer_share: float = 0.5
    max_abstain_share: float = 0.5


@dataclass(frozen=True)
class AnnotationHealth:
    """The health figures of one shard and the problems found (empty: healthy)."""

    documents: int
    entropy_bits: dict[str, float]
    constant_dimension_share: float
    identical_answer_share: float
    abstain_share: float
    problems: tuple[str, ...]

    @property
    def healthy(self) -> bool:
        """True when no figure crossed its threshold."""
        return not self.problems

    def metadata(self) -> dict[str, float | int | str]:
        """Numeric figures (4 digits) and the problems, for the check's metadata."""
        return {
            "documents": self.documents,
            "constant_dimension_share": round(self.constant_dimension_share, 4),
            "identical_answer_share": round(self.identical_answer_share, 4),
            "abstain_share": round(self.abstain_share, 4),
            "min_entropy_bits": round(min(self.entropy_bits.values(), default=0.0), 4),
            "problems": "; ".join(self.problems) or "none",
        }


def label_entropy(codes: Sequence[str | None]) -> float:
    """Shannon entropy in bits of the codes' distribution (abstentions count as a code)."""
    counts = Counter(code for code in codes if code is not None)
    total = sum(counts.values())
    return -sum(n / total * math.log2(n / total) for n in counts.values()) if total else 0.0


def annotation_health(
    annotations: pl.DataFrame, dimensions: Sequence[str], thresholds: HealthThresholds
) -> AnnotationHealth:
    """Entropy per dimension, identical-answer share and abstain share of a shard's annotations."""
    primaries = [f"{dimension}__primary" for dimension in dimensions]
    labels = [column for column in annotations.columns if column.endswith(("__primary", "__secondary"))]
    documents = annotations.height
    entropy = {d: label_entropy(annotations[f"{d}__primary"].to_list()) for d in dimensions}
    constant = sum(bits < thresholds.min_entropy_bits for bits in entropy.values()) / max(len(dimensions), 1)
    answers = Counter(annotations.select(labels).iter_rows()) if documents else Counter()
    identical = answers.most_common(1)[0][1] / documents if documents else 0.0
    abstain = (
        sum(float((annotations[column] == ABSTAIN).mean() or 0.0) for column in primaries) / len(primaries)
        if documents and primaries
        else 0.0
    )
    problems: list[str] = []
    if documents >= thresholds.min_documents:
        if constant > thresholds.max_constant_dimension_share:
            flat = sorted(d for d, bits in entropy.items() if bits < thresholds.min_entropy_bits)
            problems.append(
                f"{constant:.0%} of the dimensions have label entropy < {thresholds.min_entropy_bits} bits across "
                f"{documents} documents (maximum {thresholds.max_constant_dimension_share:.0%}): {', '.join(flat)}"
            )
        if identical > thresholds.max_identical_answer_share:
            problems.append(
                f"{identical:.0%} of the documents got the same answer in every label "
                f"(maximum {thresholds.max_identical_answer_share:.0%})"
            )
        if abstain > thresholds.max_abstain_share:
            problems.append(f"{abstain:.0%} of the labels are abstentions (maximum {thresholds.max_abstain_share:.0%})")
    return AnnotationHealth(documents, entropy, constant, identical, abstain, tuple(problems))
