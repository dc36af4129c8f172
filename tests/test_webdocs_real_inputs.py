"""Issue 20, web documents: unreadable shards, language over the whole text, markup vs code, quality rules."""

import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from ops.webdocs.cleaning import CleaningRules, clean_documents, html_markup_share, identify_language
from ops.webdocs.corpus import quality_filter_effect, shard_summary, unreadable_shards
from ops.webdocs.quality_rules import (
    QUALITY_REASONS,
    QualityRules,
    c4_quality,
    fineweb_quality,
    gopher_quality,
    gopher_repetition,
    quality_rejection,
)
from ops.webdocs.reading import read_shard, read_shard_or_record
from tests.conftest import SAMPLES, sample_records, write_jsonl

ENGLISH = [record["text"] for record in sample_records("c4_en_sample_1000.jsonl", 12)]
NO_QUALITY = CleaningRules(quality=None)

CPP = """Templates in C++ let one function work for many types. Here is a minimal example.
#include <iostream>
#include <vector>
template <typename T> T biggest(const std::vector<T>& values) {
  T best = values[0];
  for (const T& v : values) if (best < v && v > best) best = v;
  return best;
}
int main() { std::vector<int> v{3, 1, 4}; std::cout << biggest<int>(v) << std::endl; }
The compiler generates biggest<int> from the template when main calls it with a vector of ints."""
JAVA = """Java generics: a map from names to lists of scores, declared with nested type parameters.
Map<String, List<Integer>> scores = new HashMap<String, List<Integer>>();
List<Map.Entry<String, List<Integer>>> entries = new ArrayList<Map.Entry<String, List<Integer>>>();
Optional<Map<String, Set<Long>>> maybe = Optional.<Map<String, Set<Long>>>empty();
The diamond operator lets you write new HashMap<>() instead of repeating the type arguments."""
HTML = """<!DOCTYPE html><html><head><title>Shop</title><meta charset="utf-8"></head><body>
<div class="nav"><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li></ul></div>
<div id="main"><p class="lead">Welcome to our shop.</p><img src="/logo.png" alt="logo"></div>
<!-- footer --><footer><span>(c) 2019</span></footer></body></html>"""


def _raw(texts: list[str], tmp_path: Path) -> pl.DataFrame:
    path = write_jsonl(tmp_path / "s.jsonl", [{"text": text} for text in texts])
    return read_shard(path, "s.jsonl")


# --- unreadable shards --------------------------------------------------------------------------


def test_a_shard_of_invalid_utf8_lines_is_quarantined_whole(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(
        b"".join(json.dumps({"text": f"caf\u00e9 {i}"}, ensure_ascii=False).encode("latin-1") + b"\n" for i in range(5))
    )
    raw = read_shard(path, "latin1.jsonl")
    result = clean_documents(raw, CleaningRules())
    assert raw.height == 5 and result.kept.height == 0
    assert result.quarantined["reason"].to_list() == ["unreadable_shard"] * 5
    assert result.quarantined["detail"].str.contains("invalid UTF-8").all()


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), (b"\n\n", "the file is empty"), (b"PAR1 not really", "not a readable Parquet")],
)
def test_a_file_that_cannot_be_read_becomes_one_recorded_row(tmp_path, content, message):
    name = "bad.parquet" if content and content.startswith(b"PAR1") else "bad.jsonl"
    if content is not None:
        (tmp_path / name).write_bytes(content)
    raw = read_shard_or_record(tmp_path / name, name)
    assert raw.height == 1 and raw["line"].item() == 0 and message in raw["read_error"].item()
    result = clean_documents(raw, CleaningRules())
    assert result.quarantined["reason"].to_list() == ["unreadable_shard"]


def test_corpus_summary_names_unreadable_shards(tmp_path):
    good = clean_documents(_raw(ENGLISH[:3], tmp_path), NO_QUALITY)
    bad = clean_documents(read_shard_or_record(tmp_path / "gone.jsonl", "gone.jsonl"), NO_QUALITY)
    summary = shard_summary(good.kept.lazy(), pl.concat([good.quarantined, bad.quarantined]).lazy())
    assert unreadable_shards(summary) == ["gone.jsonl"]
    assert summary.filter(pl.col("shard") == "gone.jsonl")["kept"].item() == 0


# --- language over the whole document -----------------------------------------------------------


def test_language_is_identified_over_the_whole_document_with_its_confidence(tmp_path):
    head = "Seite 1 von 12 | Startseite | Impressum | Datenschutz | Kontakt | Anmelden | Warenkorb\n" * 40
    page = head + "\n\n".join(ENGLISH) + "\n"
    assert len(head) > 3_000 and len(page) > 17_000
    language, score = identify_language(page)
    assert language == "en" and 0.5 < score <= 1.0
    kept = clean_documents(_raw([page], tmp_path), NO_QUALITY).kept
    assert kept["language"].to_list() == ["en"] and kept["language_score"].item() == pytest.approx(score)


def test_a_german_document_with_an_english_menu_is_german():
    menu = "Home | About | Contact | Login | Cart | Privacy policy | Terms of use\n" * 10
    german = "Der schnelle braune Fuchs springt über den faulen Hund, und die Katze schläft im Garten. " * 150
    assert identify_language(menu + german)[0] == "de"


# --- markup is HTML, not code -------------------------------------------------------------------


@pytest.mark.parametrize("code", [CPP, JAVA], ids=["cpp", "java_generics"])
def test_code_is_not_markup(tmp_path, code):
    assert html_markup_share(code) == 0.0
    result = clean_documents(_raw([code * 2], tmp_path), replace(NO_QUALITY, languages=()))
    assert result.quarantined.height == 0 and result.kept.height == 1


def test_html_is_markup(tmp_path):
    assert html_markup_share(HTML) > 0.3
    result = clean_documents(_raw([HTML * 2], tmp_path), NO_QUALITY)
    assert result.quarantined["reason"].to_list() == ["markup"]


def test_code_inside_an_html_page_counts_only_the_tags():
    page = "<p>Use <code>List&lt;String&gt;</code> like this:</p>\n" + JAVA
    tags = len("<p>") + len("<code>") + len("</code>") + len("</p>")
    assert html_markup_share(page) == pytest.approx(tags / len(page))


# --- quality rules ------------------------------------------------------------------------------

PROSE = (
    "The river rose slowly through the night, and by morning the old bridge was under water. "
    "Farmers moved their animals to higher ground while the town council met to plan the repairs. "
    "Nobody could remember a flood like it since the storm of the year their grandparents were married.\n"
)
MORE_PROSE = (
    "When the water finally went down, the mayor walked along the bank with two engineers from the county. "
    "They agreed that the stone piers had held, but the wooden deck would have to be replaced before winter.\n"
    "Volunteers from three villages cleared the mud from the school, and the children returned within a week. "
    "A local bakery gave bread to every family whose kitchen had been flooded during the worst of the storm.\n"
)


def test_clean_prose_passes_every_rule():
    assert quality_rejection(PROSE + MORE_PROSE, QualityRules()) is None


@pytest.mark.parametrize(
    ("text", "rule", "reason"),
    [
        ("Home\nAbout\nContact\nShop\nBlog\nLogin\n" * 3, gopher_quality, "gopher_word_count"),
        ("a b c d e f g h i j k " * 10, gopher_quality, "gopher_mean_word_length"),
        ("#tag " * 40 + PROSE, gopher_quality, "gopher_symbol_ratio"),
        ("• another wonderful product with the longest description\n" * 30, gopher_quality, "gopher_bullet_lines"),
        ("and then the story continues with more words...\n" * 30 + PROSE, gopher_quality, "gopher_ellipsis_lines"),
        ("12345 67890 " * 100 + PROSE, gopher_quality, "gopher_alpha_words"),
        (
            "Rivers rise quickly during heavy storms; farmers move animals uphill. " * 10,
            gopher_quality,
            "gopher_stop_words",
        ),
        ((PROSE + "\n") * 3, gopher_repetition, "gopher_dup_paragraphs"),
        ("buy now " * 60, gopher_repetition, "gopher_top_ngram"),
        (PROSE * 3 + "Lorem ipsum dolor sit amet, consectetur adipiscing elit.\n", c4_quality, "c4_lorem_ipsum"),
        (PROSE * 3 + "Call it with a config object { debug: true } for the details.\n", c4_quality, "c4_curly_bracket"),
        ("This line has a full stop.\n" + "a menu entry\n" * 10, c4_quality, "c4_too_few_sentences"),
        (
            "Menu entry one\nMenu entry two\nAnother link here\n" * 5 + PROSE,
            fineweb_quality,
            "fineweb_line_punctuation",
        ),
    ],
)
def test_each_rule_has_its_reason(text, rule, reason):
    verdict = rule(text, QualityRules())
    assert verdict is not None and verdict[0] == reason and verdict[0] in QUALITY_REASONS


def test_fineweb_short_lines_duplicate_lines_and_list_pages():
    rules = QualityRules()
    short = "Short line one.\nShort line two.\n" * 5 + PROSE
    assert fineweb_quality(short, rules)[0] == "fineweb_short_lines"
    duplicated = PROSE + "Share this article on your favourite social network today, please.\n" * 2 + PROSE[:100] + "."
    assert fineweb_quality(duplicated, rules)[0] == "fineweb_dup_line_chars"
    listing = "\n".join(f"Internationalization-and-localization-{i}." for i in range(40))
    assert fineweb_quality(listing, rules)[0] == "fineweb_list_ratio"  # 39 line breaks, 80 tokens


def test_gopher_figures_match_a_hand_count():
    # Words: "•", "one", "point", "here" and 5 x 11 = 59 ('#' is punctuation, not a word): 3 '#' per
    # 59 words = 0.0508, under Gopher's 0.1 and over a 0.05 threshold.
    text = "• one point here\n" + ("the cat sat on the mat and looked at the dog " * 5) + "# # #\n"
    assert gopher_quality(text, replace(QualityRules(), gopher_min_words=10)) is None
    strict = replace(QualityRules(), gopher_min_words=10, gopher_max_symbol_word_ratio=0.05)
    assert gopher_quality(text, strict) == ("gopher_symbol_ratio", "0.05 # per word (maximum 0.05)")
    assert gopher_quality(text, replace(strict, gopher_min_words=60))[0] == "gopher_word_count"


def test_thresholds_are_configuration(tmp_path):
    menu = "Home\nAbout\nContact\nShop\nBlog\nLogin\n" * 20 + PROSE + MORE_PROSE
    assert quality_rejection(menu, QualityRules())[0] == "gopher_dup_lines"  # the menu lines repeat 20 times
    assert quality_rejection(menu, QualityRules(rule_sets=())) is None
    only_gopher = QualityRules(rule_sets=("gopher_quality",))
    assert quality_rejection(menu, only_gopher) is None  # enough words, stop words, letters
    assert QualityRules.from_dict(json.loads(CleaningRules().to_json())["quality"]) == QualityRules()
    assert CleaningRules.from_json(CleaningRules().to_json()) == CleaningRules()
    assert CleaningRules.from_json(NO_QUALITY.to_json()) == NO_QUALITY
    with pytest.raises(ValueError, match="unknown"):
        QualityRules(rule_sets=("c5",))


@pytest.mark.parametrize("name", ["c4_en_sample_1000.jsonl", "commoncrawl_raw_CC-MAIN-2019-30_350.jsonl"])
def test_quality_rules_on_the_bundled_shards(name):
    raw = read_shard(SAMPLES / "web_docs" / name, name)
    with_rules = clean_documents(raw, CleaningRules())
    without = clean_documents(raw, NO_QUALITY)
    effect = quality_filter_effect(shard_summary(with_rules.kept.lazy(), with_rules.quarantined.lazy())).row(
        0, named=True
    )
    assert with_rules.kept.height + with_rules.quarantined.height == raw.height
    assert effect["quality_filtered"] == without.kept.height - with_rules.kept.height + _duplicates_shift(
        with_rules, without
    )
    # The raw crawl still holds navigation and boilerplate; C4 was already filtered by C4's own rules.
    share = effect["share_filtered"]
    assert (0.2 < share < 0.8) if name.startswith("commoncrawl") else (0.0 < share < 0.35)


def _duplicates_shift(with_rules, without) -> int:
    """Duplicates of a quality-filtered document are no longer duplicates once the first copy is gone."""
    return int(
        (without.quarantined["reason"] == "duplicate").sum() - (with_rules.quarantined["reason"] == "duplicate").sum()
    )


def _datatrove_find_all_duplicate(tokens: list[str], n: int) -> int:
    """DataTrove's `find_all_duplicate` walk, written plainly: the reference for the faster one."""
    seen, chars, index = set(), 0, 0
    while index < len(tokens) - n + 1:
        gram = "".join(tokens[index : index + n])
        if gram in seen:
            chars += len(gram)
            index += n
        else:
            seen.add(gram)
            index += 1
    return chars


def test_repeated_ngram_walk_matches_datatrove():
    from ops.webdocs.quality_rules import _repeated_ngram_chars, words

    texts = [*ENGLISH, "a b c " * 50, "x y " * 30 + "z", PROSE * 4, "one two three four five " * 3 + PROSE]
    for text in texts:
        tokens = words(text)
        for n in range(5, 11):
            assert _repeated_ngram_chars(tokens, n) == _datatrove_find_all_duplicate(tokens, n), (text[:40], n)


def test_run_config_defaults_are_the_ops_defaults():
    """The `web_docs` run config mirrors `QualityRules` field by field: its defaults must not drift."""
    from assets.webdocs.intake import WebDocsQualityConfig

    assert WebDocsQualityConfig().rules() == QualityRules()
