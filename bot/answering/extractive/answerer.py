"""The offline answerer: reads the retrieved passages (and the rest of the leading articles) for the sentence that
states the asked fact, and cites it.

No LLM: every sentence of the answer is a sentence of an article, so every citation is exact by construction. The
answer leads with the sentence holding the best span of the asked kind (`Answer.short_answer` is that span); it
refuses when no sentence about the question holds a fact of that kind, or, for other questions, when no sentence is
close enough to the question, rather than quote something loosely related.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from bot.answering.answerer import StatusCallback, TextCallback
from bot.answering.extractive.asked import Asked, analyse
from bot.answering.extractive.reader import Candidate, ReaderWeights, Reading, read
from bot.answering.extractive.spans import find_spans
from bot.models import CANNOT_ANSWER, Answer, Citation, Passage, Turn
from bot.settings import AnswerSettings
from ingest.embedding import Embedder
from ingest.text import content_words, split_sentences, word_spans

TYPE_BONUS = 0.06
# Question words whose answer is a follow-up on an earlier turn rather than a new subject.
_FOLLOW_UP = re.compile(r"\b(he|she|they|him|her|them|his|their|it|its|that|this|those|these)\b", re.I)
# The rest of the leading articles, for a reader: (query, passages, how many articles) -> more passages.
ReadMore = Callable[[str, Sequence[Passage], int], list[Passage]]


def condense_question(question: str, history: Sequence[Turn]) -> str:
    """A standalone search query for a follow-up: borrow the previous question's subject when needed."""
    if not history:
        return question
    last = history[-1].question
    if _FOLLOW_UP.search(question) or len(content_words(question)) <= 2:
        return f"{last} {question}"
    return question


class ExtractiveAnswerer:
    def __init__(
        self,
        embedder: Embedder,
        settings: AnswerSettings,
        *,
        read_more: ReadMore | None = None,
        weights: ReaderWeights | None = None,
    ) -> None:
        self.embedder = embedder
        self.settings = settings
        self.read_more = read_more
        self.weights = weights or ReaderWeights()

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
        """The sentence stating the asked fact, and close runners-up, cited; not streamed (`on_text` is not
        called)."""
        asked = analyse(question, query)
        more = []
        if self.read_more is not None and self.settings.read_articles:
            more = self.read_more(query, passages, self.settings.read_articles)
        candidates = self.score_sentences(asked, query, passages + more)
        reading = read(asked, candidates, self.weights)
        if reading is None and candidates and candidates[0].score >= self.settings.typed_fallback:
            # No sentence about the question holds a fact of the asked kind, but one says nearly what was asked:
            # it answers, without a short answer.
            reading = Reading(candidates[0], None, candidates[0].score)
        # A typed fact is refused from the evidence (`read`); any other answer when its sentence is too far off.
        if reading is None or (not asked.wants_span and reading.candidate.score < self.settings.min_support):
            return Answer(question=question, text=CANNOT_ANSWER, refused=True, passages=passages)
        chosen = self._choose(reading, candidates)
        answer = compose_answer(question, chosen, passages + [p for p in more if any(c.passage is p for c in chosen)])
        answer.short_answer = reading.span.text if reading.span is not None else None
        return answer

    def score_sentences(self, asked: Asked, query: str, passages: list[Passage]) -> list[Candidate]:
        """Every sentence of the passages with its spans of the asked kind, scored against the question, best
        first; only a shortlist of them is embedded and scored (see `_shortlist`)."""
        candidates = sentences_of(passages)
        if not candidates:
            return []
        # Words the passages write in lower case: capitalised at a sentence's start, they are not names.
        lowered = frozenset(w for p in passages for a, _, w in word_spans(p.text) if p.text[a].islower())
        q_words = content_words(query)
        lexical = []  # the score's parts that need no embedding
        for candidate in candidates:
            candidate.spans = find_spans(asked.kind, candidate.text, query, lowered)
            # The sentence before counts for overlap: "They would be held for 444 days." answers a question about
            # the hostages in Tehran that the sentence before names.
            near = content_words(candidate.text) | content_words(candidate.before)
            part = 0.25 * (len(q_words & near) / len(q_words) if q_words else 0.0)
            if asked.wants_span:
                # A sentence that cannot hold the asked kind of fact (no number for "how many") is a weak answer.
                fits = any(s.fit >= self.weights.min_fit for s in candidate.spans)
                part += TYPE_BONUS if fits else -TYPE_BONUS
            lexical.append(part)
        candidates, lexical = self._shortlist(candidates, lexical)
        q_vec = self.embedder.embed_query(query)
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

    def _choose(self, reading: Reading, candidates: list[Candidate]) -> list[Candidate]:
        """The reading's sentence, then close runners-up that add something (not near-duplicates)."""
        chosen = [reading.candidate]
        floor = max(self.settings.min_support, candidates[0].score - 0.08)
        for candidate in candidates:
            if len(chosen) >= self.settings.max_sentences or candidate.score < floor:
                break
            if candidate is not reading.candidate and all(_similarity(candidate, c) < 0.85 for c in chosen):
                chosen.append(candidate)
        return chosen


def sentences_of(passages: list[Passage]) -> list[Candidate]:
    """Each sentence of the passages once (passages of one article overlap), with the sentence before it."""
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
    return candidates


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
