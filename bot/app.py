"""The facade the front ends use: one Byline per settings, wiring store, retriever and answerer lazily."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Protocol

from bot.models import Answer, Passage, SearchFilters, Turn
from bot.settings import Settings
from ingest.catalog import Catalog
from ingest.embedding import Embedder
from ingest.loaders import LoadResult, load_sources
from ingest.pipeline import IngestReport, Progress, ingest_articles
from ingest.store import Store

if TYPE_CHECKING:
    from bot.retriever import BylineRetriever  # its langchain_core imports are slow, and ingest needs none


class EmptyIndexError(RuntimeError):
    """Asked before anything was ingested."""


class Answerer(Protocol):
    def condense(self, question: str, history: Sequence[Turn]) -> str: ...

    def answer(
        self,
        question: str,
        passages: list[Passage],
        history: Sequence[Turn] = (),
        on_token: Callable[[str], None] | None = None,
    ) -> Answer: ...


class Byline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def embedder(self) -> Embedder:
        return Embedder(self.settings.embedding)

    @cached_property
    def store(self) -> Store:
        return Store(self.settings, model_window=self.embedder.max_tokens)

    @property
    def catalog(self) -> Catalog:
        return self.store.catalog

    @cached_property
    def retriever(self) -> BylineRetriever:
        from bot.retriever import BylineRetriever

        return BylineRetriever(store=self.store, embedder=self.embedder, settings=self.settings.retrieval)

    @cached_property
    def extractive(self) -> Answerer:
        from bot.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(self.embedder, self.settings.answer)

    @cached_property
    def answerer(self) -> Answerer:
        if self.settings.answerer == "llm":
            from bot.llm_answerer import build_llm_answerer

            return build_llm_answerer(self.settings, embedder=self.embedder, fallback=self.extractive)
        return self.extractive

    def ingest(self, sources: Iterable[str], progress: Progress | None = None) -> IngestReport:
        # importing ingest.web registers its URL loader; the session gives it these settings and catalog
        from ingest.web import in_this_session, web_session

        with web_session(self.settings.web, self.catalog, self.store.indexed_hashes):
            return self.ingest_results(in_this_session(load_sources(sources)), progress)

    def ingest_results(self, results: Iterable[LoadResult], progress: Progress | None = None) -> IngestReport:
        return ingest_articles(results, self.store, self.embedder, progress)

    def ask(
        self,
        question: str,
        *,
        filters: SearchFilters | None = None,
        history: Sequence[Turn] = (),
        k: int | None = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        question = question.strip()
        if not question:
            raise ValueError("the question is empty")
        started = time.perf_counter()
        if self.store.count() == 0:
            raise EmptyIndexError("no articles yet: run `byline ingest PATH...` first")
        query = self.answerer.condense(question, history)
        passages = self.retriever.search(query, k=k, filters=filters)
        retrieved = time.perf_counter()
        answer = self.answerer.answer(question, passages, history, on_token)
        done = time.perf_counter()
        # Keep the answerer's own finer timings (an LLM's generate/check) beside the stages measured here.
        answer.timings_ms.update(
            retrieve=(retrieved - started) * 1000,
            answer=(done - retrieved) * 1000,
            total=(done - started) * 1000,
        )
        return answer

    def forget(self, refs: Sequence[str]) -> tuple[list[str], list[str]]:
        return self.store.forget(refs)

    def stats(self) -> dict[str, object]:
        stats = self.catalog.stats(self.store.collection_name)
        stats["collection"] = self.store.collection_name
        stats["embedding_model"] = self.settings.embedding.model
        stats["home"] = str(self.settings.home)
        return stats
