"""Hybrid retrieval over the index (dense Chroma + lexical FTS5 BM25, fused), as a langchain BaseRetriever.

search: both indexes give their best candidates under the same filters -> fusion -> only current article versions
-> optional recency preference -> optional cross-encoder rerank -> no near-duplicates, at most `per_article` each.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from bot.models import Passage
from bot.retrieval.diversity import diversify
from bot.retrieval.fusion import fuse
from bot.retrieval.lexical import query_terms
from bot.retrieval.rerank import CrossEncoderReranker, Reranker
from bot.settings import RetrievalSettings
from ingest.embedding import Embedder
from ingest.models import SearchFilters
from ingest.storage.catalog import ChunkRow, LexicalQuery
from ingest.storage.store import Store

# Questions that ask for the newest state of things; only these get the (optional) recency preference.
RECENCY_CUES = re.compile(
    r"\b(latest|newest|most recent|recent(ly)?|current(ly)?|nowadays|now|today|this (week|month|year)|so far|yet)\b",
    re.IGNORECASE,
)


def passage_from_row(row: ChunkRow, score: float) -> Passage:
    return Passage(
        chunk_id=row.chunk_id,
        article_id=row.article_id,
        text=row.text,
        start=row.start,
        end=row.end,
        title=row.title,
        url=row.url,
        path=row.path,
        source=row.source,
        author=row.author,
        published_at=datetime.fromisoformat(row.published_at) if row.published_at else None,
        score=score,
        instruction_like=row.instruction_like,
    )


def wants_recent(query: str) -> bool:
    return RECENCY_CUES.search(query) is not None


def prefer_recent(passages: list[Passage], half_life_days: float) -> list[Passage]:
    """Scale each score by 0.5 + 0.5 * 2^(-age / half-life), so a passage keeps at least half its score.

    Age is counted back from the newest of the clearly relevant passages (scoring at least half the best), not
    from today, so an archive still prefers its newer reports on the subject; undated passages count as oldest.
    """
    if not passages:
        return passages
    best = max(p.score for p in passages)
    relevant = [p.published_at.timestamp() for p in passages if p.published_at and p.score >= best / 2]
    if not relevant:
        return passages
    newest = max(relevant)
    for passage in passages:
        if passage.published_at is None:
            factor = 0.5
        else:
            age_days = max(newest - passage.published_at.timestamp(), 0.0) / 86400
            factor = 0.5 + 0.5 * math.pow(2.0, -age_days / half_life_days)
        passage.score *= factor
    return sorted(passages, key=lambda p: -p.score)


def rerank(query: str, passages: list[Passage], reranker: Reranker, depth: int) -> list[Passage]:
    """The top `depth` passages reordered by the reranker's scores (which become their scores); the rest after."""
    head, tail = passages[:depth], passages[depth:]
    for passage, score in zip(head, reranker.scores(query, [p.text for p in head]), strict=True):
        passage.score = score
    return sorted(head, key=lambda p: -p.score) + tail


class BylineRetriever(BaseRetriever):
    """Finds the passages most relevant to a question, best first."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: Store
    embedder: Embedder
    settings: RetrievalSettings
    filters: SearchFilters | None = None
    k: int | None = None
    _reranker: Reranker | None = PrivateAttr(default=None)
    # BM25 runs here while the query is embedded and searched densely: both sides wait in C code (SQLite,
    # OpenVINO, Chroma) with the GIL released, so on two cores a search costs the slower side, not the sum.
    _lexical_worker: ThreadPoolExecutor = PrivateAttr(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="byline-bm25")
    )

    def model_post_init(self, context: Any, /) -> None:
        if model := self.settings.rerank_model:  # loaded on first use, so building it costs nothing
            self._reranker = CrossEncoderReranker(model, device=self.embedder.settings.device)

    def search(self, query: str, k: int | None = None, filters: SearchFilters | None = None) -> list[Passage]:
        """The best `k` passages for `query` within `filters`, best first."""
        settings = self.settings
        k = k or self.k or settings.k
        filters = filters if filters is not None else self.filters
        depth = max(settings.candidates, k)
        lexical_query = LexicalQuery(
            query_terms(query), depth, filters, settings.title_weight, settings.common_term_share
        )
        lexical_search = self._lexical_worker.submit(self.store.lexical_search, lexical_query)
        vector = self.embedder.embed_query(query)
        dense = self.store.dense_search(vector, depth, filters)
        lexical = lexical_search.result()
        fused = fuse(
            [dense, lexical], [settings.dense_weight, settings.lexical_weight], settings.fusion, settings.rrf_k
        )
        rows = self.store.chunk_rows([chunk_id for chunk_id, _ in fused])
        dense_scores, lexical_scores = dict(dense), dict(lexical)
        passages = []
        for chunk_id, score in fused:
            if row := rows.get(chunk_id):  # a chunk of a superseded version is not returned
                passage = passage_from_row(row, score)
                passage.dense_score = dense_scores.get(chunk_id)
                passage.lexical_score = lexical_scores.get(chunk_id)
                passages.append(passage)
        if settings.recency and wants_recent(query):
            passages = prefer_recent(passages, settings.recency_half_life_days)
        if self._reranker is not None:
            passages = rerank(query, passages, self._reranker, max(settings.rerank_depth, k))
        chosen = diversify(passages, k, settings.per_article)
        self._fill_dense_scores(vector, chosen)
        return chosen

    def leading_passages(self, query: str, passages: Sequence[Passage], articles: int) -> list[Passage]:
        """The other current passages of the first `articles` articles among `passages`, in article order.

        For a reader: the fact asked for may sit in a passage of the right article that the per-article cap kept
        out of `passages`. They are not ranked (score 0), but carry their cosine similarity to `query`.
        """
        leading = list(dict.fromkeys(p.article_id for p in passages))[:articles]
        if not leading:
            return []
        have = {p.chunk_id for p in passages}
        more = [passage_from_row(row, 0.0) for row in self.store.article_chunks(leading) if row.chunk_id not in have]
        self._fill_dense_scores(self.embedder.embed_query(query), more)
        return more

    def _fill_dense_scores(self, vector: np.ndarray, passages: list[Passage]) -> None:
        """Give passages found only by BM25 their cosine similarity too, so answerers can rely on dense_score."""
        missing = {p.chunk_id: p for p in passages if p.dense_score is None}
        for chunk_id, stored in self.store.vectors(list(missing)).items():
            missing[chunk_id].dense_score = float(np.dot(stored, vector))

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return [passage_to_document(p) for p in self.search(query, k=kwargs.get("k"), filters=kwargs.get("filters"))]


def passage_to_document(passage: Passage) -> Document:
    return Document(
        page_content=passage.text,
        id=passage.chunk_id,
        metadata={
            "article_id": passage.article_id,
            "title": passage.title,
            "url": passage.url,
            "path": passage.path,
            "source": passage.source,
            "published_at": passage.published_at.isoformat() if passage.published_at else None,
            "start": passage.start,
            "end": passage.end,
            "score": passage.score,
            "dense_score": passage.dense_score,
            "lexical_score": passage.lexical_score,
        },
    )
