"""Retrieval over the index, exposed as a langchain BaseRetriever so it composes with langchain chains."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from bot.models import Passage, SearchFilters
from bot.settings import RetrievalSettings
from ingest.catalog import ChunkRow
from ingest.embedding import Embedder
from ingest.store import Store


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
    )


def cap_per_article(passages: list[Passage], per_article: int, k: int) -> list[Passage]:
    """The best k passages with at most `per_article` from any one article, order kept."""
    taken: dict[str, int] = {}
    kept: list[Passage] = []
    for passage in passages:
        if taken.get(passage.article_id, 0) >= per_article:
            continue
        taken[passage.article_id] = taken.get(passage.article_id, 0) + 1
        kept.append(passage)
        if len(kept) == k:
            break
    return kept


class BylineRetriever(BaseRetriever):
    """Finds the passages most relevant to a question, best first."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    store: Store
    embedder: Embedder
    settings: RetrievalSettings
    filters: SearchFilters | None = None

    def search(self, query: str, k: int | None = None, filters: SearchFilters | None = None) -> list[Passage]:
        k = k or self.settings.k
        filters = filters if filters is not None else self.filters
        vector = self.embedder.embed_query(query)
        hits = self.store.dense_search(vector, max(self.settings.candidates, k), filters)
        rows = self.store.catalog.chunk_rows(self.store.collection_name, [chunk_id for chunk_id, _ in hits])
        passages = []
        for chunk_id, similarity in hits:
            if row := rows.get(chunk_id):
                passage = passage_from_row(row, similarity)
                passage.dense_score = similarity
                passages.append(passage)
        return cap_per_article(passages, self.settings.per_article, k)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        return [passage_to_document(p) for p in self.search(query, k=kwargs.get("k"))]


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
        },
    )
