"""The one word tokenizer: what lexical search, the citation check and the extractive answerer split text into."""

from __future__ import annotations

import sqlite3

from ingest.text import CONTENT_STOPWORDS, FUNCTION_WORDS, content_words, word_pieces, word_spans, words

SAMPLE = (
    "Rep. Ilhan Omar’s office said K2-18b, the exoplanet, is 3.5 times Earth's mass; U.S. officials in Zürich "
    "and São Paulo called it a COVID-19 era find — 1,200 scientists agreed (snake_case isn't a word here)."
)


def fts5_tokens(text: str) -> list[str]:
    """What SQLite's FTS5 `unicode61 remove_diacritics 2` tokenizer (the lexical index's, before stemming) makes."""
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(text, tokenize = 'unicode61 remove_diacritics 2')")
    db.execute("CREATE VIRTUAL TABLE v USING fts5vocab(t, instance)")
    db.execute("INSERT INTO t (text) VALUES (?)", (text,))
    return [row[0] for row in db.execute("SELECT term FROM v ORDER BY offset")]


def test_word_pieces_are_the_lexical_index_tokens() -> None:
    assert word_pieces(SAMPLE) == fts5_tokens(SAMPLE)


def test_each_word_is_matched_as_the_phrase_of_its_indexed_pieces() -> None:
    indexed = fts5_tokens(SAMPLE)
    for word in words(SAMPLE):
        pieces = word_pieces(word)
        assert pieces, word
        starts = [i for i in range(len(indexed)) if indexed[i : i + len(pieces)] == pieces]
        assert starts, f"{word!r} is not a phrase of the indexed tokens"


def test_words_keep_names_and_figures_whole_and_drop_possessives() -> None:
    found = words(SAMPLE)
    assert {"k2-18b", "3.5", "u.s", "covid-19", "1,200"} - set(found) == {"1,200"}  # a comma splits a number
    assert "omar" in found and "earth" in found and "omar's" not in found


def test_named_stopword_sets() -> None:
    assert {"the", "what", "who"} <= FUNCTION_WORDS <= CONTENT_STOPWORDS
    assert content_words("What did the minister say, according to reports?") == {"minister", "reports"}


def test_word_spans_are_the_words_with_their_offsets() -> None:
    spans = word_spans(SAMPLE)
    assert [w for _, _, w in spans] == words(SAMPLE)
    assert all(SAMPLE[a:b].casefold().replace("’", "'").startswith(w) for a, b, w in spans)
    assert ("Omar’s", "omar") in [(SAMPLE[a:b], w) for a, b, w in spans]
