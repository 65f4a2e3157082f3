"""The reader: of the scored sentences, the one holding the best span of the asked kind, or a refusal.

A span is scored by how well it fits the asked kind, how close it sits to the question's key terms (in its
sentence, or failing that in the sentence before), and its sentence's own score. When the question asks for a typed
fact and no sentence about the question's key terms holds a span of that type, the articles do not give the fact:
the reader refuses, however similar the sentences are to the question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from bot.answering.extractive.asked import Asked
from bot.answering.extractive.spans import Span
from ingest.text import word_spans, words

if TYPE_CHECKING:
    import numpy as np

    from bot.models import Passage


@dataclass(slots=True)
class Candidate:
    """A sentence of a passage: offsets into the article text, the sentence before it, its score and spans."""

    passage: Passage
    start: int
    end: int
    text: str
    before: str = ""  # the sentence before it in the passage, for context
    score: float = 0.0
    vector: np.ndarray | None = None
    spans: list[Span] = field(default_factory=list)  # candidate answers of the asked kind


@dataclass(frozen=True, slots=True)
class ReaderWeights:
    """How a span's score is made up of its sentence's score and its evidence, and when it is no evidence.

    Calibrated on the dev set (evals/data/dev-wikinews.jsonl) only.
    """

    fit: float = 0.5  # times the span's fit to the asked kind
    near: float = 0.1  # times its closeness to the question's key terms
    named: float = 0.4  # when the words just before it name the kind asked for ("his time was")
    min_fit: float = 0.5  # a span fitting less is no evidence of the fact
    # A sentence is about the question when it holds this share of the key terms (with the one before it and its
    # article's title), and this share of what the question asks about its story (the terms less names): "Who
    # commanded the USS Grayback" is not answered by a sentence of the Grayback story that says nothing of commanding.
    # A sentence that names the kind just before the span ("His time was 1:59:40") need not repeat the rest.
    min_coverage: float = 0.5
    min_asked: float = 0.2
    min_score: float = 0.8  # and the span must score this much in all (see Evidence.score)


@dataclass(frozen=True, slots=True)
class Evidence:
    """A span of the asked kind in a sentence, and what says it answers the question."""

    candidate: Candidate
    span: Span
    coverage: float  # share of the key terms in the sentence, the one before it and the article's title
    asked: float  # share of what the question asks about its story (its terms less names) said around the span
    near: float  # closeness to a key term (see KeyTerms.closeness)
    named: bool  # the sentence names it as the kind asked for: "His time was 1:59:40", "a depth of over 1400 feet"

    def score(self, weights: ReaderWeights) -> float:
        return (
            self.candidate.score + weights.fit * self.span.fit + weights.near * self.near + weights.named * self.named
        )

    def about(self, weights: ReaderWeights) -> bool:
        """Whether the sentence is about the question, and so whether the span is evidence of the fact."""
        return (
            self.span.fit >= weights.min_fit
            and self.coverage >= weights.min_coverage
            and (self.asked >= weights.min_asked or self.named)
            and self.score(weights) >= weights.min_score
        )


@dataclass(frozen=True, slots=True)
class Reading:
    """The reader's pick: the sentence to lead the answer with, and the span answering the question in it."""

    candidate: Candidate
    span: Span | None
    score: float


MIN_PREFIX = 4


@cache
def _stemmer() -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer("english")


# Words news uses for the same thing, as stems: a question about who "died" is answered by who was "killed".
_SAME_SENSE = (
    ("die", "dead", "death", "kill", "fatal", "fatality"),
    ("injur", "wound", "hurt"),
    ("worth", "valu", "price"),
    ("murder", "homicid", "slay"),
    ("peopl", "person", "individu"),
    ("flight", "journey", "trip"),
    ("built", "manufactur", "construct"),
    ("arrest", "detain"),
    ("start", "found", "launch", "establish"),
    ("win", "won", "winner", "victori"),
    ("born", "birth"),
    ("jail", "prison", "imprison"),
    ("deep", "depth"),
    ("tall", "height", "high"),
    ("far", "distanc"),
    ("fast", "speed"),
    ("heavi", "weigh", "weight"),
)
_CANONICAL = {word: group[0] for group in _SAME_SENSE for word in group}


@cache
def stem(word: str) -> str:
    """The word's Snowball English stem, one for words of the same sense: "died", "dies" and "killed" are one."""
    stemmed = str(_stemmer().stemWord(word))
    return _CANONICAL.get(stemmed, stemmed)


class KeyTerms:
    """The question's key terms, matched to a text's words by their stems; a stem of four letters or more also
    matches a longer stem it begins ("serv" matches "servic": serve, service). `near` are the terms a span is
    best close to (what the question asks about its story), when there are any."""

    def __init__(self, terms: frozenset[str], near: frozenset[str] = frozenset()) -> None:
        self.stems = frozenset(stem(t) for t in terms)
        self.near = frozenset(stem(t) for t in near) or self.stems
        self._prefixes = tuple(s for s in self.stems if len(s) >= MIN_PREFIX)
        # A reading looks at each sentence several times (as a sentence, as the one before, per span).
        self._terms: dict[str, str | None] = {}
        self._found: dict[str, set[str]] = {}
        self._positions: dict[str, tuple[list[tuple[int, int, str]], list[int]]] = {}

    def term(self, word: str) -> str | None:
        """The key term `word` matches, if any."""
        if word not in self._terms:
            stemmed = stem(word)
            if stemmed in self.stems:
                self._terms[word] = stemmed
            elif len(stemmed) >= MIN_PREFIX:
                self._terms[word] = next(
                    (p for p in self._prefixes if stemmed.startswith(p) or p.startswith(stemmed)), None
                )
            else:
                self._terms[word] = None
        return self._terms[word]

    def found(self, text: str) -> set[str]:
        if text not in self._found:
            self._found[text] = {t for w in words(text) if (t := self.term(w))}
        return self._found[text]

    def closeness(self, candidate: Candidate, span: Span) -> float:
        """1 beside a key term, falling with the words between; half when only the sentence before has one."""
        if candidate.text not in self._positions:
            spans = word_spans(candidate.text)
            self._positions[candidate.text] = (
                spans,
                [i for i, (_, _, w) in enumerate(spans) if self.term(w) in self.near],
            )
        spans, positions = self._positions[candidate.text]
        inside = [i for i, (a, b, _) in enumerate(spans) if a < span.end and span.start < b]
        if not positions or not inside:
            return 0.5 if self.found(candidate.before) else 0.0
        first, last = inside[0], inside[-1]
        gap = min(first - p if p < first else p - last if p > last else 0 for p in positions)
        return 1.0 / (1.0 + max(gap - 1, 0) / 4)


def evidence(asked: Asked, candidates: list[Candidate]) -> list[Evidence]:
    """Every span of the asked kind in the scored candidates, with what says it answers the question."""
    # What the question asks about its story: the key terms that are neither names nor the answer's kind.
    terms = KeyTerms(asked.terms, asked.terms - asked.head_words - asked.topic_words)
    story = terms.stems - {stem(w) for w in asked.head_words}  # what the question is about, less kinds of things
    predicate = story - {stem(w) for w in asked.topic_words}
    kind = frozenset(stem(w) for w in asked.kind_words)
    found = []
    for candidate in candidates:
        if not candidate.spans or candidate.vector is None:
            continue
        titled = terms.found(candidate.passage.title) & story
        said = (terms.found(candidate.text) | terms.found(candidate.before)) & story
        coverage = len(said | titled) / len(story) if story else 1.0
        share = len(said & predicate) / len(predicate) if predicate else 1.0
        for span in candidate.spans:
            near = terms.closeness(candidate, span)
            named = bool(kind) and any(stem(w) in kind for w in words(candidate.text[: span.start])[-3:])
            found.append(Evidence(candidate, span, coverage, share, near, named))
    return found


def read(asked: Asked, candidates: list[Candidate], weights: ReaderWeights) -> Reading | None:
    """The best span of the asked kind among the scored candidates, None when no sentence about the question holds
    one; for a question without a typed answer (a reason, anything else), the best sentence, a causal phrase in it
    helping it along."""
    found = evidence(asked, candidates)
    if asked.wants_span:
        about = [e for e in found if e.about(weights)]
        best = max(about, key=lambda e: e.score(weights), default=None)
        return Reading(best.candidate, best.span, best.score(weights)) if best else None
    scored = [(c.score, c) for c in candidates if c.vector is not None]
    scored += [(e.score(weights), e.candidate) for e in found]
    if not scored:
        return None
    score, candidate = max(scored, key=lambda pair: pair[0])
    return Reading(candidate, None, score)
