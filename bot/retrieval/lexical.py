"""Query-side analysis for the lexical (BM25) index: free text to the terms worth matching.

The index keeps every word; the query drops function words (they match almost every chunk and only add noise to
BM25) and possessive endings. Numbers and hyphenated or dotted names stay whole: the catalog quotes each term,
so "K2-18b" is matched as the phrase k2 18b and nothing the user types is ever read as query syntax.
"""

from __future__ import annotations

from ingest.text import FUNCTION_WORDS, words


def query_terms(text: str) -> list[str]:
    """The distinct lower-cased terms of a question, in order, without stopwords; [] when nothing is left."""
    return list(dict.fromkeys(w for w in words(text) if w not in FUNCTION_WORDS))
