"""The facade the front ends use: one Byline per settings, wiring store, retriever and answerer lazily.

Its parts can be handed in (`embedder`, `store`), so a test about plumbing can use a small fake embedder or an
ephemeral Chroma client; otherwise each is built from the settings on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cached_property
from typing import TYPE_CHECKING

from bot.answering.answerer import Answerer, StatusCallback, TextCallback
from bot.models import Answer, Turn
from bot.settings import Settings
from ingest.chunking import ChunkPlan
from ingest.documents import quiet_pdf_warnings
from ingest.embedding import Embedder
from ingest.loaders import LoadResult
from ingest.models import SearchFilters
from ingest.outlets import Outlets
from ingest.pipeline import IngestReport, ingest_articles
from ingest.progress import Progress
from ingest.sources import count_inputs, load_sources
from ingest.storage.catalog import Catalog, Headline
from ingest.storage.store import Store

if TYPE_CHECKING:
    # Imported when first used: their langchain_core imports are slow, and ingest needs neither.
    from langchain_core.runnables import Runnable

    from bot.chain import Question
    from bot.retrieval.retriever import BylineRetriever
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
        from ingest.storage.backends import open_catalog

        settings = self.settings
        window = self.embedder.max_tokens
        plan = ChunkPlan(
            max_tokens=min(settings.chunk.max_tokens or window, window),
            overlap_sentences=settings.chunk.overlap_sentences,
        )
        catalog = open_catalog(settings.store, settings.home)
        return Store(catalog, settings.store, home=settings.home, embedding_model=settings.embedding.model, plan=plan)

    @cached_property
    def outlets(self) -> Outlets:
        """Names the outlet of articles that come with a URL and no source (`ingest.site_names`)."""
        return Outlets(self.settings.ingest.site_names)

    @property
    def catalog(self) -> Catalog:
        return self.store.catalog

    @cached_property
    def retriever(self) -> BylineRetriever:
        from bot.retrieval.retriever import BylineRetriever

        return BylineRetriever(store=self.store, embedder=self.embedder, settings=self.settings.retrieval)

    @cached_property
    def extractive(self) -> Answerer:
        from bot.answering.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(self.embedder, self.settings.answer, read_more=self.retriever.leading_passages)

    @cached_property
    def answerer(self) -> Answerer:
        if self.settings.answerer == "llm":
            from bot.answering.llm_answerer import build_llm_answerer

            return build_llm_answerer(self.settings, embedder=self.embedder, fallback=self.extractive)
        return self.extractive

    @cached_property
    def chain(self) -> Runnable[str | Question, Answer]:
        """Question answering as a LangChain Runnable (see `bot.chain`): what `ask` runs."""
        from bot.chain import build_chain

        return build_chain(self.retriever, self.answerer)

    def ingest(self, sources: Sequence[str], progress: Progress | None = None) -> IngestReport:
        """Files, folders and URLs into the index. With `progress`, the inputs are counted first (files, JSONL
        lines; not URLs), so it can be told the total."""
        from ingest.web.loader import WebLoader, is_web_source
        from ingest.web.state import WebState

        max_bytes = self.settings.ingest.max_article_bytes
        total = count_inputs(sources, is_web_source, max_bytes) if progress else None
        state = WebState(self.catalog)
        with WebLoader(self.settings.web, state, self.store.indexed_hashes, outlets=self.outlets) as web:
            results = load_sources(sources, handlers=[web.handle], max_bytes=max_bytes)
            return self.ingest_results(results, progress, total=total)

    def ingest_results(
        self, results: Iterable[LoadResult], progress: Progress | None = None, *, total: int | None = None
    ) -> IngestReport:
        """Index what a loader yields; an article with a URL and no source gets its outlet named (`outlets`)."""
        with quiet_pdf_warnings():
            return ingest_articles(self.outlets.fill_all(results), self.store, self.embedder, progress, total=total)

    def ask(
        self,
        question: str,
        *,
        filters: SearchFilters | None = None,
        history: Sequence[Turn] = (),
        k: int | None = None,
        on_text: TextCallback | None = None,
        on_status: StatusCallback | None = None,
    ) -> Answer:
        """The cited answer to `question`.

        `on_text` receives the answer's text as it grows, only text that passed the citation check, markers
        numbered as in the final answer: all of it together is the answer's text. Nothing sent is ever withdrawn;
        a refusal or an extractive answer sends nothing (show the returned Answer). `on_status` receives short
        lines as work moves on ("Searching 12,408 articles…", "Writing the answer…", "Checking citations…").
        Both are called on the calling thread.
        """
        if not question.strip():
            raise ValueError("the question is empty")
        if self.store.count() == 0:
            raise EmptyIndexError("no articles yet: run `byline ingest PATH...` first")
        request: Question = {
            "question": question,
            "history": history,
            "filters": filters,
            "k": k,
            "on_text": on_text,
            "on_status": on_status,
        }
        return self.chain.invoke(request)

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

    def recent_articles(self, n: int) -> list[Headline]:
        """The `n` indexed articles published last, newest first (what a list of the latest stories shows)."""
        return self.store.recent_articles(n)

    def stats(self) -> dict[str, object]:
        """What the index holds, and the backends it lives in with their health (each checked first: a backend
        that does not answer is a one-line CatalogError or StoreError naming it)."""
        backends = {"catalog": self.catalog.health(), "vectors": self.store.health()}
        stats = self.store.stats()
        stats["embedding_model"] = self.settings.embedding.model
        stats["home"] = str(self.settings.home)
        return {**backends, **stats}
