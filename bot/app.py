"""The facade the front ends use: one Byline per settings, wiring store, retriever and answerer lazily.

Its parts can be handed in (`embedder`, `store`), so a test about plumbing can use a small fake embedder or an
ephemeral Chroma client; otherwise each is built from the settings on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from bot.answering.answerer import Answerer, TokenCallback
from bot.chain import Question, build_chain
from bot.models import Answer, Turn
from bot.retrieval.retriever import BylineRetriever
from bot.settings import Settings
from ingest.chunking import ChunkPlan
from ingest.embedding import Embedder
from ingest.loaders import LoadResult, load_sources
from ingest.models import SearchFilters
from ingest.pipeline import IngestReport, Progress, ingest_articles
from ingest.storage.catalog import Catalog
from ingest.storage.store import Store

if TYPE_CHECKING:
    from langchain_core.runnables import Runnable

    from ingest.maintenance import Diagnosis, ReindexReport
    from ingest.maintenance import Progress as ReindexProgress


class EmptyIndexError(RuntimeError):
    """Asked before anything was ingested."""


class Byline:
    def __init__(self, settings: Settings, *, embedder: Embedder | None = None, store: Store | None = None) -> None:
        self.settings = settings
        if embedder is not None:
            self.__dict__["embedder"] = embedder
        if store is not None:
            self.__dict__["store"] = store

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(self.settings.embedding)

    @cached_property
    def store(self) -> Store:
        from ingest.storage.sqlite import SQLiteCatalog

        settings = self.settings
        window = self.embedder.max_tokens
        plan = ChunkPlan(
            max_tokens=min(settings.chunk.max_tokens or window, window),
            overlap_sentences=settings.chunk.overlap_sentences,
        )
        catalog = SQLiteCatalog(settings.home / "catalog.sqlite")
        return Store(catalog, settings.store, home=settings.home, embedding_model=settings.embedding.model, plan=plan)

    @property
    def catalog(self) -> Catalog:
        return self.store.catalog

    @cached_property
    def retriever(self) -> BylineRetriever:
        return BylineRetriever(store=self.store, embedder=self.embedder, settings=self.settings.retrieval)

    @cached_property
    def extractive(self) -> Answerer:
        from bot.answering.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(self.embedder, self.settings.answer)

    @cached_property
    def answerer(self) -> Answerer:
        if self.settings.answerer == "llm":
            from bot.answering.llm_answerer import build_llm_answerer

            return build_llm_answerer(self.settings, embedder=self.embedder, fallback=self.extractive)
        return self.extractive

    @cached_property
    def chain(self) -> Runnable[str | Question, Answer]:
        """Question answering as a LangChain Runnable (see `bot.chain`): what `ask` runs."""
        return build_chain(self.retriever, self.answerer)

    def ingest(self, sources: Iterable[str], progress: Progress | None = None) -> IngestReport:
        from ingest.web.loader import WebLoader
        from ingest.web.state import WebState

        with WebLoader(self.settings.web, WebState(self.catalog), self.store.indexed_hashes) as web:
            return self.ingest_results(load_sources(sources, handlers=[web.handle]), progress)

    def ingest_results(self, results: Iterable[LoadResult], progress: Progress | None = None) -> IngestReport:
        return ingest_articles(results, self.store, self.embedder, progress)

    def ask(
        self,
        question: str,
        *,
        filters: SearchFilters | None = None,
        history: Sequence[Turn] = (),
        k: int | None = None,
        on_token: TokenCallback | None = None,
    ) -> Answer:
        if not question.strip():
            raise ValueError("the question is empty")
        if self.store.count() == 0:
            raise EmptyIndexError("no articles yet: run `byline ingest PATH...` first")
        return self.chain.invoke(
            {"question": question, "history": history, "filters": filters, "k": k, "on_token": on_token}
        )

    def forget(self, refs: Sequence[str]) -> tuple[list[str], list[str]]:
        return self.store.forget(refs)

    def reindex(self, progress: ReindexProgress | None = None) -> ReindexReport:
        """Rebuild the vectors from the catalog's chunk texts (see `ingest.maintenance`)."""
        from ingest.maintenance import reindex

        return reindex(self.store, self.embedder, progress)

    def doctor(self, *, fix: bool = False) -> Diagnosis:
        """Check the index against the catalog; with `fix`, repair what can be repaired first."""
        from ingest.maintenance import doctor

        return doctor(self.store, self.embedder, fix=fix)

    def close(self) -> None:
        """Let go of the vector store and the catalog (a long-lived process need not call this)."""
        self.store.close()
        self.catalog.close()

    def stats(self) -> dict[str, object]:
        stats = self.store.stats()
        stats["embedding_model"] = self.settings.embedding.model
        stats["home"] = str(self.settings.home)
        return stats
