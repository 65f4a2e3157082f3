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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ingest.chunking import chunk_articles
from ingest.embedding import Embedder
from ingest.loaders import LoadFailure, LoadResult
from ingest.models import Article, Chunk
from ingest.progress import Progress, ProgressTracker, Reading
from ingest.storage.store import Store

# Articles looked up in the catalog at once; chunks embedded and written per batch (one Chroma upsert, one
# catalog transaction); batches waiting between the stages; seconds between progress reports while reading.
_LOOKUP_BATCH = 64
_WRITE_BATCH_CHUNKS = 1024
_QUEUE_BATCHES = 2
_READING_TICK = 0.25


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


@dataclass
class _Record:
    """An article to write: whether it replaces an indexed version, and its chunks once chunked."""

    article: Article
    replaces: bool
    chunks: list[Chunk] = field(default_factory=list)


@dataclass
class _Seen:
    """What the producer learnt about inputs that need no writing: counted by the consumer, in order."""

    unchanged: int = 0
    failed: list[LoadFailure] = field(default_factory=list)
    inputs: int = 0
    aliases: list[tuple[str, str]] = field(default_factory=list)  # (path, id) of copies of articles in this run


_DONE = object()


def ingest_articles(
    results: Iterable[LoadResult],
    store: Store,
    embedder: Embedder,
    progress: Progress | None = None,
    *,
    total: int | None = None,
) -> IngestReport:
    """Index what `results` yields. `progress` is told how far it has got (`IngestProgress`): about once a
    second while reading, after each slice of chunks embedded, and before each write; `total` is how many
    inputs `results` will yield, when the caller counted them."""
    report = IngestReport()
    started = time.perf_counter()
    store.open()  # the index is opened (and reconciled) before the producer touches the catalog
    stop = threading.Event()
    handoff: queue.Queue[object] = queue.Queue(maxsize=_QUEUE_BATCHES)
    loader = _Producer(store, embedder, handoff, stop)
    producer = threading.Thread(target=loader.run, args=(results,), name="byline-ingest-producer", daemon=True)
    producer.start()
    tracker = ProgressTracker(progress, total, loader.reading) if progress else None
    counted: set[str] = set()  # ids written this run: a later version in the same run is not counted twice
    aliases: list[tuple[str, str]] = []  # recorded once the articles they name are written
    try:
        for item in _drain(handoff, _READING_TICK if tracker else None):
            if tracker and item is None:
                tracker.emit("reading")
            if isinstance(item, _Seen):
                report.unchanged += item.unchanged
                report.failed += item.failed
                aliases += item.aliases
                if tracker:
                    tracker.skipped(item.unchanged, len(item.failed))
            elif isinstance(item, list):
                _write(item, store, embedder, report, counted, tracker)
        store.remember_paths(aliases)
    finally:
        stop.set()
        producer.join(timeout=5)
    report.seconds = time.perf_counter() - started
    return report


def _drain(handoff: queue.Queue[object], tick: float | None) -> Iterator[object]:
    """What the producer hands over, in order; with `tick`, None after every `tick` seconds of waiting."""
    while True:
        try:
            item = handoff.get(timeout=tick)
        except queue.Empty:
            yield None
            continue
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


class _Producer:
    """Loads, skips what is unchanged, chunks, and hands batches of records over. Runs on its own thread."""

    def __init__(self, store: Store, embedder: Embedder, handoff: queue.Queue[object], stop: threading.Event) -> None:
        self.store = store
        self.embedder = embedder
        self.handoff = handoff
        self.stop = stop
        self.seen: dict[str, str] = {}  # id -> hash, so the same article twice in one run is stored once
        self.lookup: list[Article] = []  # waiting for one catalog look-up of what is indexed
        self.batch: list[_Record] = []  # changed articles waiting to be chunked and handed over
        self.batch_chars = 0
        self.news = _Seen()
        self.reading = Reading()  # how far it has got, for progress reports

    def run(self, results: Iterable[LoadResult]) -> None:
        try:
            for result in results:
                self.take(result)
            self.flush_lookup()
            self.flush(last=True)
            self.put(_DONE)
        except _Stopped:
            return
        except BaseException as exc:  # handed to the consumer, which raises it where the caller can see it
            try:
                self.put(exc)
            except _Stopped:
                return

    def take(self, result: LoadResult) -> None:
        news = self.news
        news.inputs += 1
        self.reading.count += 1
        if isinstance(result, LoadFailure):
            self.reading.latest = result.source
            news.failed.append(result)
            return
        self.reading.latest = result.title
        if news.inputs >= _LOOKUP_BATCH * 4:  # keep progress moving through long unchanged runs
            self.put(news)
            self.news = _Seen()
        if self.seen.get(result.id) == result.content_hash:
            self.news.unchanged += 1
            if result.path:
                self.news.aliases.append((result.path, result.id))
            return
        if result.id in self.seen:  # a second, different version in one run: the later one wins
            self.lookup = [a for a in self.lookup if a.id != result.id]
            dropped = [r for r in self.batch if r.article.id == result.id]
            self.batch = [r for r in self.batch if r.article.id != result.id]
            self.batch_chars -= sum(len(r.article.text) for r in dropped)
        self.seen[result.id] = result.content_hash
        self.lookup.append(result)
        if len(self.lookup) >= _LOOKUP_BATCH:
            self.flush_lookup()
        # Rough size check (about 4 chars a word piece, ~200 pieces a chunk) keeps each batch bounded.
        if self.batch_chars >= _WRITE_BATCH_CHUNKS * 800:
            self.flush()

    def flush_lookup(self) -> None:
        """Sort the looked-up articles into unchanged ones and ones to write."""
        known = self.store.indexed_hashes([a.id for a in self.lookup])
        aliases = []
        for article in self.lookup:
            old = known.get(article.id)
            if old == article.content_hash:
                self.news.unchanged += 1
                if article.path:
                    aliases.append((article.path, article.id))
            else:
                self.batch.append(_Record(article, replaces=old is not None))
                self.batch_chars += len(article.text)
        self.store.remember_paths(aliases)
        self.lookup = []

    def flush(self, *, last: bool = False) -> None:
        """Hand over what was learnt, then the batch, chunked."""
        if self.batch:
            chunked = chunk_articles([r.article for r in self.batch], self.embedder, self.store.plan)
            for record, chunks in zip(self.batch, chunked, strict=True):
                record.chunks = chunks
            self.reading.chunks += sum(map(len, chunked))
        self.reading.finished = last  # every chunk is counted: progress can tell what is left
        news = self.news
        if news.inputs or news.failed or news.unchanged or news.aliases:
            self.put(news)
            self.news = _Seen()
        if self.batch:
            self.put(self.batch)
            self.batch, self.batch_chars = [], 0

    def put(self, item: object) -> None:
        while not self.stop.is_set():
            try:
                self.handoff.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        raise _Stopped


class _Stopped(Exception):
    """The consumer has gone; the producer stops quietly."""


def embed_hash(text: str) -> str:
    """Names a chunk's embedded text, so an unchanged chunk of an updated article keeps its vector."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _write(
    records: list[_Record],
    store: Store,
    embedder: Embedder,
    report: IngestReport,
    counted: set[str],
    tracker: ProgressTracker | None,
) -> None:
    chunks = [c for r in records for c in r.chunks]
    texts = [c.embed_text for c in chunks]
    hashes = [embed_hash(t) for t in texts]
    # An edited file gets a new content id: its previous version's vectors are reused where the text is the same.
    earlier = [r.article.id for r in records if r.replaces]
    earlier += [
        old
        for r in records
        if r.article.whole_file and r.article.path
        for old in store.superseded(r.article.path, r.article.id)
    ]
    kept = store.vectors_by_embed_hash(earlier, set(hashes)) if earlier else {}
    todo = [i for i, h in enumerate(hashes) if h not in kept]
    vectors = np.empty((len(chunks), embedder.dimension), dtype=np.float32)
    for i, h in enumerate(hashes):
        if h in kept:
            vectors[i] = kept[h]
    batch = tracker.batch([r.article.title for r in records], [len(r.chunks) for r in records]) if tracker else None
    done = 0
    while done < len(todo):
        # Slices of at most a write batch's chunks (one article can have many more: the word pieces of a call
        # are all held at once), of about a second each when progress is reported.
        step = tracker.slice if tracker else _WRITE_BATCH_CHUNKS
        rows = todo[done : done + step]
        tokens_before, embed_started = embedder.embedded_tokens, time.perf_counter()
        vectors[rows] = embedder.embed([texts[i] for i in rows])
        seconds = time.perf_counter() - embed_started
        report.embed_seconds += seconds
        report.embedded_tokens += embedder.embedded_tokens - tokens_before
        done += len(rows)
        if batch:
            batch.embedded(todo[done] if done < len(todo) else len(chunks), len(rows), seconds)
    if batch:
        batch.writing()
    # The store looks again under its write lock: what another process wrote meanwhile comes back unchanged.
    outcomes = store.write([(r.article, r.chunks) for r in records], vectors, hashes)
    for record in records:
        article, outcome = record.article, outcomes[record.article.id]
        if outcome == "unchanged":
            if article.id not in counted:
                report.unchanged += 1
                counted.add(article.id)
            continue
        if article.id not in counted:
            counted.add(article.id)
            report.updated += outcome == "updated"
            report.added += outcome == "added"
        report.chunks += len(record.chunks)
        report.tokens += sum(c.token_count for c in record.chunks)
    report.reused_chunks += len(chunks) - len(todo)
