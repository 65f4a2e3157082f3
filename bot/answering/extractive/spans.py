"""Candidate answer spans in a sentence: names, dates, numbers, money, quantities, ages, durations, causes.

Written by hand from patterns and the text itself (capitalised-name runs, number and date grammars, unit words):
no published English NER model installs from the package registries here in a form that can be shown to be the
authentic release (see the reader notes), and nothing may be downloaded at run time. Each span gets a `fit` in
(0, 1]: how surely it is a fact of the asked kind ("Prime Minister Hubert Minnis" is surely a person, a lone
capitalised word less so).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from bot.answering.extractive.names import names

_NUMBER_WORD = (
    r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen"
    r"|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million"
    r"|billion|trillion|dozen|dozens|hundreds|thousands|millions|billions|half|a dozen|a hundred|a thousand|a million"
)
_MAGNITUDE = r"hundred|thousand|million|billion|trillion|m|bn|k"
# A figure: digits (1,400 or 50.8 or 0–1) or number words (sixty-six, half a million), with what qualifies it.
_QUALIFIER = (
    r"about|around|approximately|nearly|almost|over|more than|fewer than|less than|at least|up to|some|roughly"
    r"|just over|just under|under|below|above|an estimated|estimated"
)
# Figures given as a bound or a rough size fit less than exact ones: "less than two hours" against "1:59:40".
_BOUND = re.compile(rf"(?:{_QUALIFIER})\s", re.IGNORECASE)
_MEASURED = frozenset(("number", "money", "quantity", "duration"))
BOUND_FIT = 0.7
_ATOM = rf"(?:\d[\d,]*(?:\.\d+)?|(?:{_NUMBER_WORD})(?:[- ](?:{_NUMBER_WORD}))*)"
_FIGURE = rf"(?:(?:{_QUALIFIER})\s+)?{_ATOM}(?:\s*(?:-|–|to)\s*{_ATOM})?(?:\s+(?:{_MAGNITUDE})\b)?"
_CURRENCY = r"(?:(?:US|U\.S\.|A|AU|C|CA|NZ|HK|S)\$|\$|£|€|¥|₹|Rs\.?\s?)"
_CURRENCY_WORDS = (
    r"dollars|pounds|euros|yuan|rupees|pesos|francs|zloty|złoty|yen|rand|naira|shillings|kroner|krona|kronor"
    r"|rubles|roubles|dinars|riyals|lira|ringgit|baht|won"
)
_UNITS = (
    r"feet|foot|ft|inches|inch|yards|metres|meters|metre|meter|m|km|kilometres|kilometers|kilometre|kilometer"
    r"|miles|mile|mph|km/h|kph|knots|kg|kilograms|kilogram|grams|g|pounds|lb|lbs|tonnes|tons|tonne|ton|gallons"
    r"|gallon|litres|liters|litre|liter|acres|hectares|degrees|°[CF]?|m/s|cm|mm|barrels|storeys|stories|floors"
    r"|square (?:miles|kilometres|kilometers|feet|metres|meters)|cubic (?:metres|meters|feet)"
)
_TIME_UNITS = r"seconds?|minutes?|mins|hours?|hrs|days?|weeks?|months?|years?|decades?|centuries|century"
_LENGTH = rf"{_FIGURE}\s*(?:-\s*)?(?:{_TIME_UNITS})"  # "40.2 seconds", "two-year"
_CURRENCY_OF = r"US|U\.S\.|American|Australian|Canadian|Hong Kong|NZ"
_AGE = rf"(?:\d{{1,3}}|{_ATOM})"
_DECADES = r"twenties|thirties|forties|fifties|sixties|seventies|eighties|nineties|teens"
_RELATIVE_DAYS = (
    r"yesterday|today|tomorrow|tonight|(?:last|next|this) (?:week|month|year|night|morning)"
    r"|(?:early|late|mid-?)\s*(?:\d{4}|\w+ \d{4})"
)
_CAUSES = (
    r"because(?: of)?|due to|caused by|the cause|cause of (?:death)?|the reason|as a result of|in protest|so that"
    r"|in order to|owing to|on the grounds|blamed|attributed|led to|resulted? (?:from|in)"
)
_MONTHS = (
    r"January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan\.?|Feb\.?|Mar\.?|Apr\.?|Jun\.?|Jul\.?|Aug\.?|Sept?\.?|Oct\.?|Nov\.?|Dec\.?"
)
_DAYS = r"Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"


@dataclass(frozen=True, slots=True)
class Span:
    """A candidate answer: `sentence[start:end]`, of `kind`, fitting it by `fit`."""

    start: int
    end: int
    text: str
    kind: str
    fit: float


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


# (pattern, fit) per kind; the first pattern that covers a stretch of text wins it.
_PATTERNS: dict[str, tuple[tuple[re.Pattern[str], float], ...]] = {
    "money": (
        (_compile(rf"{_CURRENCY}\s?\d[\d,]*(?:\.\d+)?(?:\s*(?:-|–|to)\s*\d[\d,]*)?(?:\s*(?:{_MAGNITUDE})\b)?"), 1.0),
        (_compile(rf"\b{_FIGURE}\s+(?:(?:{_CURRENCY_OF})\s+)?(?:{_CURRENCY_WORDS})\b"), 1.0),
        (_compile(rf"\b{_FIGURE}\s+(?:million|billion|trillion)\b"), 0.5),
        (_compile(r"\bhalf a (?:million|billion)\b"), 0.5),
    ),
    "quantity": (
        (_compile(rf"\b{_FIGURE}\s*(?:-\s*)?(?:{_UNITS})(?![\w/])"), 1.0),
        (_compile(r"\bmagnitude(?:[- ]\w+)?\s+\d+(?:\.\d+)?\b"), 0.6),
        (_compile(r"\bcategory\s+\d\b"), 0.5),
    ),
    "age": (
        (_compile(rf"\b(?:\d{{1,3}}|{_FIGURE})[- ]years?[- ]old\b"), 1.0),
        (_compile(rf"\baged\s+(?:\d{{1,3}}|{_FIGURE})\b"), 1.0),
        (_compile(r"\bage (?:of )?\d{1,3}\b"), 1.0),
        (_compile(r"(?<=\w), \d{1,3},(?= )"), 0.9),
        (_compile(r"(?<=\w) \(\d{1,3}\)"), 0.8),
        (_compile(r"\b(?:died|dies|dead) at \d{1,3}\b"), 0.8),
        (_compile(rf"\bages? (?:of |from |between )?{_AGE}(?:\s*(?:-|–|to|and)\s*{_AGE})?"), 0.7),
        (_compile(rf"\bin (?:his|her|their) (?:early |mid-?|late )?(?:{_DECADES})\b"), 0.6),
    ),
    "duration": (
        (_compile(r"\b\d{1,2}:\d{2}:\d{2}(?:\.\d+)?\b"), 1.0),
        (_compile(rf"\b{_LENGTH}(?:(?:,\s*|\s+and\s+|\s+){_LENGTH})*\b(?![- ]old)"), 1.0),
        (_compile(r"\b(?:an?|one|half an?)\s+(?:hour|day|week|month|year|decade|century)\b(?![- ]old)"), 0.6),
        (_compile(r"\bweek \d{1,2}\b"), 0.5),
    ),
    "date": (
        (_compile(rf"\b(?:(?:{_DAYS}),?\s+)?(?:{_MONTHS})\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?\b"), 1.0),
        (_compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})(?:,?\s+\d{{4}})?\b"), 1.0),
        (_compile(rf"\b(?:{_MONTHS})\s+\d{{4}}\b"), 0.9),
        (_compile(r"\b\d+\s*(?:BCE|BC|CE|AD|B\.C\.E\.|B\.C\.|b\.c\.e\.)"), 0.9),
        (_compile(r"\b(?:1[0-9]|20)\d{2}s?\b(?!\s*(?:-|–)?\s*(?:%|percent|people|km|miles))"), 0.8),
        (_compile(r"\b\d{1,2}(?::\d{2})?\s*(?:am|pm|a\.m\.|p\.m\.)"), 0.7),
        (_compile(r"\b\d{1,2}:\d{2}\b(?!:)"), 0.6),
        (_compile(r"\b\d{4}\s+(?:UTC|GMT)\b"), 0.6),
        (_compile(rf"\b(?:{_MONTHS})\b"), 0.6),
        (_compile(rf"\b(?:{_DAYS})\b"), 0.6),
        (_compile(rf"\b(?:{_RELATIVE_DAYS})\b"), 0.4),
    ),
    "number": (
        (_compile(rf"\b{_FIGURE}\s*(?:%|percent|per cent)"), 1.0),
        (_compile(rf"(?<![\w$£€.:-]){_FIGURE}\b(?![-:.]\d)"), 0.8),
    ),
    "reason": (
        (_compile(rf"\b(?:{_CAUSES})\b"), 1.0),
        (_compile(r"\b(?:after|following|over|since|from|of|for)\b"), 0.3),
    ),
}  # fmt: skip
# Spans of these kinds answer a question of another kind too, less surely (a "who" may be an organisation).
_RELATED: dict[str, tuple[tuple[str, float], ...]] = {
    "number": (("money", 0.4), ("quantity", 0.5), ("age", 0.3)),
    "duration": (("date", 0.2),),
}
# Number-like spans that belong to another kind: "2019" in a date is not a count, "15-year-old" not a duration.
_NOT_A_COUNT = ("date", "age", "money", "duration", "quantity")


def _pattern_spans(kind: str, sentence: str) -> list[Span]:
    """Spans of `kind` found by its patterns, longest first where they overlap."""
    taken: list[tuple[int, int]] = []
    found: list[Span] = []
    for pattern, fit in _PATTERNS[kind]:
        for match in pattern.finditer(sentence):
            start, end = _trim(sentence, match.start(), match.end())
            if end <= start or any(a < end and start < b for a, b in taken):
                continue
            taken.append((start, end))
            text = sentence[start:end]
            bounded = kind in _MEASURED and _BOUND.match(text)  # "less than two hours": a bound, not the figure
            found.append(Span(start, end, text, kind, fit * BOUND_FIT if bounded else fit))
    return found


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start] in " ,(":
        start += 1
    while end > start and text[end - 1] in " ,)":
        end -= 1
    return start, end


def _overlaps(span: Span, others: list[Span]) -> bool:
    return any(o.start < span.end and span.start < o.end for o in others)


def _numbers(sentence: str) -> list[Span]:
    """Counts and shares: figures that are not part of a date, an age, a sum of money, a duration or a measure."""
    claimed = [s for kind in _NOT_A_COUNT for s in _pattern_spans(kind, sentence) if s.fit >= 0.6]
    return [s for s in _pattern_spans("number", sentence) if not _overlaps(s, claimed) and s.text.lower() != "one"]


def _durations(sentence: str) -> list[Span]:
    ages = _pattern_spans("age", sentence)
    return [s for s in _pattern_spans("duration", sentence) if not _overlaps(s, ages)]


def _names(kind: str) -> Callable[[str, frozenset[str]], list[Span]]:
    def find(sentence: str, lowered: frozenset[str]) -> list[Span]:
        return [Span(a, b, sentence[a:b], kind, fit) for a, b, fit in names(sentence, lowered, kind)]

    return find


_FINDERS: dict[str, Callable[[str, frozenset[str]], list[Span]]] = {
    "person": _names("person"),
    "organisation": _names("organisation"),
    "place": _names("place"),
    "number": lambda sentence, lowered: _numbers(sentence),
    "duration": lambda sentence, lowered: _durations(sentence),
}


def find_spans(kind: str, sentence: str, question: str, lowered: frozenset[str] = frozenset()) -> list[Span]:
    """The candidate answers of `kind` in `sentence`, less those the question already states ("2019" in "the
    2019 Nobel Prize"). `lowered` holds words seen in lower case in the passages: a capitalised one of them at the
    start of a sentence is an ordinary word, not a name."""
    finder = _FINDERS.get(kind)
    spans = finder(sentence, lowered) if finder else _pattern_spans(kind, sentence) if kind in _PATTERNS else []
    for related, fit in _RELATED.get(kind, ()):
        spans += [
            Span(s.start, s.end, s.text, s.kind, s.fit * fit)
            for s in _pattern_spans(related, sentence)
            if not _overlaps(s, spans)
        ]
    if kind == "date" and (focus := _date_focus(question)):
        spans = [Span(s.start, s.end, s.text, s.kind, _date_fit(s, focus)) for s in spans]
    asked = f" {_folded(question)} "
    spans = [s for s in spans if f" {_folded(s.text)} " not in asked]
    if finder is not None and kind in ("person", "organisation", "place"):
        # A name sharing a word with a name in the question is its subject ("Paweł Adamowicz" for "the man held
        # over the Adamowicz stabbing"), not its answer.
        named = {w for w in re.findall(r"[^\W\d_][\w'-]+", question) if w[0].isupper()}
        spans = [s for s in spans if not named & set(re.findall(r"[^\W\d_][\w'-]+", s.text))]
    return sorted(spans, key=lambda s: s.start)


_YEAR_ONLY = re.compile(r"(?:1[0-9]|20)\d{2}s?|\d+\s*(?:BCE|BC|CE|AD|B\.C\.E\.|B\.C\.|b\.c\.e\.)", re.IGNORECASE)
_HAS_YEAR = re.compile(r"\b(?:1[0-9]|20)\d{2}\b")
_CLOCK = re.compile(r"\d:\d\d|\d\s*(?:am|pm|a\.m\.|p\.m\.)", re.IGNORECASE)
_DAY_OF_MONTH = re.compile(
    rf"(?:{_MONTHS})\s+\d{{1,2}}\b|\b\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})", re.IGNORECASE
)
_WEEKDAY = re.compile(rf"\b(?:{_DAYS})\b", re.IGNORECASE)


def _date_focus(question: str) -> str | None:
    """Which part of a date the question asks for: "what year" a year, "what time" a clock time, "on what day" or
    "what date" a day; None for a plain "when"."""
    asked = question.lower()
    for focus, cue in (("year", r"\byear\b"), ("time", r"\btime\b"), ("day", r"\b(?:day|date)\b")):
        if re.search(cue, asked):
            return focus
    return None


def _date_fit(span: Span, focus: str) -> float:
    """A date span's fit to the part of a date asked for."""
    text = span.text
    if focus == "year":
        return 1.0 if _YEAR_ONLY.fullmatch(text) else 0.8 if _HAS_YEAR.search(text) else span.fit * 0.5
    if focus == "time":
        return 1.0 if _CLOCK.search(text) else span.fit * 0.5
    if _DAY_OF_MONTH.search(text):
        return 1.0
    return 0.8 if _WEEKDAY.search(text) else 0.4 if _YEAR_ONLY.fullmatch(text) else span.fit


def _folded(text: str) -> str:
    return " ".join(re.sub(r"[^\w%$£€]+", " ", text.casefold()).split())
