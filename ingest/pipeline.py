"""Ingest: load -> skip unchanged -> chunk -> embed -> write, in bounded batches, reporting every failure.

Two stages overlap: a producer thread loads, parses, looks up and chunks articles while the calling thread
embeds and writes the previous batch. The queue between them holds at most a few batches, so memory stays
bounded however large the corpus. Chunks whose text is unchanged in an updated article keep their vectors.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ingest.chunking import chunk_articles
from ingest.embedding import Embedder
from ingest.loaders import LoadFailure, LoadResult
from ingest.models import Article, Chunk
from ingest.store import Store

# Articles looked up in the catalog at once; chunks embedded and written per batch (one Chroma upsert, one
# catalog transaction); batches waiting between the stages.
_LOOKUP_BATCH = 64
_WRITE_BATCH_CHUNKS = 1024
_QUEUE_BATCHES = 2


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[LoadFailure] = field(default_factory=list)
    chunks: int = 0
    tokens: int = 0
    reused_chunks: int = 0  # chunks of updated articles whose vectors were kept, not recomputed
    embedded_tokens: int = 0  # word pieces through the model, special tokens in, padding out (onnx/openvino)
    embed_seconds: float = 0.0  # time inside the model
    seconds: float = 0.0

    @property
    def articles(self) -> int:
        return self.added + self.updated + self.unchanged

    def to_dict(self) -> dict[str, object]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "failed": [{"source": f.source, "reason": f.reason} for f in self.failed],
            "chunks": self.chunks,
            "tokens": self.tokens,
            "reused_chunks": self.reused_chunks,
            "embedded_tokens": self.embedded_tokens,
            "embed_seconds": round(self.embed_seconds, 3),
            "seconds": round(self.seconds, 3),
        }


Progress = Callable[[int, str], None]


@dataclass
class _Batch:
    """Articles to write with their chunks; `replaces[i]` says article i had an older version indexed."""

    articles: list[Article] = field(default_factory=list)
    replaces: list[bool] = field(default_factory=list)
    chunks: list[list[Chunk]] = field(default_factory=list)


@dataclass
class _Seen:
    """What the producer learnt about inputs that need no writing: counted by the consumer, in order."""

    unchanged: int = 0
    failed: list[LoadFailure] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (path, id) of copies of articles in this run


_DONE = object()


def ingest_articles(
    results: Iterable[LoadResult],
    store: Store,
    embedder: Embedder,
    progress: Progress | None = None,
) -> IngestReport:
    """Index what `results` yields. `progress(n, label)` is told of every n inputs handled."""
    report = IngestReport()
    started = time.perf_counter()
    store.collection  # noqa: B018 - open (and reconcile) the index before the producer touches the catalog
    stop = threading.Event()
    handoff: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_BATCHES)
    producer = threading.Thread(
        target=_produce, args=(results, store, embedder, handoff, stop), name="byline-ingest-producer", daemon=True
    )
    producer.start()
    counted: set[str] = set()  # ids written this run: a later version in the same run is not counted twice
    aliases: list[tuple[str, str]] = []  # recorded once the articles they name are written
    try:
        for item in _drain(handoff):
            if isinstance(item, _Seen):
                report.unchanged += item.unchanged
                report.failed += item.failed
                aliases += item.aliases
                if progress:
                    for label in item.labels:
                        progress(1, label)
            else:
                assert isinstance(item, _Batch)
                _write(item, store, embedder, report, counted)
        if aliases:
            store.catalog.remember_paths(aliases)
    finally:
        stop.set()
        producer.join(timeout=5)
    report.seconds = time.perf_counter() - started
    return report


def _drain(handoff: queue.Queue[object]) -> Iterator[object]:
    while (item := handoff.get()) is not _DONE:
        if isinstance(item, BaseException):
            raise item
        yield item


def _produce(
    results: Iterable[LoadResult],
    store: Store,
    embedder: Embedder,
    handoff: queue.Queue[object],
    stop: threading.Event,
) -> None:
    """Load, skip what is unchanged, chunk; hand batches over. Runs on its own thread."""

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped

    seen: dict[str, str] = {}  # id -> hash, so the same article twice in one run is stored once
    lookup: list[Article] = []
    pending = _Batch()
    pending_chars = 0
    news = _Seen()

    def flush_lookup() -> None:
        nonlocal pending_chars
        known = store.indexed_hashes([a.id for a in lookup])
        aliases = []
        for article in lookup:
            old = known.get(article.id)
            if old == article.content_hash:
                news.unchanged += 1
                if article.path:
                    aliases.append((article.path, article.id))
            else:
                pending.articles.append(article)
                pending.replaces.append(old is not None)
                pending_chars += len(article.text)
        if aliases:
            store.catalog.remember_paths(aliases)
        lookup.clear()

    def flush_pending(final: bool = False) -> None:
        nonlocal pending, pending_chars, news
        if pending.articles:
            pending.chunks = chunk_articles(pending.articles, embedder, store.plan)
        if news.labels or news.failed or news.unchanged or news.aliases:
            put(news)
            news = _Seen()
        if pending.articles:
            put(pending)
            pending, pending_chars = _Batch(), 0
        if final:
            put(_DONE)

    try:
        for result in results:
            if isinstance(result, LoadFailure):
                news.failed.append(result)
                news.labels.append(result.source)
                continue
            news.labels.append(result.title)
            if len(news.labels) >= _LOOKUP_BATCH * 4:  # keep progress moving through long unchanged runs
                put(news)
                news = _Seen()
            if seen.get(result.id) == result.content_hash:
                news.unchanged += 1
                if result.path:
                    news.aliases.append((result.path, result.id))
                continue
            if result.id in seen:  # a second, different version in one run: the later one wins
                lookup[:] = [a for a in lookup if a.id != result.id]
                keep = [i for i, a in enumerate(pending.articles) if a.id != result.id]
                pending_chars -= sum(len(a.text) for a in pending.articles if a.id == result.id)
                pending.articles = [pending.articles[i] for i in keep]
                pending.replaces = [pending.replaces[i] for i in keep]
            seen[result.id] = result.content_hash
            lookup.append(result)
            if len(lookup) >= _LOOKUP_BATCH:
                flush_lookup()
            # Rough size check (about 4 chars a word piece, ~200 pieces a chunk) keeps each batch bounded.
            if pending_chars >= _WRITE_BATCH_CHUNKS * 800:
                flush_pending()
        flush_lookup()
        flush_pending(final=True)
    except _Stopped:
        return
    except BaseException as exc:  # handed to the consumer, which raises it where the caller can see it
        try:
            put(exc)
        except _Stopped:
            return


class _Stopped(Exception):
    """The consumer has gone; the producer stops quietly."""


def embed_hash(text: str) -> str:
    """Names a chunk's embedded text, so an unchanged chunk of an updated article keeps its vector."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write(batch: _Batch, store: Store, embedder: Embedder, report: IngestReport, counted: set[str]) -> None:
    chunks = [c for cs in batch.chunks for c in cs]
    texts = [c.embed_text for c in chunks]
    hashes = [embed_hash(t) for t in texts]
    # An edited file gets a new content id: its previous version goes, and it counts as an update.
    superseded = {
        a.id: store.catalog.superseded(a.path, a.id) if a.whole_file and a.path else [] for a in batch.articles
    }
    earlier = [a.id for a, r in zip(batch.articles, batch.replaces, strict=True) if r]
    earlier += [old for olds in superseded.values() for old in olds]
    kept = store.vectors_by_embed_hash(earlier, set(hashes)) if earlier else {}
    todo = [i for i, h in enumerate(hashes) if h not in kept]
    vectors = np.empty((len(chunks), embedder.dimension), dtype=np.float32)
    if todo:
        tokens_before, embed_started = embedder.embedded_tokens, time.perf_counter()
        vectors[todo] = embedder.embed([texts[i] for i in todo])
        report.embed_seconds += time.perf_counter() - embed_started
        report.embedded_tokens += embedder.embedded_tokens - tokens_before
    for i, h in enumerate(hashes):
        if h in kept:
            vectors[i] = kept[h]
    store.write(list(zip(batch.articles, batch.chunks, strict=True)), vectors, hashes)
    for article, replaces, article_chunks in zip(batch.articles, batch.replaces, batch.chunks, strict=True):
        if superseded[article.id]:
            store.forget(superseded[article.id])
            replaces = True
        if article.id not in counted:
            counted.add(article.id)
            report.updated += replaces
            report.added += not replaces
        report.chunks += len(article_chunks)
        report.tokens += sum(c.token_count for c in article_chunks)
    report.reused_chunks += len(chunks) - len(todo)
