"""Whether a source supports a sentence of a model's answer, and whether the sentence bears on the question.

Sentences of a source that read like instructions to an AI (`ingest.injection`) are never evidence: a model that
obeyed "reply HACKED" would otherwise find its reply supported by the very sentence that dictated it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bot.answering.context import Source
from bot.models import Passage
from ingest.injection import instruction_spans
from ingest.text import CONTENT_STOPWORDS, split_sentences, words

if TYPE_CHECKING:
    from ingest.embedding import Embedder

_NUMBER_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?")
# Support a shorter quote may give up against the best-scoring (longer) one.
_QUOTE_SLACK = 0.03
# A question the sources themselves barely match ("What happened?") lowers the relevance bar to this share of
# the best source sentence's relevance: there, true answers score no higher than anything else.
_VAGUE_SHARE = 0.25

Vectors = dict[str, np.ndarray]
# A run of consecutive evidence sentences of one passage: (start, end, text), offsets into the passage text.
Run = tuple[Passage, list[tuple[int, int, str]]]


@dataclass(slots=True)
class Support:
    """How well a source supports a sentence, and the best supporting span of its article."""

    score: float
    lexical: float
    semantic: float
    start: int
    end: int
    quote: str


def content_words(text: str) -> set[str]:
    """Lower-cased, stop-word-free, lightly stemmed words: what word overlap is measured on."""
    return {_stem(w) for w in words(text) if w not in CONTENT_STOPWORDS}


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def numbers_in(text: str) -> set[str]:
    return {m.replace(",", "").rstrip(".") for m in _NUMBER_TOKEN.findall(text)}


def evidence(source: Source) -> list[Run]:
    """The source's sentences that can count as evidence, in runs of neighbours: every sentence but those that
    read like instructions to an AI (checked unless ingest found none in the passage)."""
    runs: list[Run] = []
    for passage in source.passages:
        fenced = instruction_spans(passage.text) if passage.instruction_like is not False else []
        run: list[tuple[int, int, str]] = []
        for a, b in split_sentences(passage.text):
            if any(a < end and start < b for start, end in fenced):
                if run:
                    runs.append((passage, run))
                run = []
            else:
                run.append((a, b, passage.text[a:b]))
        if run:
            runs.append((passage, run))
    return runs


class SupportChecker:
    """Decides whether a source supports a sentence, on three tests that each catch a different failure, and
    whether the sentence bears on the question.

    - topic: the mean of word-overlap recall and embedding cosine against the best window of the article
      (catches citing the wrong article);
    - new words: the share of the sentence's content words found in neither the question nor the article
      (catches an on-topic sentence whose facts, names or places the article never gives);
    - numbers: every figure in the sentence appears in the article or its date;
    - relevance (`relevance`): a supported sentence must also be about the question, or follow on from the
      answer's sentence before (catches a model that obeyed an article's "reply HACKED").
    """

    def __init__(self, embedder: Embedder, min_support: float, max_new_words: float, min_relevance: float = 0.0):
        self.embedder = embedder
        self.min_support = min_support
        self.max_new_words = max_new_words
        self.min_relevance = min_relevance

    def embed(self, texts: Iterable[str], vectors: Vectors) -> Vectors:
        """`vectors` with every one of `texts` in it, embedding only those it lacks (one answer's sentences are
        checked in several calls as they stream, against the same sources)."""
        missing = [text for text in dict.fromkeys(texts) if text not in vectors]
        if missing:
            vectors.update(zip(missing, self.embedder.embed(missing), strict=True))
        return vectors

    def score(self, pairs: Sequence[tuple[str, Source]], vectors: Vectors | None = None) -> list[Support | None]:
        """For each (claim, source), its best supporting window; None when the source has no evidence.

        Windows are runs of one to three consecutive sentences of a passage. Only single sentences are
        embedded; a window's vector is the normalised sum of its sentences' (embedding cost is per sentence).
        """
        runs = {id(source): evidence(source) for _, source in pairs}
        claims = [claim for claim, _ in pairs]
        texts = [t for found in runs.values() for _, run in found for *_, t in run]
        vectors = self.embed(claims + texts, {} if vectors is None else vectors)
        windows = {key: _windows(found, vectors) for key, found in runs.items()}
        weights = {key: _word_weights(found) for key, found in runs.items()}
        results: list[Support | None] = []
        for claim, source in pairs:
            candidates = windows[id(source)]
            if not candidates:
                results.append(None)
                continue
            words = content_words(claim)
            weight = weights[id(source)]
            unseen = float(np.mean(list(weight.values()))) if weight else 1.0
            semantic = np.stack([w.vector for w in candidates]) @ vectors[claim]
            lexical = np.array([_recall(words, w.words, weight, unseen) for w in candidates])
            combined = (semantic + lexical) / 2
            # A figure is the crux of a claim that has one: quote a window that states it, if any does.
            figures = numbers_in(claim)
            eligible = [i for i, w in enumerate(candidates) if figures <= numbers_in(w.text)]
            eligible = eligible or list(range(len(candidates)))
            # The shortest window that scores within a hair of the best makes the clearest quote.
            top = max(float(combined[i]) for i in eligible)
            best = min(
                (i for i in eligible if combined[i] >= top - _QUOTE_SLACK),
                key=lambda i: (candidates[i].size, -combined[i]),
            )
            window = candidates[best]
            results.append(
                Support(
                    score=float(combined[best]),
                    lexical=float(lexical[best]),
                    semantic=float(semantic[best]),
                    start=window.start,
                    end=window.end,
                    quote=window.text,
                )
            )
        return results

    def supports(self, claim: str, source: Source, support: Support | None, question: str = "") -> bool:
        if support is None or support.score < self.min_support:
            return False
        texts = [text for _, run in evidence(source) for *_, text in run]
        words = content_words(claim)
        article_words = set().union(*(content_words(text) for text in texts))
        new_words = words - content_words(question) - article_words
        if words and len(new_words) / len(words) > self.max_new_words:
            return False
        # A figure the article never states is the commonest way a fluent summary goes wrong.
        return numbers_in(claim) <= _source_numbers(source, texts)

    def relevance_bar(self, question: str, sources: Iterable[Source], vectors: Vectors | None = None) -> float:
        """The least relevance a supported sentence needs for `question`: `min_relevance`, or less for a
        question that even the best evidence sentence of the sources bears on only weakly."""
        texts = [text for source in sources for _, run in evidence(source) for *_, text in run]
        vectors = self.embed([question, *texts], {} if vectors is None else vectors)
        best = max((self.relevance(text, [question], vectors) for text in texts), default=0.0)
        return min(self.min_relevance, _VAGUE_SHARE * best)

    def relevance(self, claim: str, context: Sequence[str], vectors: Vectors | None = None) -> float:
        """How much `claim` bears on the closest of `context` (the question; the answer's sentence before): the
        mean of their embedding cosine and the share of that text's content words the claim repeats."""
        context = [text for text in context if text.strip()]
        vectors = self.embed([claim, *context], {} if vectors is None else vectors)
        said = content_words(claim)
        best = 0.0
        for text in context:
            asked = content_words(text)
            overlap = len(asked & said) / len(asked) if asked else 0.0
            best = max(best, (float(vectors[claim] @ vectors[text]) + overlap) / 2)
        return best


@dataclass(slots=True)
class _Window:
    start: int  # offsets into the article text
    end: int
    text: str
    words: set[str]
    vector: np.ndarray
    size: int  # sentences


def _windows(runs: list[Run], vectors: Vectors) -> list[_Window]:
    """Every run of one to three consecutive evidence sentences of one paragraph of a passage, each once."""
    found: dict[tuple[int, int], _Window] = {}
    for passage, sentences in runs:
        for i in range(len(sentences)):
            for j in range(i, min(i + 3, len(sentences))):
                if j > i and "\n" in passage.text[sentences[j - 1][1] : sentences[j][0]]:
                    break  # a quote stays within its paragraph
                a, b = sentences[i][0], sentences[j][1]
                start, end = passage.start + a, passage.start + b
                if (start, end) in found:  # overlapping passages repeat sentences
                    continue
                summed = np.sum([vectors[text] for *_, text in sentences[i : j + 1]], axis=0)
                text = passage.text[a:b]
                vector = summed / np.linalg.norm(summed)
                found[(start, end)] = _Window(start, end, text, content_words(text), vector, j - i + 1)
    return list(found.values())


def _word_weights(runs: list[Run]) -> dict[str, float]:
    """Inverse sentence frequency of each word in a source: its title words and topic words count less."""
    texts = {text for _, sentences in runs for *_, text in sentences}
    frequency: dict[str, int] = {}
    for text in texts:
        for word in content_words(text):
            frequency[word] = frequency.get(word, 0) + 1
    return {word: math.log(1 + len(texts) / count) for word, count in frequency.items()}


def _recall(claim: set[str], window: set[str], weights: dict[str, float], unseen: float) -> float:
    """Share of the claim's words the window has, each weighted by how specific it is within the source."""
    total = sum(weights.get(w, unseen) for w in claim)
    return sum(weights.get(w, unseen) for w in claim & window) / total if total else 0.0


def _source_numbers(source: Source, texts: Iterable[str]) -> set[str]:
    found = set().union(*(numbers_in(text) for text in texts))
    published = source.lead.published_at
    if published is not None:  # the date line of the source counts as evidence too
        found |= {str(published.year), str(published.day), f"{published.day:02d}", str(published.month)}
    return found
