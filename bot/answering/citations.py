"""Checks the `[n]` citations of a model's answer against the sources it was shown.

Markers that point at no source are dropped; each cited sentence is compared with the passages of the article
it cites (word overlap and embedding similarity); citations that hold are renumbered by first use and carry
the best supporting quote, an exact span of the article text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from bot.answering.context import Source
from bot.models import CANNOT_ANSWER, Citation, Passage
from ingest.text import CONTENT_STOPWORDS, split_sentences, words

if TYPE_CHECKING:
    from ingest.embedding import Embedder

# [3], [1, 2], [1-3], [2; 4], and the "[Source 2]" that weaker models write.
_NUMBER = r"(?:sources?\s*:?\s*)?\d+(?:\s*[-–]\s*\d+)?"
MARKER = re.compile(rf"\[\s*({_NUMBER}(?:\s*[,;]\s*{_NUMBER})*)\s*\]", re.IGNORECASE)
_MARKERS_WITH_SPACE = re.compile(rf"\s*{MARKER.pattern}", re.IGNORECASE)
# A sentence end hidden behind markers that split_sentences cannot see: "fell.[2] Then" or "fell. [2] Then".
_HIDDEN_END = re.compile(rf"[.!?]['\"”’)]*(?:\s*{MARKER.pattern})+(?=\s+['\"“‘(]?[A-Z0-9])", re.IGNORECASE)
_LEADING_MARKERS = re.compile(rf"(?:{MARKER.pattern}\s*)+", re.IGNORECASE)
_NUMBER_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?")
UNVERIFIED = "[unverified]"
# Support a shorter quote may give up against the best-scoring (longer) one.
_QUOTE_SLACK = 0.03


@dataclass(slots=True)
class Sentence:
    """One sentence of the model's answer and what came of its citations."""

    text: str
    separator: str  # what stood between this sentence and the previous one (" ", "\n\n", ...)
    cited: list[int]  # source numbers as the model wrote them, valid ones only, first use first
    refusal: bool = False
    supported: list[int] = field(default_factory=list)  # the cited sources that support it

    @property
    def claim(self) -> str:
        """The sentence without its markers: what the sources must support."""
        return strip_markers(self.text)


@dataclass(slots=True)
class Support:
    """How well a source supports a sentence, and the best supporting span of its article."""

    score: float
    lexical: float
    semantic: float
    start: int
    end: int
    quote: str


@dataclass(slots=True)
class CheckedAnswer:
    text: str
    citations: list[Citation]
    sentences: list[dict[str, Any]]
    refused: bool  # the model said the cannot-answer sentence and made no supported claim
    supported: int  # sentences with at least one supporting citation


def strip_markers(text: str) -> str:
    """`text` without its [n] markers, whitespace normalised."""
    return " ".join(_MARKERS_WITH_SPACE.sub("", text).split())


def cited_numbers(marker_body: str, n_sources: int) -> list[int]:
    """The source numbers in one marker's body, in order, without duplicates or numbers out of 1..n."""
    numbers: list[int] = []
    for part in re.split(r"[,;]", marker_body):
        bounds = [int(x) for x in re.findall(r"\d+", part)]
        if not bounds:
            continue
        low, high = min(bounds), max(bounds)
        # Clipped before expanding, so "[1-999999]" costs nothing.
        for n in range(max(low, 1), min(high, n_sources) + 1):
            if n not in numbers:
                numbers.append(n)
    return numbers


def split_answer(text: str, n_sources: int) -> list[Sentence]:
    """The answer's sentences, each keeping the markers that follow it (also across a sentence break)."""
    spans: list[tuple[int, int]] = []
    for start, end in split_sentences(text):
        cursor = start
        for hidden in _HIDDEN_END.finditer(text, start, end):
            spans.append((cursor, hidden.end()))
            cursor = hidden.end()
        spans.append((cursor, end))
    # "It fell. [2] Then ..." puts [2] at the start of the next sentence: hand it back.
    fixed: list[list[int]] = []
    for start, end in spans:
        while start < end and text[start].isspace():
            start += 1
        lead = _LEADING_MARKERS.match(text, start, end)
        if lead and fixed:
            fixed[-1][1] = lead.end()
            start = lead.end()
            while start < end and text[start].isspace():
                start += 1
        if start < end:
            fixed.append([start, end])
        elif fixed:
            fixed[-1][1] = max(fixed[-1][1], end)
    sentences: list[Sentence] = []
    previous_end = 0
    for start, end in fixed:
        body = text[start:end].rstrip()
        cited: list[int] = []
        for marker in MARKER.finditer(body):
            cited += [n for n in cited_numbers(marker.group(1), n_sources) if n not in cited]
        sentence = Sentence(text=body, separator=text[previous_end:start], cited=cited)
        sentence.refusal = is_refusal(sentence.claim)
        sentences.append(sentence)
        previous_end = end
    return sentences


def is_refusal(text: str) -> bool:
    """Whether `text` is or contains the cannot-answer sentence, allowing for the model's small liberties."""
    return _normalise(CANNOT_ANSWER) in _normalise(text)


def _normalise(text: str) -> str:
    text = text.lower().replace("’", "'").replace("could not", "couldn't")
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text).split())


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


class SupportChecker:
    """Decides whether a source supports a sentence, on three tests that each catch a different failure.

    - topic: the mean of word-overlap recall and embedding cosine against the best window of the article
      (catches citing the wrong article);
    - new words: the share of the sentence's content words found in neither the question nor the article
      (catches an on-topic sentence whose facts, names or places the article never gives);
    - numbers: every figure in the sentence appears in the article or its date.
    """

    def __init__(self, embedder: Embedder, min_support: float, max_new_words: float) -> None:
        self.embedder = embedder
        self.min_support = min_support
        self.max_new_words = max_new_words

    def score(self, pairs: Sequence[tuple[str, Source]]) -> list[Support | None]:
        """For each (claim, source), its best supporting window; None when the source has no text.

        Windows are runs of one to three consecutive sentences of a passage. Only single sentences are
        embedded; a window's vector is the normalised sum of its sentences' (embedding cost is per sentence).
        """
        sentences = {id(source): _sentences(source) for _, source in pairs}
        claims = list(dict.fromkeys(claim for claim, _ in pairs))
        texts = list(dict.fromkeys(t for runs in sentences.values() for _, run in runs for *_, t in run))
        vectors = self.embedder.embed(claims + texts)
        claim_vec = {c: vectors[i] for i, c in enumerate(claims)}
        text_vec = {t: vectors[len(claims) + i] for i, t in enumerate(texts)}
        windows = {key: _windows(runs, text_vec) for key, runs in sentences.items()}
        weights = {key: _word_weights(runs) for key, runs in sentences.items()}
        results: list[Support | None] = []
        for claim, source in pairs:
            candidates = windows[id(source)]
            if not candidates:
                results.append(None)
                continue
            words = content_words(claim)
            weight = weights[id(source)]
            unseen = float(np.mean(list(weight.values()))) if weight else 1.0
            semantic = np.stack([w.vector for w in candidates]) @ claim_vec[claim]
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
        words = content_words(claim)
        article_words = set().union(*(content_words(p.text) for p in source.passages))
        new_words = words - content_words(question) - article_words
        if words and len(new_words) / len(words) > self.max_new_words:
            return False
        # A figure the article never states is the commonest way a fluent summary goes wrong.
        return numbers_in(claim) <= _source_numbers(source)


@dataclass(slots=True)
class _Window:
    start: int  # offsets into the article text
    end: int
    text: str
    words: set[str]
    vector: np.ndarray
    size: int  # sentences


def _sentences(source: Source) -> list[tuple[Passage, list[tuple[int, int, str]]]]:
    """Each passage with its sentences as (start, end, text), offsets into the passage text."""
    return [(p, [(a, b, p.text[a:b]) for a, b in split_sentences(p.text)]) for p in source.passages]


def _windows(runs: list[tuple[Passage, list[tuple[int, int, str]]]], vectors: dict[str, np.ndarray]) -> list[_Window]:
    """Every run of one to three consecutive sentences of one paragraph of a passage, each once."""
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


def _word_weights(runs: list[tuple[Passage, list[tuple[int, int, str]]]]) -> dict[str, float]:
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


def _source_numbers(source: Source) -> set[str]:
    found = set().union(*(numbers_in(p.text) for p in source.passages))
    published = source.lead.published_at
    if published is not None:  # the date line of the source counts as evidence too
        found |= {str(published.year), str(published.day), f"{published.day:02d}", str(published.month)}
    return found


def check_citations(
    raw: str,
    sources: Sequence[Source],
    checker: SupportChecker,
    unsupported: Literal["mark", "remove"] = "remove",
    question: str = "",
) -> CheckedAnswer:
    """The model's answer with citations checked, renumbered by first use, and unsupported text handled."""
    by_number = {source.n: source for source in sources}
    sentences = split_answer(raw, len(sources))
    pairs = [(s.claim, by_number[n]) for s in sentences if not s.refusal for n in s.cited]
    supports = iter(checker.score(pairs)) if pairs else iter(())
    best: dict[int, Support] = {}  # per source number as the model wrote it: its strongest support
    for sentence in sentences:
        if sentence.refusal:
            continue
        for n in sentence.cited:
            support = next(supports)
            if checker.supports(sentence.claim, by_number[n], support, question):
                assert support is not None
                sentence.supported.append(n)
                if n not in best or support.score > best[n].score:
                    best[n] = support

    renumber: dict[int, int] = {}
    for sentence in sentences:
        for n in sentence.supported:
            renumber.setdefault(n, len(renumber) + 1)

    parts: list[str] = []
    report: list[dict[str, Any]] = []
    for sentence in sentences:
        if sentence.refusal or sentence.supported:
            text = _rewrite_markers(sentence, renumber)
        elif unsupported == "mark":
            text = f"{_rewrite_markers(sentence, renumber)} {UNVERIFIED}"
        else:
            text = None
        report.append(
            {
                "text": text if text is not None else sentence.claim,
                "citations": [renumber[n] for n in sentence.supported],
                "supported": bool(sentence.supported) or sentence.refusal,
            }
        )
        if text is not None:
            parts.append((sentence.separator if parts else "") + text)

    citations = [_citation(new, by_number[old], best[old]) for old, new in renumber.items()]
    supported = sum(1 for s in sentences if s.supported)
    refused = supported == 0 and any(s.refusal for s in sentences)
    text = "".join(parts).strip()
    return CheckedAnswer(text, citations, report, refused=refused, supported=supported)


def _rewrite_markers(sentence: Sentence, renumber: dict[int, int]) -> str:
    """The sentence with each marker renumbered to its supporting sources, or removed when none is left.

    A source cited twice in one sentence ("[1] ... [1, 2]") is shown once, at its first place.
    """
    shown: set[int] = set()

    def rewrite(match: re.Match[str]) -> str:
        numbers = [
            n
            for n in cited_numbers(match.group(1), max(sentence.cited, default=0))
            if n in sentence.supported and n not in shown
        ]
        shown.update(numbers)
        if not numbers:
            return ""
        whole = match.group(0)
        return whole[: len(whole) - len(whole.lstrip())] + "".join(f"[{renumber[n]}]" for n in numbers)

    return _MARKERS_WITH_SPACE.sub(rewrite, sentence.text)


def _citation(n: int, source: Source, support: Support) -> Citation:
    return Citation.of(n, source.lead, quote=support.quote, start=support.start, end=support.end, score=support.score)
