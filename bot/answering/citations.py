"""Checks the `[n]` citations of a model's answer against the sources it was shown, sentence by sentence as
the answer streams.

Markers that point at no source are dropped; each cited sentence is compared with the passages of the article
it cites (`bot.answering.support`); citations that hold are renumbered by first use and carry the best supporting
quote, an exact span of the article text. Only sentences that pass are handed on, so a reader watching the
answer arrive never sees text that is later withdrawn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from bot.answering.context import Source
from bot.answering.support import Support, SupportChecker, Vectors, evidence
from bot.models import CANNOT_ANSWER, Citation
from ingest.text import split_sentences

# [3], [1, 2], [1-3], [2; 4], and the "[Source 2]" that weaker models write.
_NUMBER = r"(?:sources?\s*:?\s*)?\d+(?:\s*[-–]\s*\d+)?"
MARKER = re.compile(rf"\[\s*({_NUMBER}(?:\s*[,;]\s*{_NUMBER})*)\s*\]", re.IGNORECASE)
_MARKERS_WITH_SPACE = re.compile(rf"\s*{MARKER.pattern}", re.IGNORECASE)
# A sentence end hidden behind markers that split_sentences cannot see: "fell.[2] Then" or "fell. [2] Then".
_HIDDEN_END = re.compile(rf"[.!?]['\"”’)]*(?:\s*{MARKER.pattern})+(?=\s+['\"“‘(]?[A-Z0-9])", re.IGNORECASE)
_LEADING_MARKERS = re.compile(rf"(?:{MARKER.pattern}\s*)+", re.IGNORECASE)
UNVERIFIED = "[unverified]"


@dataclass(slots=True)
class Sentence:
    """One sentence of the model's answer and what came of its citations."""

    text: str
    separator: str  # what stood between this sentence and the previous one (" ", "\n\n", ...)
    cited: list[int]  # source numbers as the model wrote them, valid ones only, first use first
    end: int = 0  # offset just past it (and its markers) in the text it was split from
    refusal: bool = False
    supported: list[int] = field(default_factory=list)  # the cited sources that support it

    @property
    def claim(self) -> str:
        """The sentence without its markers: what the sources must support."""
        return strip_markers(self.text)


@dataclass(slots=True)
class CheckedAnswer:
    text: str  # exactly what was handed on as it streamed
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
        sentence = Sentence(text=body, separator=text[previous_end:start], cited=cited, end=end)
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


class CitationCheck:
    """Checks a model's answer sentence by sentence while it streams, handing on only what passes.

    `feed` takes the reply as it arrives. A sentence is checked once it is complete: the next one has begun (a
    marker after its full stop still belongs to it), or the reply has ended (`finish`). A supported sentence is
    handed on at once, its markers renumbered by first use as they will stand in the final answer; a removed one
    never is. A refusal, or an unsupported sentence kept `[unverified]`, waits until a supported sentence
    follows: an answer with nothing supported is replaced as a whole, and what was handed on is never withdrawn.
    `result().text` is exactly what was handed on.
    """

    def __init__(
        self,
        sources: Sequence[Source],
        checker: SupportChecker,
        unsupported: Literal["mark", "remove"] = "remove",
        question: str = "",
    ) -> None:
        self.sources = {source.n: source for source in sources}
        self.checker = checker
        self.unsupported = unsupported
        self.question = question  # what each sentence must bear on; empty skips that test
        self._raw = ""
        self._checked_to = 0  # offset in the reply where the sentences not yet checked begin
        self._vectors: Vectors = {}  # embeddings of this answer's sentences and its sources', checked in parts
        self._shown: list[str] = []
        self._held: list[str] = []
        self._previous = ""  # the last supported claim: a sentence may bear on the question through it
        self._relevance_bar: float | None = None  # worked out once, when first needed
        self._renumber: dict[int, int] = {}
        self._best: dict[int, Support] = {}  # per source number as the model wrote it: its strongest support
        self._report: list[dict[str, Any]] = []
        self._supported = 0
        self._refusals = 0

    @property
    def reply(self) -> str:
        """The model's reply as fed so far."""
        return self._raw

    def feed(self, piece: str) -> list[str]:
        """Take the next piece of the reply; returns the checked text that may now be shown, in order."""
        self._raw += piece
        return self._check(self._complete(final=False))

    def finish(self, rest: str = "") -> list[str]:
        """The reply has ended (with `rest`): check what is left of it; returns what may now be shown."""
        self._raw += rest
        return self._check(self._complete(final=True))

    def result(self) -> CheckedAnswer:
        citations = [_citation(new, self.sources[old], self._best[old]) for old, new in self._renumber.items()]
        refused = self._supported == 0 and self._refusals > 0
        return CheckedAnswer("".join(self._shown), citations, self._report, refused, self._supported)

    def _complete(self, final: bool) -> list[Sentence]:
        """The sentences complete since the last call."""
        end = len(self._raw)
        opened = self._raw.rfind("[", self._checked_to)
        if not final and opened > self._raw.rfind("]", self._checked_to):
            end = opened  # a marker being written: it may belong to the sentence before
        sentences = split_answer(self._raw[self._checked_to : end], len(self.sources))
        if not final:
            sentences = sentences[:-1]  # the last one may still grow
        if sentences:
            self._checked_to += sentences[-1].end
        return sentences

    def _check(self, sentences: list[Sentence]) -> list[str]:
        pairs = [(s.claim, self.sources[n]) for s in sentences if not s.refusal for n in s.cited]
        if pairs and not self._vectors:
            # One call to the embedding model for the first claims, the question and every source sentence
            # (each call costs a fixed overhead); later batches embed only their new claims.
            texts = [text for source in self.sources.values() for _, run in evidence(source) for *_, text in run]
            asked = [self.question] if self.question else []
            self.checker.embed([claim for claim, _ in pairs] + asked + texts, self._vectors)
        supports = iter(self.checker.score(pairs, self._vectors) if pairs else [])
        shown: list[str] = []
        for sentence in sentences:
            found = [(n, next(supports)) for n in ([] if sentence.refusal else sentence.cited)]
            held_up = [
                (n, s) for n, s in found if self.checker.supports(sentence.claim, self.sources[n], s, self.question)
            ]
            if held_up and not self._bears_on_question(sentence.claim):
                held_up = []
            for n, support in held_up:
                assert support is not None
                sentence.supported.append(n)
                self._renumber.setdefault(n, len(self._renumber) + 1)
                if n not in self._best or support.score > self._best[n].score:
                    self._best[n] = support
            shown += self._show(sentence)
        return shown

    def _bears_on_question(self, claim: str) -> bool:
        if not self.question or self.checker.min_relevance <= 0:
            return True
        if self._relevance_bar is None:
            self._relevance_bar = self.checker.relevance_bar(self.question, self.sources.values(), self._vectors)
        relevance = self.checker.relevance(claim, [self.question, self._previous], self._vectors)
        return relevance >= self._relevance_bar

    def _show(self, sentence: Sentence) -> list[str]:
        """What of `sentence` may be shown now: nothing, or it with whatever was held back for it."""
        text: str | None = None
        if sentence.refusal or sentence.supported:
            text = _rewrite_markers(sentence, self._renumber)
        elif self.unsupported == "mark":
            text = f"{_rewrite_markers(sentence, self._renumber)} {UNVERIFIED}"
        self._report.append(
            {
                "text": text if text is not None else sentence.claim,
                "citations": [self._renumber[n] for n in sentence.supported],
                "supported": bool(sentence.supported) or sentence.refusal,
            }
        )
        self._refusals += sentence.refusal
        if text is None:
            return []
        piece = (sentence.separator if self._shown or self._held else "") + text
        if not sentence.supported and not self._shown:
            self._held.append(piece)
            return []
        if sentence.supported:
            self._supported += 1
            self._previous = sentence.claim
        released, self._held = [*self._held, piece], []
        self._shown += released
        return released


def check_citations(
    raw: str,
    sources: Sequence[Source],
    checker: SupportChecker,
    unsupported: Literal["mark", "remove"] = "remove",
    question: str = "",
) -> CheckedAnswer:
    """A whole answer with citations checked, renumbered by first use, and unsupported text handled."""
    check = CitationCheck(sources, checker, unsupported, question)
    check.finish(raw)  # all sentences in one batch: one call to the embedding model
    return check.result()


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
