"""Keeping the top passages varied: no near-duplicates, and a cap on passages from any one article."""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Sequence

from bot.models import Passage
from ingest.text import word_pieces


def _shingles(text: str) -> set[str]:
    """The text's 5-word shingles; for a long text a fixed quarter of them (by hash), which estimates the
    overlap as well at a quarter of the cost."""
    words = word_pieces(text)
    grams = {" ".join(g) for g in zip(words, words[1:], words[2:], words[3:], words[4:], strict=False)}
    if len(grams) > 40:
        return {g for g in grams if zlib.crc32(g.encode()) & 3 == 0}
    return grams or {" ".join(words)}


def span_overlap(a: Passage, b: Passage) -> float:
    """Share of the shorter passage that the other covers, for two passages of one article."""
    shared = min(a.end, b.end) - max(a.start, b.start)
    shorter = min(a.end - a.start, b.end - b.start)
    return max(shared, 0) / shorter if shorter > 0 else 1.0


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
    kept_sizes: list[int] = []  # shingles per kept passage
    by_article: dict[str, list[Passage]] = {}
    # shingle -> kept passages having it: counting shared shingles costs one lookup per shingle, not per pair
    owners: dict[str, list[int]] = {}
    for passage in passages:
        if len(kept) == k:
            break
        same = by_article.setdefault(passage.article_id, [])
        if len(same) >= per_article or any(span_overlap(o, passage) >= max_span_overlap for o in same):
            continue
        shingles = _shingles(passage.text)
        shared: Counter[int] = Counter(i for shingle in shingles for i in owners.get(shingle, ()))
        if any(
            kept[i].article_id != passage.article_id and n / min(kept_sizes[i], len(shingles)) >= max_text_overlap
            for i, n in shared.items()
        ):
            continue
        for shingle in shingles:
            owners.setdefault(shingle, []).append(len(kept))
        kept.append(passage)
        kept_sizes.append(len(shingles))
        same.append(passage)
    return kept
