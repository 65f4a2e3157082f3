"""Query-side analysis for the lexical (FTS5 BM25) index: free text to the terms worth matching.

The index keeps every word; the query drops function words (they match almost every chunk and only add noise to
BM25) and possessive endings. Numbers and hyphenated or dotted names stay whole: the catalog quotes each term,
so "K2-18b" is matched as the phrase k2 18b and nothing the user types is ever read as FTS5 syntax.
"""

from __future__ import annotations

import re

# English function words and question words (the common NLTK list, less its contraction fragments).
# fmt: off
STOPWORDS = frozenset((
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do",
    "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have", "having",
    "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it",
    "its", "itself", "just", "me", "more", "most", "my", "myself", "no", "nor", "not", "now", "of", "off", "on",
    "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same", "she", "should", "so",
    "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these",
    "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we", "were", "what",
    "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours",
    "yourself", "yourselves",
))
# fmt: on

# A word, with inner hyphens, apostrophes and dots kept (K2-18b, O'Brien, U.S., 3.5).
_WORD = re.compile(r"\w+(?:[-'’.]\w+)*")
_POSSESSIVE = re.compile(r"['’]s$")


def query_terms(text: str) -> list[str]:
    """The distinct lower-cased terms of a question, in order, without stopwords; [] when nothing is left."""
    terms: list[str] = []
    for word in _WORD.findall(text.casefold()):
        term = _POSSESSIVE.sub("", word)
        if term and term not in STOPWORDS and term not in terms:
            terms.append(term)
    return terms
