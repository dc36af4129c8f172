"""Document quality filters as pretraining-data pipelines know them: Gopher, C4 and FineWeb rule sets.

The rules and default thresholds are those of DataTrove's `GopherRepetitionFilter`,
`GopherQualityFilter`, `C4QualityFilter` and `FineWebQualityFilter` (Rae et al. 2021; Raffel et al.
2020; Penedo et al. 2024), written once here because DataTrove's filters tokenize with NLTK data that
must be downloaded at run time (assay runs offline). Differences, on purpose:
- words come from a regex tokenizer (`words`) that splits punctuation off like NLTK's `word_tokenize`;
- C4 decides per document and never rewrites the text: a page is refused when it has a curly bracket,
  "lorem ipsum", or fewer than `c4_min_sentences` sentences in the lines C4 would keep; sentences are
  counted by terminal punctuation, not by the Punkt model.
Every rule has its own reason code (`QUALITY_REASONS`) and a threshold in `QualityRules`; None turns
a rule off, and `rule_sets` chooses the sets and their order (the first rule broken is the reason).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate

GOPHER_REPETITION = "gopher_repetition"
GOPHER_QUALITY = "gopher_quality"
C4 = "c4"
FINEWEB = "fineweb"
RULE_SETS = (GOPHER_REPETITION, GOPHER_QUALITY, C4, FINEWEB)
QUALITY_REASONS = (
    "gopher_dup_paragraphs",
    "gopher_dup_paragraph_chars",
    "gopher_dup_lines",
    "gopher_dup_line_chars",
    "gopher_top_ngram",
    "gopher_dup_ngram",
    "gopher_word_count",
    "gopher_mean_word_length",
    "gopher_symbol_ratio",
    "gopher_bullet_lines",
    "gopher_ellipsis_lines",
    "gopher_alpha_words",
    "gopher_stop_words",
    "c4_lorem_ipsum",
    "c4_curly_bracket",
    "c4_too_few_sentences",
    "fineweb_line_punctuation",
    "fineweb_short_lines",
    "fineweb_dup_line_chars",
    "fineweb_list_ratio",
)
GOPHER_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
C4_END_PUNCTUATION = (".", "?", "!", '"', "'")
C4_POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
FINEWEB_STOP_CHARS = (".", "'", '"', "!", "?")
_WORD = re.compile(r"\w+(?:[-'\u2019.]\w+)*|[^\w\s]+")
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")
_CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
_SENTENCE_END = re.compile(r"[.!?]+(?:[\"')\]]*)(?=\s|$)")
_PUNCTUATION = set(string.punctuation)

Verdict = tuple[str, str] | None


@dataclass(frozen=True)
class QualityRules:
    """Thresholds of every quality rule (DataTrove's defaults); None disables a rule."""

    rule_sets: tuple[str, ...] = RULE_SETS
    # Gopher repetition: shares of duplicated paragraphs/lines (by count and by characters) and of
    # characters covered by the most frequent n-gram (n=2..4) or by repeated n-grams (n=5..10).
    gopher_max_dup_paragraph_share: float | None = 0.3
    gopher_max_dup_paragraph_char_share: float | None = 0.2
    gopher_max_dup_line_share: float | None = 0.3
    gopher_max_dup_line_char_share: float | None = 0.2
    gopher_max_top_ngram_char_share: dict[int, float] = field(default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16})
    gopher_max_dup_ngram_char_share: dict[int, float] = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    # Gopher quality
    gopher_min_words: int | None = 50
    gopher_max_words: int | None = 100_000
    gopher_min_mean_word_length: float | None = 3.0
    gopher_max_mean_word_length: float | None = 10.0
    gopher_max_symbol_word_ratio: float | None = 0.1
    gopher_max_bullet_line_share: float | None = 0.9
    gopher_max_ellipsis_line_share: float | None = 0.3
    gopher_min_alpha_word_share: float | None = 0.8
    gopher_min_stop_words: int | None = 2
    # C4
    c4_min_sentences: int | None = 5
    c4_min_words_per_line: int = 3
    c4_max_word_length: int = 1000
    c4_lorem_ipsum: bool = True
    c4_curly_bracket: bool = True
    # FineWeb
    fineweb_min_line_punctuation_share: float | None = 0.12
    fineweb_max_short_line_share: float | None = 0.67
    fineweb_short_line_chars: int = 30
    fineweb_max_dup_line_char_share: float | None = 0.01
    fineweb_max_newlines_per_word: float | None = 0.3

    def __post_init__(self) -> None:
        unknown = sorted(set(self.rule_sets) - set(RULE_SETS))
        if unknown:
            raise ValueError(f"quality rule sets {unknown} are unknown; choose from {list(RULE_SETS)}")

    @classmethod
    def from_dict(cls, values: dict) -> QualityRules:
        """Rules back from their JSON form (n-gram keys come back as strings)."""
        values = dict(values)
        for name in ("gopher_max_top_ngram_char_share", "gopher_max_dup_ngram_char_share"):
            if name in values:
                values[name] = {int(n): float(share) for n, share in values[name].items()}
        if "rule_sets" in values:
            values["rule_sets"] = tuple(values["rule_sets"])
        return cls(**values)


def quality_rejection(text: str, rules: QualityRules) -> Verdict:
    """(reason, detail) of the first quality rule the text breaks, in `rules.rule_sets` order; else None."""
    for name in rules.rule_sets:
        verdict = _RULE_SETS[name](text, rules)
        if verdict is not None:
            return verdict
    return None


def words(text: str) -> list[str]:
    """Word and punctuation tokens (punctuation runs split off, as NLTK's `word_tokenize` does)."""
    return _WORD.findall(text)


def gopher_repetition(text: str, rules: QualityRules) -> Verdict:
    """Gopher's repetition rules: duplicated paragraphs, lines and n-grams (Rae et al. 2021, table A1)."""
    paragraphs = _PARAGRAPHS.split(text.strip())
    count, chars = _duplicates(paragraphs)
    checks = [
        ("gopher_dup_paragraphs", count / len(paragraphs), rules.gopher_max_dup_paragraph_share, "paragraphs"),
        ("gopher_dup_paragraph_chars", chars / len(text), rules.gopher_max_dup_paragraph_char_share, "characters"),
    ]
    lines = _LINES.split(text)
    count, chars = _duplicates(lines)
    checks += [
        ("gopher_dup_lines", count / len(lines), rules.gopher_max_dup_line_share, "lines"),
        ("gopher_dup_line_chars", chars / len(text), rules.gopher_max_dup_line_char_share, "characters"),
    ]
    for reason, share, limit, unit in checks:
        if limit is not None and share > limit:
            return reason, f"{share:.2f} of the {unit} are duplicated (maximum {limit})"
    tokens = words(text)
    for n, limit in sorted(rules.gopher_max_top_ngram_char_share.items()):
        grams = Counter(_ngrams(tokens, n))
        if grams:
            top, times = grams.most_common(1)[0]
            gram = " ".join(top)
            share = len(gram) * times / len(text)
            if share > limit:
                return (
                    "gopher_top_ngram",
                    f"the {n}-gram {gram[:40]!r} covers {share:.2f} of the text (maximum {limit})",
                )
    for n, limit in sorted(rules.gopher_max_dup_ngram_char_share.items()):
        repeated = _repeated_ngram_chars(tokens, n)
        if repeated == 0:
            break  # no repeated n-gram means no repeated longer one either
        share = repeated / len(text)
        if share > limit:
            return "gopher_dup_ngram", f"repeated {n}-grams cover {share:.2f} of the text (maximum {limit})"
    return None


def gopher_quality(text: str, rules: QualityRules) -> Verdict:
    """Gopher's quality rules: word count and length, symbols, bullets, ellipses, alphabetic words, stop words."""
    tokens = words(text)
    real_words = [w for w in tokens if w not in _PUNCTUATION]
    n_words = len(real_words)
    low, high = rules.gopher_min_words, rules.gopher_max_words
    if (low is not None and n_words < low) or (high is not None and n_words > high):
        return "gopher_word_count", f"{n_words} words (bounds {low}..{high})"
    mean_length = sum(map(len, real_words)) / n_words if n_words else 0.0
    low, high = rules.gopher_min_mean_word_length, rules.gopher_max_mean_word_length
    if (low is not None and mean_length < low) or (high is not None and mean_length > high):
        return "gopher_mean_word_length", f"mean word length {mean_length:.2f} (bounds {low}..{high})"
    limit = rules.gopher_max_symbol_word_ratio
    for symbol, count in (("#", text.count("#")), ("ellipsis", text.count("...") + text.count("…"))):
        ratio = count / max(n_words, 1)
        if limit is not None and ratio > limit:
            return "gopher_symbol_ratio", f"{ratio:.2f} {symbol} per word (maximum {limit})"
    lines = text.splitlines() or [""]
    bullets = sum(line.lstrip().startswith(("•", "-")) for line in lines) / len(lines)
    if rules.gopher_max_bullet_line_share is not None and bullets > rules.gopher_max_bullet_line_share:
        return "gopher_bullet_lines", f"{bullets:.2f} of the lines start with a bullet (maximum "
        f"{rules.gopher_max_bullet_line_share})"
    ellipses = sum(line.rstrip().endswith(("...", "…")) for line in lines) / len(lines)
    if rules.gopher_max_ellipsis_line_share is not None and ellipses > rules.gopher_max_ellipsis_line_share:
        return "gopher_ellipsis_lines", f"{ellipses:.2f} of the lines end with an ellipsis (maximum "
        f"{rules.gopher_max_ellipsis_line_share})"
    alpha = sum(any(c.isalpha() for c in w) for w in tokens) / max(n_words, 1)
    if rules.gopher_min_alpha_word_share is not None and alpha < rules.gopher_min_alpha_word_share:
        return (
            "gopher_alpha_words",
            f"{alpha:.2f} words with a letter per word (minimum {rules.gopher_min_alpha_word_share})",
        )
    stop_words = sum(w.lower() in GOPHER_STOP_WORDS for w in tokens)
    if rules.gopher_min_stop_words is not None and stop_words < rules.gopher_min_stop_words:
        return "gopher_stop_words", f"{stop_words} stop words (minimum {rules.gopher_min_stop_words})"
    return None


def c4_quality(text: str, rules: QualityRules) -> Verdict:
    """C4's page rules (Raffel et al. 2020): lorem ipsum, curly brackets, too few sentences in kept lines."""
    sentences = 0
    for raw_line in text.splitlines():
        line = _CITATION.sub("", raw_line.strip())
        line_words = line.split()
        if any(len(word) > rules.c4_max_word_length for word in line_words):
            continue
        if not line.endswith(C4_END_PUNCTUATION) or line.endswith("..."):
            continue
        if len(line_words) < rules.c4_min_words_per_line:
            continue
        lowered = line.lower()
        if rules.c4_lorem_ipsum and "lorem ipsum" in lowered:
            return "c4_lorem_ipsum", "the page contains 'lorem ipsum'"
        if "javascript" in lowered:
            continue
        if rules.c4_curly_bracket and "{" in line:
            return "c4_curly_bracket", "a kept line contains a curly bracket"
        if any(phrase in lowered for phrase in C4_POLICY_PHRASES):
            continue
        sentences += max(len(_SENTENCE_END.findall(line)), 1)
    if rules.c4_min_sentences is not None and sentences < rules.c4_min_sentences:
        return "c4_too_few_sentences", f"{sentences} sentences in the lines C4 keeps (minimum {rules.c4_min_sentences})"
    return None


def fineweb_quality(text: str, rules: QualityRules) -> Verdict:
    """FineWeb's rules (Penedo et al. 2024): punctuated lines, short lines, duplicated lines, list-like pages."""
    lines = [line for line in text.split("\n") if line.strip()] or [""]
    punctuated = sum(line.endswith(FINEWEB_STOP_CHARS) for line in lines) / len(lines)
    limit = rules.fineweb_min_line_punctuation_share
    if limit is not None and punctuated <= limit:
        return "fineweb_line_punctuation", f"{punctuated:.2f} of the lines end in punctuation (must be > {limit})"
    short = sum(len(line) <= rules.fineweb_short_line_chars for line in lines) / len(lines)
    limit = rules.fineweb_max_short_line_share
    if limit is not None and short >= limit:
        return "fineweb_short_lines", (
            f"{short:.2f} of the lines have at most {rules.fineweb_short_line_chars} characters (must be < {limit})"
        )
    duplicated = _duplicates(lines)[1] / max(len(text.replace("\n", "")), 1)
    limit = rules.fineweb_max_dup_line_char_share
    if limit is not None and duplicated >= limit:
        return (
            "fineweb_dup_line_chars",
            f"{duplicated:.3f} of the characters are in duplicated lines (must be < {limit})",
        )
    per_word = text.count("\n") / max(len(words(text)), 1)
    limit = rules.fineweb_max_newlines_per_word
    if limit is not None and per_word > limit:
        return "fineweb_list_ratio", f"{per_word:.2f} line breaks per word (maximum {limit})"
    return None


def _duplicates(items: list[str]) -> tuple[int, int]:
    """How many items repeat an earlier one, and their characters."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """Every run of n consecutive tokens, in order (none when there are fewer than n tokens)."""
    return list(zip(*(tokens[i:] for i in range(n)), strict=False))


def _repeated_ngram_chars(tokens: list[str], n: int) -> int:
    """Characters of n-grams that repeat an earlier one, non-overlapping (Gopher's duplicate n-gram share).

    The walk of DataTrove's `find_all_duplicate` (a repeat is counted and skipped over, anything else is
    remembered), visiting only the positions whose n-gram occurs more than once: the others can never
    be a repeat, and stepping over them one by one changes nothing.
    """
    grams = _ngrams(tokens, n)
    counts = Counter(grams)
    if len(counts) == len(grams):
        return 0
    ends = list(accumulate(map(len, tokens), initial=0))  # characters of tokens[a:b] = ends[b] - ends[a]
    seen: set[tuple[str, ...]] = set()
    chars = walk = 0
    for index in [i for i, gram in enumerate(grams) if counts[gram] > 1]:
        if index < walk:
            continue  # inside a repeat the walk jumped over
        if grams[index] in seen:
            chars += ends[index + n] - ends[index]
            walk = index + n
        else:
            seen.add(grams[index])
            walk = index + 1
    return chars


_RULE_SETS: dict[str, Callable[[str, QualityRules], Verdict]] = {
    GOPHER_REPETITION: gopher_repetition,
    GOPHER_QUALITY: gopher_quality,
    C4: c4_quality,
    FINEWEB: fineweb_quality,
}
