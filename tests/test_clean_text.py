"""Cleaning and sentence splitting on real text."""

from __future__ import annotations

from conftest import SEED_ARTICLE

from ingest.clean import clean_inline, clean_text
from ingest.text import split_sentences


def test_seed_hover_cards_are_removed_and_the_sentence_survives() -> None:
    text = clean_text(SEED_ARTICLE.read_text())
    assert "OmarIlhan" not in text and "TrumpDonald" not in text and " MORE" not in text
    assert (
        "Twitter CEO Jack Dorsey reportedly called Rep. Ilhan Omar (D-Minn.) to defend the platform's decision "
        "to keep up a tweet from President Trump that the congresswoman said resulted in a surge in death threats."
    ) in text


def test_link_card_rule_leaves_ordinary_capitalised_text_alone() -> None:
    text = "Rep. McDonald met Ms. MacArthur. The MORE Act passed. iPhone sales rose."
    assert clean_text(text) == text


def test_whitespace_unicode_and_furniture_lines_are_normalised() -> None:
    raw = "Title\r\n\r\nFirst\u00a0 line  of\ttext\ncontinues here.\n\n\nAdvertisement\n\nSecond paragraph.\u200b"
    assert clean_text(raw) == "Title\n\nFirst line of text continues here.\n\nSecond paragraph."
    assert clean_inline("  The\n Hill ") == "The Hill"


def test_sentences_respect_abbreviations_initials_and_quotes() -> None:
    text = 'Sen. Ted Cruz (R-Texas) spoke at 6 p.m. Friday. He met J. Smith of the U.S. Army. "Why?" she asked.'
    sentences = [text[a:b] for a, b in split_sentences(text)]
    assert sentences == [
        "Sen. Ted Cruz (R-Texas) spoke at 6 p.m. Friday.",
        "He met J. Smith of the U.S. Army.",
        '"Why?" she asked.',
    ]


def test_sentence_spans_are_exact_offsets_and_paragraphs_split() -> None:
    text = "One two three.  Four five six!\n\nSeven eight"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == ["One two three.", "Four five six!", "Seven eight"]
    assert split_sentences(text, 16, 30) == [(16, 30)]


def test_runs_of_punctuation_are_split_in_one_pass() -> None:
    """A run of 200,000 dots that ends no sentence: the boundary pattern used to retry the run from every dot
    (hours at this size)."""
    dots = "." * 200_000
    text = f"It began. Dots {dots} and more. Then it ended!!! \u201cQuiet?\u201d"
    spans = split_sentences(text)
    assert [text[a:b] for a, b in spans] == [
        "It began.",
        f"Dots {dots} and more.",
        "Then it ended!!!",
        "\u201cQuiet?\u201d",
    ]


def test_hover_cards_are_found_only_before_a_more() -> None:
    """Names that look like the start of a card, by the hundred thousand, with no card end near them, are text
    (`tests/bench_hostile.py` times this against the size)."""
    bait = "AaAa Aa " * 100_000
    assert clean_text(bait) == bait.strip()
    card = "Rep. Ilhan OmarIlhan OmarNew York Times defends itself MORE (D-Minn.) spoke."
    assert clean_text(bait + "\n\n" + card).endswith("Rep. Ilhan Omar (D-Minn.) spoke.")


def test_control_characters_are_removed_tabs_and_newlines_kept() -> None:
    raw = "Al\x00pha\x1b[31m red\x7f\x85 \ud800text\tand\x0bmore\r\n\r\nNext\x0c paragraph\ufffe."
    assert clean_text(raw) == "Alpha[31m red text and more\n\nNext paragraph."
    assert clean_inline("The\x00 Hill\x1f\r\nGazette") == "The Hill Gazette"
    assert clean_text("\x00\x01\x02") == ""
