"""Fusion, diversity, recency and query analysis on hand-made inputs (no model, no index)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bot.models import Passage
from bot.retrieval.diversity import diversify
from bot.retrieval.fusion import fuse, reciprocal_rank_fusion, weighted_sum
from bot.retrieval.lexical import query_terms
from bot.retrieval.retriever import prefer_recent, rerank, wants_recent

DENSE = [("a", 0.9), ("b", 0.5), ("c", 0.1)]
LEXICAL = [("c", 12.0), ("a", 6.0), ("d", 0.0)]


def test_rrf_matches_hand_computed_scores() -> None:
    fused = reciprocal_rank_fusion([DENSE, LEXICAL], [1.0, 1.0], k=60)
    assert fused == pytest.approx({"a": 1 / 61 + 1 / 62, "b": 1 / 62, "c": 1 / 63 + 1 / 61, "d": 1 / 63})
    assert [item for item, _ in fuse([DENSE, LEXICAL], [1.0, 1.0], "rrf", 60)] == ["a", "c", "b", "d"]


def test_rrf_weights_can_flip_the_order() -> None:
    # a: 1/61 + 2/62 = 0.048651..., c: 1/63 + 2/61 = 0.048660...
    assert [item for item, _ in fuse([DENSE, LEXICAL], [1.0, 2.0], "rrf", 60)][:2] == ["c", "a"]
    assert [item for item, _ in fuse([DENSE, LEXICAL], [1.0, 0.0], "rrf", 60)] == ["a", "b", "c", "d"]


def test_weighted_sum_scales_each_ranking_to_unit_range() -> None:
    fused = weighted_sum([DENSE, LEXICAL], [1.0, 1.0])
    assert fused == pytest.approx({"a": 1.5, "b": 0.5, "c": 1.0, "d": 0.0})
    fused = weighted_sum([DENSE, LEXICAL], [2.0, 1.0])
    assert fused == pytest.approx({"a": 2.5, "b": 1.0, "c": 1.0, "d": 0.0})
    # b and c tie: the one seen first (b, in the first ranking) comes first.
    assert [item for item, _ in fuse([DENSE, LEXICAL], [2.0, 1.0], "weighted")] == ["a", "b", "c", "d"]


def test_fusion_of_empty_and_single_rankings() -> None:
    assert fuse([[], []], [1.0, 1.0], "rrf") == []
    assert fuse([[], []], [1.0, 1.0], "weighted") == []
    assert weighted_sum([[("x", 3.0)], []], [0.5, 1.0]) == {"x": 0.5}


def passage(article: str, start: int, end: int, text: str = "", score: float = 1.0, **kw: object) -> Passage:
    body = text or f"{article} words {start} to {end}"
    return Passage(f"{article}:{start}", article, body, start, end, title=article, score=score, **kw)  # type: ignore[arg-type]


def test_diversify_drops_overlapping_chunks_of_one_article() -> None:
    ranked = [passage("A", 0, 100), passage("A", 40, 140), passage("A", 90, 190), passage("B", 0, 50)]
    # A 40-140 shares 60 % of its length with A 0-100; A 90-190 shares only 10 %.
    kept = diversify(ranked, k=10, per_article=3)
    assert [(p.article_id, p.start) for p in kept] == [("A", 0), ("A", 90), ("B", 0)]


def test_diversify_drops_the_same_text_in_another_article() -> None:
    wire = "The central bank raised its main interest rate by half a point on Tuesday, its third rise this year."
    ranked = [
        passage("A", 0, len(wire), wire),
        passage("B", 10, 10 + len(wire), "Reuters - " + wire),
        passage("C", 0, 60, "The central bank said inflation would slow next year, officials added."),
    ]
    assert [p.article_id for p in diversify(ranked, k=3, per_article=2)] == ["A", "C"]


def test_diversify_caps_passages_per_article_and_keeps_order() -> None:
    ranked = [passage("A", i * 100, i * 100 + 90) for i in range(4)] + [passage("B", 0, 90), passage("C", 0, 90)]
    kept = diversify(ranked, k=4, per_article=2)
    assert [(p.article_id, p.start) for p in kept] == [("A", 0), ("A", 100), ("B", 0), ("C", 0)]
    assert len(diversify(ranked, k=2, per_article=2)) == 2


def test_recency_prefers_newer_articles_by_half_life() -> None:
    now = datetime(2019, 12, 1, tzinfo=UTC)
    ranked = [
        passage("old", 0, 10, score=1.0, published_at=now - timedelta(days=30)),
        passage("new", 0, 10, score=0.8, published_at=now),
        passage("undated", 0, 10, score=0.9),
        # newer still, but not clearly relevant: it does not set the reference date, and gains nothing from it
        passage("newest-off-topic", 0, 10, score=0.3, published_at=now + timedelta(days=60)),
    ]
    rescored = prefer_recent(ranked, half_life_days=30)
    assert [p.article_id for p in rescored] == ["new", "old", "undated", "newest-off-topic"]
    assert [p.score for p in rescored] == pytest.approx([0.8, 0.75, 0.45, 0.3])


def test_recency_cues() -> None:
    assert wants_recent("What is the latest on the Brexit talks?")
    assert wants_recent("Who currently leads the party?")
    assert not wants_recent("Who won the 2019 Chicago Marathon?")


class LengthReranker:
    """Scores a text by its length: a stand-in with an obvious order."""

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        return [float(len(t)) for t in texts]


def test_rerank_reorders_only_the_head() -> None:
    ranked = [passage("A", 0, 5, "short"), passage("B", 0, 9, "much longer"), passage("C", 0, 99, "x" * 99)]
    reranked = rerank("q", ranked, LengthReranker(), depth=2)
    assert [p.article_id for p in reranked] == ["B", "A", "C"]
    assert reranked[0].score == 11.0


@pytest.mark.parametrize(
    ("question", "terms"),
    [
        ("What did the U.S. Senate say?", ["u.s", "senate", "say"]),
        ("Is K2-18b's atmosphere wet?", ["k2-18b", "atmosphere", "wet"]),
        ("How many died in the 2019 fire, and how many in 2018?", ["many", "died", "2019", "fire", "2018"]),
        ('NEAR("a" b) OR title:* AND ^x -"', ["near", "b", "title", "x"]),
        ("the of and ?!", []),
        ("", []),
    ],
)
def test_query_terms(question: str, terms: list[str]) -> None:
    assert query_terms(question) == terms
