"""Fusing the dense and lexical rankings into one: weighted reciprocal-rank fusion or a normalised weighted sum."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

# One index's answer: (item id, score), best first. Scores of different indexes are not comparable.
Ranking = Sequence[tuple[str, float]]


def reciprocal_rank_fusion(rankings: Sequence[Ranking], weights: Sequence[float], k: int) -> dict[str, float]:
    """Sum over rankings of weight / (k + rank); ranks start at 1, an item a ranking lacks gets nothing from it."""
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, (item, _) in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


def weighted_sum(rankings: Sequence[Ranking], weights: Sequence[float]) -> dict[str, float]:
    """Sum of weight x score, each ranking's scores min-max scaled to [0, 1]; a missing item counts as 0."""
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        if not ranking:
            continue
        scores = [score for _, score in ranking]
        low, high = min(scores), max(scores)
        for item, score in ranking:
            scaled = (score - low) / (high - low) if high > low else 1.0
            fused[item] = fused.get(item, 0.0) + weight * scaled
    return fused


def fuse(
    rankings: Sequence[Ranking],
    weights: Sequence[float],
    method: Literal["rrf", "weighted"] = "rrf",
    rrf_k: int = 60,
) -> list[tuple[str, float]]:
    """One ranking of every item, best first; ties keep the order in which the items were first seen."""
    fused = reciprocal_rank_fusion(rankings, weights, rrf_k) if method == "rrf" else weighted_sum(rankings, weights)
    # dicts keep insertion order, so a stable sort breaks ties by first appearance.
    return sorted(fused.items(), key=lambda item: -item[1])
