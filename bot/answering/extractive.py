"""The offline answerer: picks the retrieved sentences that best answer the question and cites them.

No LLM: every sentence of the answer is a sentence of an article, so every citation is exact by construction.
It refuses when no sentence is close enough to the question, rather than quote something loosely related.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.answering.answerer import StatusCallback, TextCallback
from bot.models import CANNOT_ANSWER, Answer, Citation, Passage, Turn
from bot.settings import AnswerSettings
from ingest.embedding import Embedder
from ingest.text import content_words, split_sentences

TYPE_BONUS = 0.06
# Question words whose answer is a follow-up on an earlier turn rather than a new subject.
_FOLLOW_UP = re.compile(r"\b(he|she|they|him|her|them|his|their|it|its|that|this|those|these)\b", re.I)


_NUMBER_WORDS = (
    r"one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundreds?|thousands?|"
    r"millions?|billions?|dozens?|half|quarter|third"
)
_MONTHS = r"january|february|march|april|may|june|july|august|september|october|november|december"
_DAYS = r"monday|tuesday|wednesday|thursday|friday|saturday|sunday"
# What kind of fact a question asks for, and how to see one in a sentence.
ANSWER_TYPES: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "number": (
        re.compile(
            r"^\s*(how (many|much|old|long|tall|deep|far|big|large|high|fast|often|quickly)"
            r"|what (share|percentage|proportion|number|age|amount|sum)|what was the (turnout|toll|age|score))\b",
            re.I,
        ),
        re.compile(rf"\b(\d[\d,.:]*%?|{_NUMBER_WORDS})\b", re.I),
    ),
    "date": (
        re.compile(
            r"^\s*(when|what (date|day|year|month|time)|on what (date|day)|in (what|which) (year|month))\b", re.I
        ),
        re.compile(
            rf"\b({_MONTHS}|{_DAYS}|(19|20)\d\d|yesterday|today|tomorrow|last (week|month|year)|"
            rf"\d{{1,2}}(st|nd|rd|th))\b",
            re.I,
        ),
    ),
    "name": (
        re.compile(r"^\s*(who|whom|whose)\b", re.I),
        re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z'’-]+(?:\s+[A-Z][a-z'’-]+)*"),
    ),
}


def expected_answer_type(question: str) -> str | None:
    for name, (asks, _) in ANSWER_TYPES.items():
        if asks.search(question):
            return name
    return None


def has_answer_type(kind: str, sentence: str, question: str) -> bool:
    """The sentence holds a fact of the asked kind that the question does not already state."""
    _, looks_like = ANSWER_TYPES[kind]
    asked = question.lower()
    return any(m.group(0).lower() not in asked for m in looks_like.finditer(sentence))


@dataclass(slots=True)
class Candidate:
    passage: Passage
    start: int  # offsets into the article text
    end: int
    text: str
    before: str = ""  # the sentence before it in the passage, for context
    score: float = 0.0
    vector: np.ndarray | None = None


def condense_question(question: str, history: Sequence[Turn]) -> str:
    """A standalone search query for a follow-up: borrow the previous question's subject when needed."""
    if not history:
        return question
    last = history[-1].question
    if _FOLLOW_UP.search(question) or len(content_words(question)) <= 2:
        return f"{last} {question}"
    return question


class ExtractiveAnswerer:
    def __init__(self, embedder: Embedder, settings: AnswerSettings) -> None:
        self.embedder = embedder
        self.settings = settings

    def condense(self, question: str, history: Sequence[Turn], *, asked_at: float | None = None) -> str:
        return condense_question(question, history)

    def answer(
        self,
        question: str,
        query: str,
        passages: list[Passage],
        *,
        on_text: TextCallback | None = None,
        on_status: StatusCallback | None = None,
        asked_at: float | None = None,
    ) -> Answer:
        """The best sentences of the passages, cited; not streamed (`on_text` is not called)."""
        # Only sentences that can hold the kind of fact asked for (a number for "how many", ...) answer: when none
        # scores high enough, the question is near-topic but unanswered.
        kind = expected_answer_type(query)
        candidates = [
            c for c in self.score_sentences(query, passages) if kind is None or has_answer_type(kind, c.text, query)
        ]
        if not candidates or candidates[0].score < self.settings.min_support:
            return Answer(question=question, text=CANNOT_ANSWER, refused=True, passages=passages)
        chosen = self._choose(candidates)
        return compose_answer(question, chosen, passages)

    def score_sentences(self, question: str, passages: list[Passage]) -> list[Candidate]:
        """Every sentence of the passages, scored against the question, best first."""
        candidates: list[Candidate] = []
        seen: set[tuple[str, int]] = set()
        for passage in passages:
            spans = split_sentences(passage.text)
            for i, (a, b) in enumerate(spans):
                start, end = passage.start + a, passage.start + b
                text = passage.text[a:b]
                if (passage.article_id, start) in seen or len(text.split()) < 4:
                    continue
                seen.add((passage.article_id, start))
                before = passage.text[spans[i - 1][0] : spans[i - 1][1]] if i else ""
                candidates.append(Candidate(passage, start, end, text, before=before))
        if not candidates:
            return []
        q_words = content_words(question)
        kind = expected_answer_type(question)
        lexical = []  # the score's parts that need no embedding
        for candidate in candidates:
            # The sentence before counts for overlap: "They would be held for 444 days." answers a question about
            # the hostages in Tehran that the sentence before names (dev set: answer accuracy 0.538 -> 0.596).
            words = content_words(candidate.text) | content_words(candidate.before)
            overlap = len(q_words & words) / len(q_words) if q_words else 0.0
            part = 0.25 * overlap
            if kind is not None:
                # A sentence that cannot hold the asked kind of fact (no number for "how many") is a weak answer.
                part += TYPE_BONUS if has_answer_type(kind, candidate.text, question) else -TYPE_BONUS
            lexical.append(part)
        candidates, lexical = self._shortlist(candidates, lexical)
        q_vec = self.embedder.embed_query(question)
        vectors = self.embedder.embed([c.text for c in candidates])
        similarities = vectors @ q_vec
        for candidate, vector, similarity, part in zip(candidates, vectors, similarities, lexical, strict=True):
            candidate.vector = vector
            candidate.score = float(0.75 * similarity + part)
        return sorted(candidates, key=lambda c: c.score, reverse=True)

    def _shortlist(self, candidates: list[Candidate], lexical: list[float]) -> tuple[list[Candidate], list[float]]:
        """The sentences worth embedding: embedding every sentence of every passage dominated answer time.

        Ranked by the same score with the passage's similarity standing in for the sentence's own.
        """
        limit = self.settings.embed_sentences
        if not limit or len(candidates) <= limit:
            return candidates, lexical
        proxy = [0.75 * (c.passage.dense_score or 0.0) + part for c, part in zip(candidates, lexical, strict=True)]
        keep = sorted(sorted(range(len(candidates)), key=lambda i: -proxy[i])[:limit])
        return [candidates[i] for i in keep], [lexical[i] for i in keep]

    def _choose(self, candidates: list[Candidate]) -> list[Candidate]:
        """The best sentence, plus close runners-up that add something (not near-duplicates)."""
        best = candidates[0]
        chosen = [best]
        floor = max(self.settings.min_support, best.score - 0.08)
        for candidate in candidates[1:]:
            if len(chosen) >= self.settings.max_sentences or candidate.score < floor:
                break
            if all(_similarity(candidate, c) < 0.85 for c in chosen):
                chosen.append(candidate)
        return chosen


def _similarity(a: Candidate, b: Candidate) -> float:
    return float(a.vector @ b.vector) if a.vector is not None and b.vector is not None else 0.0


def compose_answer(question: str, chosen: list[Candidate], passages: list[Passage]) -> Answer:
    """Answer text with [n] markers (one number per article, by first use) and its citations."""
    numbers: dict[str, int] = {}
    parts, citations = [], []
    for candidate in chosen:
        passage = candidate.passage
        n = numbers.setdefault(passage.article_id, len(numbers) + 1)
        parts.append(f"{candidate.text} [{n}]")
        citations.append(
            Citation.of(
                n, passage, quote=candidate.text, start=candidate.start, end=candidate.end, score=candidate.score
            )
        )
    return Answer(question=question, text=" ".join(parts), refused=False, citations=citations, passages=passages)
