"""Keeping the top passages varied: no near-duplicates, and a cap on passages from any one article."""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.models import Passage

_WORD = re.compile(r"\w+")
_SHINGLE = 5  # words per shingle when comparing texts of different articles


def _shingles(text: str) -> frozenset[tuple[str, ...]]:
    words = _WORD.findall(text.casefold())
    if len(words) < _SHINGLE:
        return frozenset({tuple(words)})
    return frozenset(tuple(words[i : i + _SHINGLE]) for i in range(len(words) - _SHINGLE + 1))


def span_overlap(a: Passage, b: Passage) -> float:
    """Share of the shorter passage that the other covers, for two passages of one article."""
    shared = min(a.end, b.end) - max(a.start, b.start)
    shorter = min(a.end - a.start, b.end - b.start)
    return max(shared, 0) / shorter if shorter > 0 else 1.0


def text_overlap(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    """Share of the smaller text's word shingles that the other text has too."""
    smaller = min(len(a), len(b))
    return len(a & b) / smaller if smaller else 0.0


def diversify(
    passages: Sequence[Passage],
    k: int,
    per_article: int,
    max_span_overlap: float = 0.5,
    max_text_overlap: float = 0.8,
) -> list[Passage]:
    """The best k passages in the given order, skipping any that mostly repeats one already kept (overlapping
    chunks of one article, or the same text in two articles) and any beyond `per_article` from one article."""
    kept: list[Passage] = []
    kept_shingles: list[frozenset[tuple[str, ...]]] = []
    per: dict[str, int] = {}
    for passage in passages:
        if len(kept) == k:
            break
        if per.get(passage.article_id, 0) >= per_article:
            continue
        if any(
            other.article_id == passage.article_id and span_overlap(other, passage) >= max_span_overlap
            for other in kept
        ):
            continue
        shingles = _shingles(passage.text)
        if any(
            other.article_id != passage.article_id and text_overlap(seen, shingles) >= max_text_overlap
            for other, seen in zip(kept, kept_shingles, strict=True)
        ):
            continue
        kept.append(passage)
        kept_shingles.append(shingles)
        per[passage.article_id] = per.get(passage.article_id, 0) + 1
    return kept
