"""Keeping the index sound: `doctor` checks the vectors and the lexical index against the catalog (and repairs what
it can), `reindex` rebuilds the vectors from the catalog's chunk texts with the configured model.

Both hold the store's write lock while they look or change anything, batch by batch, so ingests and forgets in
other processes wait their turn and never interleave with them; askers carry on (during a reindex they find what
is rebuilt so far). A reindex records in the catalog that it started before it drops anything, and skips chunks
whose vectors are already there: killed, it is finished by running it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from more_itertools import batched

from ingest.chunking import embed_headers
from ingest.clock import now_iso
from ingest.embedding import Embedder
from ingest.models import Article, Chunk
from ingest.pipeline import embed_hash
from ingest.storage.catalog import StoredVector
from ingest.storage.kept import keep_vectors
from ingest.storage.store import REINDEX_LOCK, WRITE_LOCK, Store, StoreError
from ingest.storage.vectors import vector_bytes, vector_from

if TYPE_CHECKING:
    from chromadb.api.models.Collection import Collection

# (chunks done, chunks in all)
Progress = Callable[[int, int], None]
# Articles read, embedded and written at once by a reindex.
_REINDEX_ARTICLES = 32
# Cosine above which a vector in the index is the one the catalog keeps (unit vectors; float32 noise only).
_SAME = 0.9999


@dataclass
class Check:
    """One thing `doctor` looked at: whether it is sound, a line saying what was found, and the figures."""

    name: str
    ok: bool
    detail: str
    figures: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, **self.figures}


@dataclass
class Diagnosis:
    checks: list[Check]
    repairs: list[str] = field(default_factory=list)  # what `--fix` did, or could not do

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def to_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "checks": [c.to_dict() for c in self.checks], "repairs": self.repairs}


@dataclass
class _Survey:
    """What the catalog and the vectors hold, looked at under the write lock."""

    integrity: list[str]
    unreadable: str | None  # why the vectors cannot be read, if they cannot
    chunks: set[str]
    vectors: set[str]  # (server mode: those of this catalog's articles)
    differ: set[str]  # chunks whose vector in the index is not the one the catalog keeps
    unkept: set[str]  # chunks the catalog keeps no vector for
    lexical: tuple[int, int, int]
    pending: int
    reindex_started: str | None

    @property
    def missing(self) -> set[str]:
        return self.chunks - self.vectors if self.unreadable is None else set()

    @property
    def orphans(self) -> set[str]:
        return self.vectors - self.chunks if self.unreadable is None else set()


def doctor(store: Store, embedder: Embedder, *, fix: bool = False) -> Diagnosis:
    """Check the index against the catalog; with `fix`, repair what can be repaired here first."""
    with store.catalog.lock(WRITE_LOCK):
        repairs = _repair(store, embedder, _survey(store)) if fix else []
        return Diagnosis(_checks(store, _survey(store)), repairs)


def _survey(store: Store) -> _Survey:
    catalog, name = store.catalog, store.collection_name
    chunks = catalog.chunk_ids(name)
    unreadable, vectors, differ = None, set(), set()
    try:
        vectors = _vector_ids(store)
        for batch in batched(sorted(vectors & chunks), store.max_batch):
            differ |= _differing(store, list(batch))
    except StoreError as exc:
        unreadable = str(exc)
    return _Survey(
        integrity=catalog.integrity_problems(),
        unreadable=unreadable,
        chunks=chunks,
        vectors=vectors,
        differ=differ,
        unkept=set(catalog.chunks_without_vectors(name)),
        lexical=catalog.lexical_gaps(),
        pending=len(catalog.pending(name)),
        reindex_started=catalog.state(store.reindex_key),
    )


def _differing(store: Store, chunk_ids: list[str]) -> set[str]:
    """Those of these chunks whose vector in the index is not the one the catalog keeps. Reads the vectors
    themselves, not only their ids, so a damaged search index fails here. (Not through the store's reading
    methods: those refuse to open an index with vectors missing, which is what doctor reports.)"""

    def read(collection: Collection) -> Any:
        return collection.get(ids=chunk_ids, include=["embeddings"])

    found = store.index.read("read vectors", read)
    kept = store.catalog.stored_vectors(store.collection_name, chunk_ids)
    differ = set()
    for chunk_id, vector in zip(found["ids"], found["embeddings"], strict=True):
        if chunk_id in kept and _cosine(vector_from(kept[chunk_id].vector), np.asarray(vector)) < _SAME:
            differ.add(chunk_id)
    return differ


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b)) / norms if norms else 0.0


def _vector_ids(store: Store) -> set[str]:
    """The collection's vector ids; with a shared server, those of articles this catalog indexes."""
    if store.index.embedded:
        return store.index.read("list vectors", lambda c: set(c.get(include=[])["ids"]))
    ours = set(store.catalog.indexed_article_ids(store.collection_name))
    found = store.index.read("list vectors", lambda c: c.get(include=["metadatas"]))
    return {
        chunk_id
        for chunk_id, meta in zip(found["ids"], found["metadatas"] or [], strict=True)
        if meta and meta.get("article_id") in ours
    }


def _checks(store: Store, survey: _Survey) -> list[Check]:
    chunks, rows, out_of_step = survey.lexical
    checks = [
        Check("catalog", not survey.integrity, "; ".join(survey.integrity[:3]) or "integrity check passed"),
        Check(
            "vectors readable",
            survey.unreadable is None,
            survey.unreadable or f"{len(survey.vectors)} vectors read",
            {"vectors": len(survey.vectors)},
        ),
    ]
    if survey.unreadable is None:
        missing, orphans, differ = len(survey.missing), len(survey.orphans), len(survey.differ)
        checks.append(
            Check(
                "vectors match chunks",
                not missing and not orphans and not differ,
                f"{len(survey.chunks)} chunks, {len(survey.vectors)} vectors, {missing} missing, {orphans} orphans, "
                f"{differ} differ from the catalog's copy",
                {
                    "chunks": len(survey.chunks),
                    "vectors": len(survey.vectors),
                    "missing": missing,
                    "orphans": orphans,
                    "differ": differ,
                },
            )
        )
    checks.append(
        Check(
            "catalog keeps vectors",
            not survey.unkept,
            f"{len(survey.unkept)} chunks without a kept vector" if survey.unkept else "every chunk's vector is kept",
            {"unkept": len(survey.unkept)},
        )
    )
    checks += [
        Check(
            "lexical index",
            not out_of_step and rows == chunks,
            f"{chunks} chunks, {rows} rows, {out_of_step} out of step",
            {"chunks": chunks, "rows": rows, "out_of_step": out_of_step},
        ),
        Check(
            "pending writes",
            not survey.pending,
            f"{survey.pending} interrupted writes to finish" if survey.pending else "none",
            {"pending": survey.pending},
        ),
        Check(
            "reindex",
            survey.reindex_started is None,
            f"started {survey.reindex_started} and not finished" if survey.reindex_started else "none unfinished",
        ),
    ]
    return checks


def _repair(store: Store, embedder: Embedder, survey: _Survey) -> list[str]:
    """Repair what the survey found, under the caller's write lock; returns what was done or is left to do."""
    done: list[str] = []
    if survey.integrity:
        done.append("the catalog fails its integrity check: restore it from a backup (not repairable here)")
    if survey.lexical[2] or survey.lexical[0] != survey.lexical[1]:
        done.append(f"lexical index: {store.catalog.repair_lexical()} rows added or dropped")
    if survey.unreadable is not None or survey.reindex_started is not None:
        done.append("the vectors cannot be repaired in place: run `byline reindex`")
        return done
    if survey.pending:
        store.finish_pending(store.catalog.pending(store.collection_name))
        done.append(f"finished {survey.pending} interrupted writes")
        survey = _survey(store)
    if survey.orphans:
        store.delete_vectors(sorted(survey.orphans))
        done.append(f"removed {len(survey.orphans)} orphan vectors")
    if survey.unkept:
        keep_vectors(store.catalog, store.index, store.collection_name)
        done.append(f"kept in the catalog the vectors of {len(survey.unkept & survey.vectors)} chunks")
    redo = survey.missing | survey.differ | (survey.unkept - survey.vectors)
    if redo:
        _rebuild(store, embedder, sorted({c.split(":", 1)[0] for c in redo}), only=redo)
        done.append(f"embedded again {len(redo)} missing or differing vectors")
    return done


@dataclass
class ReindexReport:
    articles: int = 0
    chunks: int = 0
    embedded: int = 0  # chunks embedded now (the others were there from an interrupted run)
    resumed: bool = False
    dropped_store: bool = False  # the whole embedded store was unreadable and went, not only this collection
    orphans: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "seconds": round(self.seconds, 3)}


def reindex(store: Store, embedder: Embedder, progress: Progress | None = None) -> ReindexReport:
    """Rebuild the collection's vectors from the catalog: drop them, then embed every chunk again; an
    interrupted reindex is resumed where it stopped."""
    catalog, report, started = store.catalog, ReindexReport(), time.perf_counter()
    with catalog.lock(REINDEX_LOCK, blocking=False) as free:
        if not free:
            raise StoreError("another `byline reindex` is running on this home")
        report.resumed = catalog.state(store.reindex_key) is not None and _readable(store)
        if not report.resumed:
            catalog.set_state(store.reindex_key, now_iso())
            report.dropped_store = store.index.drop()
        with catalog.lock(WRITE_LOCK):
            store.finish_pending(catalog.pending(store.collection_name))
        article_ids = catalog.indexed_article_ids(store.collection_name)
        total = catalog.chunk_count(store.collection_name)
        for batch in batched(article_ids, _REINDEX_ARTICLES):
            with catalog.lock(WRITE_LOCK):
                written = catalog.indexed_chunks(store.collection_name, batch)
                ids = [c.id for _, chunks in written for c in chunks]
                todo = set(ids) - store.present(ids)
                report.embedded += _rebuild_chunks(store, embedder, written, todo)
            report.articles += len(written)
            report.chunks += len(ids)
            if progress:
                progress(report.chunks, max(total, report.chunks))
        with catalog.lock(WRITE_LOCK):
            orphans = sorted(_vector_ids(store) - catalog.chunk_ids(store.collection_name))
            if orphans:
                store.delete_vectors(orphans)
            report.orphans = len(orphans)
        catalog.set_state(store.reindex_key, None)
    report.seconds = time.perf_counter() - started
    return report


def _readable(store: Store) -> bool:
    try:
        store.index.read("count vectors", lambda c: c.count())
    except StoreError:
        return False
    return True


def _rebuild(store: Store, embedder: Embedder, article_ids: Sequence[str], only: set[str]) -> None:
    for batch in batched(article_ids, _REINDEX_ARTICLES):
        _rebuild_chunks(store, embedder, store.catalog.indexed_chunks(store.collection_name, batch), only)


def _rebuild_chunks(
    store: Store, embedder: Embedder, written: Sequence[tuple[Article, list[Chunk]]], only: set[str]
) -> int:
    """Embed and store the vectors of those chunks of `written` named in `only`; returns how many."""
    pairs: list[tuple[Article, Chunk]] = []
    headers = embed_headers([a for a, _ in written], embedder, store.plan)
    for (article, chunks), header in zip(written, headers, strict=True):
        for chunk in chunks:
            if chunk.id in only:
                chunk.header = header
                pairs.append((article, chunk))
    if not pairs:
        return 0
    texts = [c.embed_text for _, c in pairs]
    hashes = [embed_hash(t) for t in texts]
    metadatas = [store.chunk_metadata(a, c, h) for (a, c), h in zip(pairs, hashes, strict=True)]
    vectors = embedder.embed(texts)
    store.put_vectors([c for _, c in pairs], vectors, metadatas)
    kept = [(c.id, StoredVector(vector_bytes(v), h)) for (_, c), v, h in zip(pairs, vectors, hashes, strict=True)]
    store.catalog.store_vectors(store.collection_name, kept)
    return len(pairs)
