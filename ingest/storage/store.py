"""The index: a Chroma collection of chunk vectors beside the catalog, kept in step.

The catalog is the source of truth; the vectors can always be rebuilt from its chunk texts (`byline reindex`).
Write order keeps every article whole and leaves nothing unmarked: mark the articles pending in the catalog, upsert
the new versions' vectors (ids carry the content hash, so they sit beside the old ones), switch the catalog over in
one transaction (older versions of the same file leave it in that transaction too), delete the vectors of the
versions replaced, and only then clear the pending marks. A crash at any point leaves the old or the new version
readable, and the article marked: the next open finishes the job (`_reconcile`). Forget goes the same way: marked,
out of the catalog, vectors deleted, mark cleared; a forget cut short is finished by the next open.

A writer holds the catalog's write lock from its pending marks to the end, so another process opening the index
(an asker, a second ingest) never mistakes a write in flight for a dead one's leftovers, and a second ingest of the
same articles finds them already written. How a long-running reader sees other processes' writes: see
`ingest.storage.vectors`.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from more_itertools import batched

from ingest.chunking import ChunkPlan
from ingest.config import StoreSettings
from ingest.models import Article, Chunk, SearchFilters
from ingest.storage.catalog import Catalog, ChunkRow, Headline, LexicalQuery, PendingWrite, StoredVector
from ingest.storage.kept import keep_vectors, refill
from ingest.storage.vectors import (
    COLLECTION_PREFIX,
    IndexDamagedError,
    StoreError,
    Vectors,
    chroma_where,
    chunk_metadata,
    vector_bytes,
)

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.types import GetResult

__all__ = ["CHUNKER_VERSION", "REINDEX_LOCK", "WRITE_LOCK", "IndexDamagedError", "Outcome", "Store", "StoreError"]

# Bump when chunking or headers change in a way that changes vectors.
CHUNKER_VERSION = 1
# The catalog lock a writer holds from its pending marks to its last vector delete.
WRITE_LOCK = "write"
# Held by a running `byline reindex`; its bookkeeping key says one was started and not finished.
REINDEX_LOCK = "reindex"

Outcome = Literal["added", "updated", "unchanged"]


class Store:
    """The vectors (a Chroma collection) and the catalog, written and read together."""

    def __init__(
        self,
        catalog: Catalog,
        settings: StoreSettings,
        *,
        home: Path,
        embedding_model: str,
        plan: ChunkPlan,
        client: ClientAPI | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.home = home
        self.plan = plan
        self.embedding_model = embedding_model
        stamp = f"{embedding_model}|{plan.max_tokens}|{plan.overlap_sentences}|{CHUNKER_VERSION}"
        # One collection per (model, chunk settings): vectors of different shapes never mix.
        self.collection_name = COLLECTION_PREFIX + hashlib.sha256(stamp.encode()).hexdigest()[:12]
        self.index = Vectors(
            catalog,
            settings,
            home=home,
            name=self.collection_name,
            metadata={"embedding_model": embedding_model, "max_tokens": plan.max_tokens},
            client=client,
            restore=partial(refill, catalog, self.collection_name),
        )
        self._opened = False
        self._opening = threading.Lock()

    @property
    def reindex_key(self) -> str:
        """The bookkeeping key that says a reindex of this collection was started and not finished."""
        return f"reindex:{self.collection_name}"

    def open(self) -> None:
        """Open the vectors now, not on first use: check them against the catalog (a missing or damaged index
        is an IndexDamagedError naming the repair) and finish what an interrupted write left."""
        with self._opening:
            if self._opened:
                return
            vectors = self.index.read("count vectors", lambda collection: collection.count())
            if self.index.embedded:
                self._check(vectors)
            keep_vectors(self.catalog, self.index, self.collection_name)
            self._reconcile()
            self._opened = True

    def close(self) -> None:
        self.index.close()

    def _check(self, vectors: int) -> None:
        if self.catalog.state(self.reindex_key) is not None:
            with self.catalog.lock(REINDEX_LOCK, blocking=False) as free:
                if free:
                    raise IndexDamagedError(
                        f"a reindex of the vector index at {self.index.path} was interrupted: "
                        "run `byline reindex` to finish it"
                    )
            return  # being rebuilt by another process: what is there already answers
        chunks = self.catalog.chunk_count(self.collection_name)
        if vectors < chunks:  # never so after any crash (vectors go in first, out last): lost, so made anew
            self.index.rebuild(f"it holds {vectors} vectors for {chunks} chunks")

    def _reconcile(self) -> None:
        """Finish what interrupted writes left: drop vectors of versions the catalog does not hold, and finish
        removals. Skipped while another process holds the write lock: its pending rows are a write in flight."""
        with self.catalog.lock(WRITE_LOCK, blocking=False) as locked:
            if locked:
                self.finish_pending(self.catalog.pending(self.collection_name))

    def finish_pending(self, pending: Sequence[PendingWrite]) -> None:
        """Bring these pending articles' vectors in line with the catalog; the caller holds the write lock."""
        if not pending:
            return
        removed = [p.article_id for p in pending if p.delete]
        if removed:
            self.catalog.delete_articles(removed)
        gone = [p.article_id for p in pending if p.delete or p.indexed_hash is None]
        clauses: list[dict[str, Any]] = [{"article_id": {"$in": gone}}] if gone else []
        clauses += [
            {"$and": [{"article_id": p.article_id}, {"hash": {"$ne": p.indexed_hash[:12]}}]}
            for p in pending
            if not p.delete and p.indexed_hash is not None
        ]
        with self.index.mutation() as collection:
            # One delete: every write to the vectors saves the whole index (see ingest.storage.vectors).
            collection.delete(where=clauses[0] if len(clauses) == 1 else {"$or": clauses})
        self.catalog.clear_pending(self.collection_name, [p.article_id for p in pending])

    # -- writing ---------------------------------------------------------------------------------------

    def indexed_hashes(self, article_ids: Sequence[str]) -> dict[str, str]:
        return self.catalog.indexed_hashes(self.collection_name, article_ids)

    def remember_paths(self, pairs: Sequence[tuple[str, str]]) -> None:
        """(path, article id) of files holding an article already indexed, so `forget PATH` finds it."""
        if pairs:
            self.catalog.remember_paths(pairs)

    def superseded(self, path: str, current_id: str) -> list[str]:
        """Articles other than `current_id` whose only file was `path`: older versions of that file."""
        return self.catalog.superseded(path, current_id)

    def write(
        self,
        written: Sequence[tuple[Article, Sequence[Chunk]]],
        vectors: np.ndarray,
        embed_hashes: Sequence[str] | None = None,
    ) -> dict[str, Outcome]:
        """Store new or changed articles with their chunks; `vectors` has one row per chunk, in order.

        What is indexed is looked up again under the write lock, so an article another process wrote meanwhile
        is left alone and comes back "unchanged". A whole-file article replaces the older versions of its file.
        `embed_hashes` (one per chunk) name the embedded texts, so a later version can reuse unchanged vectors.
        """
        chunks = [c for _, cs in written for c in cs]
        if len(chunks) != len(vectors) or (embed_hashes is not None and len(embed_hashes) != len(chunks)):
            raise ValueError("one vector (and embed hash) per chunk expected")
        self.open()
        hashes: Sequence[str | None] = embed_hashes if embed_hashes is not None else [None] * len(chunks)
        pairs = [(article, c) for article, cs in written for c in cs]
        metadatas = [self.chunk_metadata(a, c, h) for (a, c), h in zip(pairs, hashes, strict=True)]
        with self.catalog.lock(WRITE_LOCK):
            known = self.catalog.indexed_hashes(self.collection_name, [a.id for a, _ in written])
            todo = [(a, cs) for a, cs in written if known.get(a.id) != a.content_hash]
            rows = _rows_of(written, {a.id for a, _ in todo})
            retire = self._superseded_by(todo)
            if todo:
                self._switch(todo, [chunks[i] for i in rows], vectors[rows], [metadatas[i] for i in rows], retire)
        outcomes: dict[str, Outcome] = {a.id: "unchanged" for a, _ in written}
        for article, _ in todo:
            replaced = article.id in known or bool(retire.get(article.id))
            outcomes[article.id] = "updated" if replaced else "added"
        return outcomes

    def _superseded_by(self, todo: Sequence[tuple[Article, Sequence[Chunk]]]) -> dict[str, list[str]]:
        writing = {a.id for a, _ in todo}
        return {
            a.id: [old for old in self.catalog.superseded(a.path, a.id) if old not in writing]
            for a, _ in todo
            if a.whole_file and a.path
        }

    def _switch(
        self,
        todo: Sequence[tuple[Article, Sequence[Chunk]]],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        metadatas: Sequence[dict[str, Any]],
        retire: dict[str, list[str]],
    ) -> None:
        """The write protocol (see the module docstring); the caller holds the write lock."""
        step = self.max_batch
        retired = sorted({old for olds in retire.values() for old in olds})
        self.catalog.mark_pending(self.collection_name, [a for a, _ in todo])
        self.put_vectors(chunks, vectors, metadatas)
        kept = [StoredVector(vector_bytes(v), m.get("embed_hash")) for v, m in zip(vectors, metadatas, strict=True)]
        stale = self.catalog.commit_articles(self.collection_name, todo, kept, retire=retired)
        if stale or retired:
            with self.index.mutation() as collection:
                for batch in batched(stale, step):
                    collection.delete(ids=list(batch))
                if retired:
                    collection.delete(where={"article_id": {"$in": retired}})  # type: ignore[dict-item]
        self.catalog.clear_pending(self.collection_name, [a.id for a, _ in todo] + retired)

    def put_vectors(self, chunks: Sequence[Chunk], vectors: np.ndarray, metadatas: Sequence[dict[str, Any]]) -> None:
        """Upsert vectors as they are, in batches, touching nothing in the catalog (for the write protocol and
        for rebuilding)."""
        # One upsert per server request limit: Chroma caps a batch (about 5k rows on the embedded store).
        step = self.max_batch
        with self.index.mutation() as collection:
            for i in range(0, len(chunks), step):
                collection.upsert(
                    ids=[c.id for c in chunks[i : i + step]],
                    embeddings=vectors[i : i + step],
                    documents=[c.text for c in chunks[i : i + step]],
                    metadatas=metadatas[i : i + step],  # type: ignore[arg-type]
                )

    def delete_vectors(self, chunk_ids: Sequence[str]) -> None:
        """Delete these vectors, touching nothing in the catalog (orphans, found by `byline doctor`)."""
        step = self.max_batch
        with self.index.mutation() as collection:
            for batch in batched(chunk_ids, step):
                collection.delete(ids=list(batch))

    @property
    def max_batch(self) -> int:
        return self.index.max_batch_size()

    def vectors_by_embed_hash(self, article_ids: Sequence[str], wanted: set[str]) -> dict[str, np.ndarray]:
        """Stored vectors of these articles' chunks whose embedded text is one of `wanted`, by embed hash."""
        if not article_ids or not wanted:
            return {}
        self.open()
        found = self.index.read(
            "read vectors",
            lambda collection: collection.get(
                where={"article_id": {"$in": list(article_ids)}},  # type: ignore[dict-item]
                include=["embeddings", "metadatas"],
            ),
        )
        vectors: dict[str, np.ndarray] = {}
        embeddings = found.get("embeddings")
        if embeddings is None:
            return vectors
        for meta, vector in zip(found.get("metadatas") or [], embeddings, strict=True):
            embed_hash = (meta or {}).get("embed_hash")
            if isinstance(embed_hash, str) and embed_hash in wanted:
                vectors[embed_hash] = np.asarray(vector, dtype=np.float32)
        return vectors

    def chunk_metadata(self, article: Article, chunk: Chunk, embed_hash: str | None = None) -> dict[str, Any]:
        """What Chroma keeps beside a chunk's vector (see `ingest.storage.vectors.chunk_metadata`)."""
        return chunk_metadata(article, chunk, embed_hash)

    def forget(self, refs: Sequence[str]) -> tuple[list[str], list[str]]:
        """Remove the articles each ref names (id, URL or path); returns (removed ids, refs not found).

        Their text leaves every file of the home: the catalog zeroes what it deletes, Chroma drops its log
        entries once its index is saved, and both databases are compacted (see `purge`)."""
        ids: list[str] = []
        missing: list[str] = []
        for ref in refs:
            found = self.catalog.resolve(ref)
            ids += found
            if not found:
                missing.append(ref)
        ids = sorted(set(ids))
        if not ids:
            return [], missing
        self.open()
        with self.catalog.lock(WRITE_LOCK):
            self.catalog.mark_pending(self.collection_name, [], delete=ids)
            self.catalog.delete_articles(ids)
            # Every collection of the home's store (other models' too): the text leaves them all.
            self.index.delete_everywhere({"article_id": {"$in": ids}})
            self.catalog.clear_pending(self.collection_name, ids)
        self.purge()
        return ids, missing

    def purge(self) -> None:
        """Leave no copy of deleted text in the home: the catalog's files, and the embedded Chroma's database
        compacted (VACUUM rewrites it without free pages; other processes' clients stay valid)."""
        self.catalog.purge_deleted()
        if not self.index.embedded:
            return
        database = self.index.path / "chroma.sqlite3"
        with self.index.lock():
            connection = sqlite3.connect(database, timeout=60, isolation_level=None)
            try:
                connection.execute("VACUUM")
            finally:
                connection.close()

    # -- reading ---------------------------------------------------------------------------------------

    def chunk_rows(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        """Current chunks by id, from the catalog; in server mode with a catalog of this machine's own, chunks of
        articles this machine has not ingested (another Byline wrote them to the shared server) are read from
        Chroma's metadata. A shared catalog (PostgreSQL) knows every article: what it lacks is not current."""
        rows = self.catalog.chunk_rows(self.collection_name, chunk_ids)
        if not self.settings.chroma_url or self.settings.database_url:
            return rows
        missing = [c for c in chunk_ids if c not in rows]
        known_here = self.indexed_hashes(sorted({c.split(":", 1)[0] for c in missing}))
        foreign = [c for c in missing if c.split(":", 1)[0] not in known_here]
        if foreign:
            rows.update(self._remote_rows(foreign))
        return rows

    def article_chunks(self, article_ids: Sequence[str]) -> list[ChunkRow]:
        """Every current chunk of the given articles, in the order given and then in text order; in server mode,
        the chunks of articles another Byline wrote to the shared server come from Chroma's metadata."""
        rows = self.catalog.article_chunks(self.collection_name, article_ids)
        if not self.settings.chroma_url:
            return rows
        known_here = self.indexed_hashes(list(article_ids))
        foreign = [a for a in article_ids if a not in known_here]
        if not foreign:
            return rows
        found = self.index.read(
            "read chunks",
            lambda collection: collection.get(
                where={"article_id": {"$in": foreign}},  # type: ignore[dict-item]
                include=["documents", "metadatas"],
            ),
        )
        order = {article_id: i for i, article_id in enumerate(article_ids)}
        rows += _rows_from_chroma(found).values()
        return sorted(rows, key=lambda row: (order[row.article_id], row.start, row.end))

    def _remote_rows(self, chunk_ids: list[str]) -> dict[str, ChunkRow]:
        found = self.index.read(
            "read chunks", lambda collection: collection.get(ids=chunk_ids, include=["documents", "metadatas"])
        )
        return _rows_from_chroma(found)

    def health(self) -> str:
        """Where the vectors live and that the store answers (one line, no secrets); StoreError when not."""
        if not self.settings.chroma_url:
            return f"chroma embedded {self.index.path}"
        started = time.perf_counter()
        self.index.heartbeat()
        elapsed = (time.perf_counter() - started) * 1000
        return f"chroma server {self.settings.chroma_url} (answered in {elapsed:.1f} ms)"

    def count(self) -> int:
        self.open()
        return int(self.index.read("count vectors", lambda collection: collection.count()))

    def article_count(self) -> int:
        """Articles indexed in this store's collection, from the catalog."""
        return self.catalog.article_count(self.collection_name)

    def lexical_search(self, query: LexicalQuery) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the current chunks the query matches, best first (see the catalog)."""
        return self.catalog.lexical_search(self.collection_name, query)

    def present(self, chunk_ids: Sequence[str]) -> set[str]:
        """Those of these chunks whose vectors the store holds."""
        if not chunk_ids:
            return set()
        self.open()
        found = self.index.read("list vectors", lambda collection: collection.get(ids=list(chunk_ids), include=[]))
        return set(found["ids"])

    def vector_ids(self, where: dict[str, Any] | None = None) -> set[str]:
        """Ids of the vectors in the collection (matching a Chroma metadata filter), current or not."""
        self.open()
        found = self.index.read("list vectors", lambda collection: collection.get(where=where, include=[]))
        return set(found["ids"])

    def vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of these chunks, by id (those the store holds)."""
        if not chunk_ids:
            return {}
        self.open()
        found = self.index.read(
            "read vectors", lambda collection: collection.get(ids=list(chunk_ids), include=["embeddings"])
        )
        embeddings = found.get("embeddings")
        if embeddings is None:
            return {}
        return {
            chunk_id: np.asarray(vector, dtype=np.float32)
            for chunk_id, vector in zip(found["ids"], embeddings, strict=True)
        }

    def stats(self) -> dict[str, object]:
        return {**self.catalog.stats(self.collection_name), "collection": self.collection_name}

    def recent_articles(self, n: int) -> list[Headline]:
        """The `n` indexed articles published last, newest first."""
        return self.catalog.recent_articles(self.collection_name, n)

    def dense_search(self, vector: np.ndarray, n: int, filters: SearchFilters | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the nearest chunks, best first."""
        self.open()
        result = self.index.read(
            "search",
            lambda collection: collection.query(
                query_embeddings=[vector], n_results=n, where=chroma_where(filters), include=["distances"]
            ),
        )
        ids = result["ids"][0]
        distances = (result.get("distances") or [[]])[0]
        return [(chunk_id, 1.0 - float(d)) for chunk_id, d in zip(ids, distances, strict=True)]


def _rows_from_chroma(found: GetResult) -> dict[str, ChunkRow]:
    """Chunk rows from what Chroma holds beside the vectors (for articles this machine's catalog lacks)."""
    rows: dict[str, ChunkRow] = {}
    for chunk_id, text, meta in zip(found["ids"], found["documents"] or [], found["metadatas"] or [], strict=True):
        if meta is None or text is None:
            continue
        rows[chunk_id] = ChunkRow(
            chunk_id=chunk_id,
            rowid=-1,  # no catalog row on this machine
            article_id=str(meta["article_id"]),
            text=text,
            start=int(meta["start"]),  # type: ignore[arg-type]
            end=int(meta["end"]),  # type: ignore[arg-type]
            title=str(meta.get("title") or ""),
            url=_optional_str(meta.get("url")),
            path=None,  # file paths are per machine
            source=_optional_str(meta.get("source_name")),
            author=_optional_str(meta.get("author")),
            published_at=_optional_str(meta.get("published_at")),
        )
    return rows


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _rows_of(written: Sequence[tuple[Article, Sequence[Chunk]]], articles: set[str]) -> list[int]:
    """Positions, in the flat chunk list of `written`, of the chunks of `articles`."""
    rows: list[int] = []
    offset = 0
    for article, chunks in written:
        if article.id in articles:
            rows += range(offset, offset + len(chunks))
        offset += len(chunks)
    return rows
