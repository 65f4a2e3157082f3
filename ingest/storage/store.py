"""The index: a Chroma collection of chunk vectors beside the catalog, kept in step.

Write order keeps every article whole: mark pending in the catalog, upsert the new version's vectors (ids carry
the content hash, so they sit beside the old ones), switch the catalog over in one transaction, then delete the
old vectors. A crash at any point leaves the old or the new version readable; `reconcile` sweeps leftovers.
A writer holds the catalog's write lock from the pending mark to the end, so another process opening the index
(an asker, a second ingest) never mistakes a write in flight for a dead one's leftovers.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from more_itertools import batched

from ingest.chunking import ChunkPlan
from ingest.config import StoreSettings
from ingest.models import Article, Chunk, SearchFilters, source_key
from ingest.storage.catalog import Catalog, ChunkRow, Headline, LexicalQuery

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import GetResult

T = TypeVar("T")

# Bump when chunking or headers change in a way that changes vectors.
CHUNKER_VERSION = 1
# The catalog lock a writer holds from its pending mark to its last vector delete.
WRITE_LOCK = "write"


class StoreError(RuntimeError):
    """The index cannot be opened or written."""


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
        self.collection_name = "byline-" + hashlib.sha256(stamp.encode()).hexdigest()[:12]
        if client is not None:
            self.__dict__["client"] = client

    @cached_property
    def client(self) -> ClientAPI:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        store = self.settings
        chroma_settings = ChromaSettings(anonymized_telemetry=False)
        try:
            if store.chroma_url:
                from urllib.parse import urlsplit

                url = urlsplit(store.chroma_url)
                headers = auth_headers(store)
                return chromadb.HttpClient(
                    host=url.hostname or "localhost",
                    port=url.port or (443 if url.scheme == "https" else 8000),
                    ssl=url.scheme == "https",
                    headers=headers,
                    tenant=store.chroma_tenant,
                    database=store.chroma_database,
                    settings=chroma_settings,
                )
            return chromadb.PersistentClient(path=str(self.home / "chroma"), settings=chroma_settings)
        except Exception as exc:
            where = store.chroma_url or self.home / "chroma"
            raise StoreError(f"cannot open the vector store at {where}: {exc}") from exc

    @cached_property
    def collection(self) -> Collection:
        try:
            collection = self.client.get_or_create_collection(
                self.collection_name,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={
                    "embedding_model": self.embedding_model,
                    "max_tokens": self.plan.max_tokens,
                },
                embedding_function=None,
            )
        except Exception as exc:
            raise StoreError(f"cannot open collection {self.collection_name}: {exc}") from exc
        self._reconcile(collection)
        return collection

    def _reconcile(self, collection: Collection) -> None:
        """Finish what an interrupted write left: drop vectors of versions the catalog does not hold.

        Skipped while another process holds the write lock: its pending rows are a write in flight, not leftovers.
        """
        with self.catalog.lock(WRITE_LOCK, blocking=False) as locked:
            if not locked:
                return
            pending = self.catalog.pending(self.collection_name)
            for article_id, current in pending:
                where: dict[str, Any] = {"article_id": article_id}
                if current is not None:
                    where = {"$and": [where, {"hash": {"$ne": current[:12]}}]}
                collection.delete(where=where)
            if pending:
                self.catalog.clear_pending(self.collection_name, [a for a, _ in pending])

    # -- writing ---------------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the vector collection now (sweeping what an interrupted write left), not on first use."""
        self.collection  # noqa: B018 - the cached property opens and reconciles

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
    ) -> None:
        """Store new or changed articles with their chunks; `vectors` has one row per chunk, in order.

        `embed_hashes` (one per chunk) name the embedded texts, so a later version can reuse unchanged vectors.
        """
        chunks = [c for _, cs in written for c in cs]
        if len(chunks) != len(vectors) or (embed_hashes is not None and len(embed_hashes) != len(chunks)):
            raise ValueError("one vector (and embed hash) per chunk expected")
        collection = self.collection
        by_id = {a.id: a for a, _ in written}
        metadatas = [self._metadata(by_id[c.article_id], c) for c in chunks]
        for meta, embed_hash in zip(metadatas, embed_hashes or (), strict=False):
            meta["embed_hash"] = embed_hash
        # One upsert per server request limit: Chroma caps a batch (about 5k rows on the embedded store).
        step = self.max_batch
        with self.catalog.lock(WRITE_LOCK):
            self.catalog.mark_pending(self.collection_name, [a for a, _ in written])
            for i in range(0, len(chunks), step):
                collection.upsert(
                    ids=[c.id for c in chunks[i : i + step]],
                    embeddings=vectors[i : i + step],
                    documents=[c.text for c in chunks[i : i + step]],
                    metadatas=metadatas[i : i + step],  # type: ignore[arg-type]
                )
            stale = self.catalog.commit_articles(self.collection_name, written)
            for batch in batched(stale, step):
                collection.delete(ids=list(batch))

    @cached_property
    def max_batch(self) -> int:
        return int(self.client.get_max_batch_size())

    def vectors_by_embed_hash(self, article_ids: Sequence[str], wanted: set[str]) -> dict[str, np.ndarray]:
        """Stored vectors of these articles' chunks whose embedded text is one of `wanted`, by embed hash."""
        if not article_ids or not wanted:
            return {}
        found = self.collection.get(
            where={"article_id": {"$in": list(article_ids)}},  # type: ignore[dict-item]
            include=["embeddings", "metadatas"],
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

    def _metadata(self, article: Article, chunk: Chunk) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "article_id": article.id,
            "hash": article.content_hash[:12],
            "position": chunk.position,
            "start": chunk.start,
            "end": chunk.end,
            "title": article.title,
        }
        # Enough to cite the chunk from any machine that shares a Chroma server (see `chunk_rows`).
        if article.source:
            meta["source"] = source_key(article.source)
            meta["source_name"] = article.source
        if article.published_at:
            meta["published_ts"] = int(article.published_at.timestamp())
            meta["published_at"] = article.published_at.isoformat()
        if article.url:
            meta["url"] = article.url
        if article.author:
            meta["author"] = article.author
        return meta

    def forget(self, refs: Sequence[str]) -> tuple[list[str], list[str]]:
        """Remove the articles each ref names (id, URL or path); returns (removed ids, refs not found)."""
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
        collection = self.collection
        with self.catalog.lock(WRITE_LOCK):
            self.catalog.mark_pending(self.collection_name, [_placeholder(article_id) for article_id in ids])
            self.catalog.delete_articles(ids)
            # Vectors in other collections (other models) are orphans the catalog no longer returns.
            collection.delete(where={"article_id": {"$in": list(ids)}})  # type: ignore[dict-item]
            self.catalog.clear_pending(self.collection_name, ids)
        return ids, missing

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
        found = self._call(
            "read chunks",
            lambda: self.collection.get(
                where={"article_id": {"$in": foreign}},  # type: ignore[dict-item]
                include=["documents", "metadatas"],
            ),
        )
        order = {article_id: i for i, article_id in enumerate(article_ids)}
        rows += _rows_from_chroma(found).values()
        return sorted(rows, key=lambda row: (order[row.article_id], row.start, row.end))

    def _remote_rows(self, chunk_ids: list[str]) -> dict[str, ChunkRow]:
        found = self._call(
            "read chunks", lambda: self.collection.get(ids=chunk_ids, include=["documents", "metadatas"])
        )
        return _rows_from_chroma(found)

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        """Run a vector-store operation, turning a dead server or a refused request into a StoreError."""
        try:
            return operation()
        except StoreError:
            raise
        except Exception as exc:
            where = self.settings.chroma_url or self.home / "chroma"
            raise StoreError(f"vector store at {where}: cannot {what}: {exc}") from exc

    def health(self) -> str:
        """Where the vectors live and that the store answers (one line, no secrets); StoreError when not."""
        if not self.settings.chroma_url:
            return f"chroma embedded {self.home / 'chroma'}"
        started = time.perf_counter()
        self._call("answer a heartbeat", self.client.heartbeat)
        self._call("list collections", self.client.count_collections)  # checks the token too
        elapsed = (time.perf_counter() - started) * 1000
        return f"chroma server {self.settings.chroma_url} (answered in {elapsed:.1f} ms)"

    def count(self) -> int:
        return int(self._call("count vectors", self.collection.count))

    def article_count(self) -> int:
        """Articles indexed in this store's collection, from the catalog."""
        return self.catalog.article_count(self.collection_name)

    def lexical_search(self, query: LexicalQuery) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) of the current chunks the query matches, best first (see the catalog)."""
        return self.catalog.lexical_search(self.collection_name, query)

    def vector_ids(self, where: dict[str, Any] | None = None) -> set[str]:
        """Ids of the vectors in the collection (matching a Chroma metadata filter), current or not."""
        found = self._call("list vectors", lambda: self.collection.get(where=where, include=[]))
        return set(found["ids"])

    def vectors(self, chunk_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Stored vectors of these chunks, by id (those the store holds)."""
        if not chunk_ids:
            return {}
        found = self._call("read vectors", lambda: self.collection.get(ids=list(chunk_ids), include=["embeddings"]))
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
        collection = self.collection
        result = self._call(
            "search",
            lambda: collection.query(
                query_embeddings=[vector], n_results=n, where=chroma_where(filters), include=["distances"]
            ),
        )
        ids = result["ids"][0]
        distances = (result.get("distances") or [[]])[0]
        return [(chunk_id, 1.0 - float(d)) for chunk_id, d in zip(ids, distances, strict=True)]


def auth_headers(settings: StoreSettings) -> dict[str, str]:
    """The header carrying the Chroma token, as the settings ask: a Bearer token or Chroma's own header."""
    if settings.chroma_token is None:
        return {}
    token = settings.chroma_token.get_secret_value()
    if settings.chroma_auth_header == "x-chroma-token":
        return {"X-Chroma-Token": token}
    return {"Authorization": f"Bearer {token}"}


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


def _placeholder(article_id: str) -> Article:
    # A pending row with no version: reconcile removes every vector of the article if we stop midway.
    return Article(id=article_id, title="", text="")


def chroma_where(filters: SearchFilters | None) -> dict[str, Any] | None:
    if not filters:
        return None
    clauses: list[dict[str, Any]] = []
    if filters.sources:
        clauses.append({"source": {"$in": filters.source_keys()}})
    since, until = filters.published_range()
    if since is not None:
        clauses.append({"published_ts": {"$gte": since}})
    if until is not None:
        clauses.append({"published_ts": {"$lte": until}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
