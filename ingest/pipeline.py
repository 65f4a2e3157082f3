"""Ingest: load -> skip unchanged -> chunk -> embed -> write, in batches, reporting every failure."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ingest.chunking import chunk_articles
from ingest.embedding import Embedder
from ingest.loaders import LoadFailure, LoadResult
from ingest.models import Article
from ingest.store import Store

# Articles looked up in the catalog at once, and chunks embedded and written per batch.
_LOOKUP_BATCH = 64
_WRITE_BATCH_CHUNKS = 512


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: list[LoadFailure] = field(default_factory=list)
    chunks: int = 0
    tokens: int = 0
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
            "seconds": round(self.seconds, 3),
        }


Progress = Callable[[int, str], None]


def ingest_articles(
    results: Iterable[LoadResult],
    store: Store,
    embedder: Embedder,
    progress: Progress | None = None,
) -> IngestReport:
    """Index what `results` yields. `progress(n, label)` is told of every n inputs handled."""
    report = IngestReport()
    started = time.perf_counter()
    seen: dict[str, str] = {}  # id -> hash, so the same article twice in one run is stored once
    lookup: list[Article] = []
    to_write: list[tuple[Article, bool]] = []  # (article, replaces an older version)
    aliases: list[tuple[str, str]] = []  # (path, article id) of copies of articles already stored or queued

    def flush_lookup() -> None:
        known = store.indexed_hashes([a.id for a in lookup])
        for article in lookup:
            old = known.get(article.id)
            if old == article.content_hash:
                report.unchanged += 1
                if article.path:
                    aliases.append((article.path, article.id))
            else:
                to_write.append((article, old is not None))
        lookup.clear()

    def flush_write() -> None:
        if not to_write:
            return
        articles = [a for a, _ in to_write]
        chunked = chunk_articles(articles, embedder, store.plan)
        texts = [c.embed_text for chunks in chunked for c in chunks]
        vectors = embedder.embed(texts)
        store.write(list(zip(articles, chunked, strict=True)), vectors)
        for (article, replaced), chunks in zip(to_write, chunked, strict=True):
            # An edited file gets a new content id: its previous version goes, and it counts as an update.
            if article.whole_file and article.path and (old := store.catalog.superseded(article.path, article.id)):
                store.forget(old)
                replaced = True
            report.updated += replaced
            report.added += not replaced
            report.chunks += len(chunks)
            report.tokens += sum(c.token_count for c in chunks)
        to_write.clear()

    for result in results:
        if isinstance(result, LoadFailure):
            report.failed.append(result)
        elif seen.get(result.id) == result.content_hash:
            report.unchanged += 1
            if result.path:
                aliases.append((result.path, result.id))
        else:
            if result.id in seen:  # a second, different version in one run: the later one wins
                lookup[:] = [a for a in lookup if a.id != result.id]
                to_write[:] = [(a, r) for a, r in to_write if a.id != result.id]
            seen[result.id] = result.content_hash
            lookup.append(result)
            if len(lookup) >= _LOOKUP_BATCH:
                flush_lookup()
            # Rough size check (about 4 chars a word piece) keeps each embed+write batch bounded.
            if sum(len(a.text) for a, _ in to_write) >= _WRITE_BATCH_CHUNKS * 800:
                flush_write()
        if progress:
            progress(1, result.title if isinstance(result, Article) else result.source)
    flush_lookup()
    flush_write()
    if aliases:
        store.catalog.remember_paths(aliases)
    report.seconds = time.perf_counter() - started
    return report
