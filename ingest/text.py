"""English news text: sentence spans (offset-exact, aware of the abbreviations news uses), and the one word
tokenizer with its named stopword sets, shared by lexical search, the citation check and the extractive answerer.
"""

from __future__ import annotations

import re
import unicodedata

# -- words ---------------------------------------------------------------------------------------------------

# A word: letters and digits, with inner hyphens, apostrophes and dots kept (K2-18b, O'Brien, U.S., 3.5). Its
# pieces are what SQLite's FTS5 unicode61 tokenizer indexes (runs of letters and digits), so a word matched as a
# phrase of its pieces finds exactly what the lexical index holds.
_WORD = re.compile(r"[^\W_]+(?:[-'.][^\W_]+)*")
_PIECE = re.compile(r"[^\W_]+")
_POSSESSIVE = re.compile(r"'s$")

# English function words and question words (the common NLTK list, less its contraction fragments): they match
# almost every chunk, so lexical search leaves them out of queries.
# fmt: off
FUNCTION_WORDS = frozenset((
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
# Words news uses to attribute and hedge: on every page, so they say nothing about what a sentence states.
REPORTING_WORDS = frozenset(("according", "also", "may", "might", "reportedly", "said", "say", "says", "tell", "told"))
# Words a question uses to ask, or to chat, rather than to say what it is about ("how many", "what year", "quick
# check —"): the sentence that answers seldom repeats them.
ASKING_WORDS = frozenset((
    "many", "much", "old", "long", "year", "date", "day", "name", "names", "called", "kind", "type",
    "roughly", "approximately", "exactly", "quick", "check", "remind", "tonight", "story", "piece", "need", "idea",
    "know", "got", "figure", "please",
))
# fmt: on
# What word overlap between a question or claim and a sentence is measured on: neither kind counts.
CONTENT_STOPWORDS = FUNCTION_WORDS | REPORTING_WORDS


def words(text: str) -> list[str]:
    """The words of `text` in order: case-folded, curly apostrophes straightened, possessive 's dropped."""
    return [_POSSESSIVE.sub("", w) for w in _WORD.findall(text.casefold().replace("\u2019", "'"))]


def word_spans(text: str) -> list[tuple[int, int, str]]:
    """The words of `text` as `words` gives them, each with its (start, end) in `text`."""
    folded = text.replace("\u2019", "'")
    return [(m.start(), m.end(), _POSSESSIVE.sub("", m.group().casefold())) for m in _WORD.finditer(folded)]


def word_pieces(text: str) -> list[str]:
    """The tokens SQLite FTS5 (`unicode61 remove_diacritics 2`) makes of `text`, before stemming."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return _PIECE.findall("".join(c for c in decomposed if not unicodedata.combining(c)))


def content_words(text: str, stopwords: frozenset[str] = CONTENT_STOPWORDS) -> set[str]:
    """The distinct words of `text` that say something: no stopwords, no single characters."""
    return {w for w in words(text) if len(w) > 1 and w not in stopwords}


# -- sentences -----------------------------------------------------------------------------------------------

# Tokens that end in a period without ending a sentence (titles, initials, months, US states as AP writes them).
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "mt",
        "ft",
        "gen",
        "lt",
        "col",
        "maj",
        "capt",
        "sgt",
        "cpl",
        "adm",
        "cmdr",
        "gov",
        "sen",
        "rep",
        "reps",
        "sens",
        "pres",
        "supt",
        "det",
        "insp",
        "rev",
        "fr",
        "msgr",
        "hon",
        "amb",
        "atty",
        "corp",
        "inc",
        "ltd",
        "co",
        "bros",
        "no",
        "nos",
        "vol",
        "vols",
        "fig",
        "figs",
        "approx",
        "est",
        "dept",
        "univ",
        "assn",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "mon",
        "tue",
        "tues",
        "wed",
        "thu",
        "thur",
        "thurs",
        "fri",
        "sat",
        "sun",
        "ala",
        "ariz",
        "ark",
        "calif",
        "colo",
        "conn",
        "del",
        "fla",
        "ga",
        "ill",
        "ind",
        "kan",
        "kans",
        "ky",
        "la",
        "md",
        "mass",
        "mich",
        "minn",
        "miss",
        "mo",
        "mont",
        "neb",
        "nev",
        "okla",
        "ore",
        "pa",
        "tenn",
        "tex",
        "va",
        "vt",
        "wash",
        "wis",
        "wyo",
        "e.g",
        "i.e",
        "etc",
        "vs",
        "cf",
        "al",
        "u.s",
        "u.k",
        "u.n",
        "a.m",
        "p.m",
        "d.c",
    ]
)

# A candidate boundary: terminal punctuation, optional closing quotes/brackets, whitespace, then something
# that can start a sentence. It starts only where a run of punctuation starts, and its quantifiers never give
# back (possessive), so a run of 100,000 dots costs one pass, not one pass per dot.
_BOUNDARY = re.compile(r"""(?<![.!?…])[.!?…]++["'”’)\]]*+(\s++)(?=["'“‘(\[]?[A-Z0-9])""")
_LAST_TOKEN = re.compile(r"(\S+?)[.!?…]+[\"'”’)\]]*$")


def _is_abbreviation(text: str, end: int) -> bool:
    match = _LAST_TOKEN.search(text, max(0, end - 40), end)
    if not match:
        return False
    token = match.group(1).lower().lstrip("(\"'“‘[")
    # Initials such as "J." or "D-Minn." style fragments never end a sentence on their own.
    if len(token) == 1 and token.isalpha():
        return True
    tail = token.rsplit("-", 1)[-1]
    return token in _ABBREVIATIONS or tail in _ABBREVIATIONS


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans (start, end) of the sentences in `text[start:end]`, trimmed of surrounding whitespace.

    Paragraph breaks (blank lines or single newlines) always end a sentence.
    """
    stop = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for para in re.finditer(r"[^\n]+", text[start:stop]):
        p_start, p_end = start + para.start(), start + para.end()
        cursor = p_start
        for boundary in _BOUNDARY.finditer(text, p_start, p_end):
            if _is_abbreviation(text, boundary.start(1)):
                continue
            spans.append((cursor, boundary.start(1)))
            cursor = boundary.end(1)
        spans.append((cursor, p_end))
    return [_trim(text, a, b) for a, b in spans if text[a:b].strip()]


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b
