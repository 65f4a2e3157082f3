"""The objects answering produces: Passages (retrieved chunks), Citations and the Answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from ingest.links import deep_link

CANNOT_ANSWER = "I couldn't find that in the ingested articles."


@dataclass(frozen=True, slots=True)
class Turn:
    """One earlier exchange of a conversation, for follow-up questions."""

    question: str
    answer: str


@dataclass(slots=True)
class Passage:
    """A retrieved chunk with its scores and its article's metadata; `start`/`end` index the article text."""

    chunk_id: str
    article_id: str
    text: str
    start: int
    end: int
    title: str
    url: str | None = None
    path: str | None = None
    source: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    score: float = 0.0
    dense_score: float | None = None
    lexical_score: float | None = None
    # Some of the text reads like instructions to an AI, as flagged at ingest; None when not known.
    instruction_like: bool | None = None


@dataclass(slots=True)
class Citation:
    """Source n of an answer: `quote` is exactly the article text between `start` and `end`."""

    n: int
    article_id: str
    title: str
    quote: str
    start: int
    end: int
    score: float
    url: str | None = None
    path: str | None = None
    source: str | None = None
    published_at: datetime | None = None
    # The URL with a text fragment that scrolls a browser to the quote (web articles); None for files.
    link: str | None = None

    @classmethod
    def of(cls, n: int, passage: Passage, *, quote: str, start: int, end: int, score: float) -> Citation:
        """Source n quoting `quote` (article text[start:end]) from the article of `passage`, with a deep link to
        the quote when the article came from the web."""
        inside = passage.start <= start <= passage.start + len(passage.text)
        before = passage.text[: start - passage.start] if inside else ""
        return cls(
            n=n,
            article_id=passage.article_id,
            title=passage.title,
            quote=quote,
            start=start,
            end=end,
            score=round(score, 4),
            url=passage.url,
            path=passage.path,
            source=passage.source,
            published_at=passage.published_at,
            link=deep_link(passage.url, quote, before=before) if passage.url else None,
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["published_at"] = self.published_at.isoformat() if self.published_at else None
        return out


@dataclass(slots=True)
class Answer:
    question: str
    text: str
    refused: bool
    citations: list[Citation] = field(default_factory=list)
    passages: list[Passage] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
    # per answer sentence: {"text", "citations": [n...], "supported": bool} (LLM answers)
    sentences: list[dict[str, Any]] = field(default_factory=list)
    notice: str | None = None
    # The asked fact itself, as the article words it ("1:59:40.2"), when the answer states one (extractive answers).
    short_answer: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "question": self.question,
            "answer": self.text,
            "refused": self.refused,
            "short_answer": self.short_answer,
            "citations": [c.to_dict() for c in self.citations],
            "passages": [
                {
                    "article_id": p.article_id,
                    "title": p.title,
                    "url": p.url,
                    "text": p.text,
                    "score": round(p.score, 6),
                }
                for p in self.passages
            ],
            "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
        }
        if self.sentences:
            out["sentences"] = self.sentences
        if self.notice:
            out["notice"] = self.notice
        return out
