"""The vector side of the store: one Chroma collection, and this process's view of it kept current while other
processes write to the same home.

Why a view goes stale (chromadb 1.5, embedded): each process loads a collection's HNSW index into memory once,
then applies Chroma's write log to it once (`try_backfill_collection` remembers the collection), and never reads
the files or the log again. Another process's writes still reach the shared SQLite file, so this process's metadata
side sees new ids its in-memory index lacks: a filtered query or a `get` with embeddings then fails with "Error
finding id", and new articles never turn up in dense search. A stale *writer* is worse: it saves its older index
over the newer one.

So every change to the vectors happens under a lock shared by the processes of the home, after moving the
catalog's write generation on. A view remembers the generation it was opened at; a reader that sees the
generation moved opens a fresh Chroma instance (a private one: Chroma otherwise shares one instance per path in a
process, so a reopen would get the same stale index back), under the same lock, so it never loads files a writer
is halfway through saving. With a Chroma server there is one index in the server's memory: nothing goes stale,
and nothing is reopened.

The collection saves its index after every write (`sync_threshold` 1), so Chroma drops the log entries it has
saved: deleted chunks' texts do not stay in its log, and a reopen has no log to replay.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ingest.config import StoreSettings
from ingest.models import Article, Chunk, SearchFilters, source_key
from ingest.storage.catalog import Catalog, CatalogError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection
    from chromadb.config import System

T = TypeVar("T")
# Fills an empty collection (given the most records one write may carry) and returns how many it put.
Restore = Callable[["Collection", int], int]
log = logging.getLogger(__name__)

# The catalog lock held while the vectors change or a process loads them (embedded store).
VECTORS_LOCK = "vectors"
# Byline's collections are named so; others in a shared store are not ours.
COLLECTION_PREFIX = "byline-"
# Writes applied before Chroma saves its index and drops the log entries saved (see the module docstring).
SYNC_THRESHOLD = 1


class StoreError(RuntimeError):
    """The index cannot be opened or written; the message is one line."""


class IndexDamagedError(StoreError):
    """The vectors cannot be read, or fewer are there than the catalog has chunks; the message names the repair."""


@dataclass(eq=False)
class _View:
    """One open client and collection; closed once replaced and no call is using it."""

    client: ClientAPI
    collection: Collection
    system: System | None  # the private Chroma instance to stop when done (embedded store)
    generation: int
    users: int = 0
    retired: bool = False

    def close(self) -> None:
        if self.system is not None:
            self.system.stop()
            self.system = None


class Vectors:
    """The Chroma collection `name`: opened on first use, reopened when another process changed it.

    `restore(collection, batch)` fills an empty collection from the catalog's copy of the vectors and returns how
    many it put: given it, an embedded index found damaged (a process killed while Chroma saved its files) is made
    anew from that copy, without embedding again, and the operation goes on.
    """

    def __init__(
        self,
        catalog: Catalog,
        settings: StoreSettings,
        *,
        home: Path,
        name: str,
        metadata: dict[str, Any],
        client: ClientAPI | None = None,
        restore: Restore | None = None,
    ) -> None:
        self.catalog = catalog
        self.settings = settings
        self.path = home / "chroma"
        self.name = name
        self.metadata = metadata
        self._client = client
        self.restore = restore
        # Only an embedded store of our own has an in-memory index that other processes can make stale.
        self.embedded = client is None and not settings.chroma_url
        self._view: _View | None = None
        self._max_batch: int | None = None
        self._mutex = threading.Lock()  # guards _view and the users counts; never held while waiting on I/O

    @property
    def where(self) -> str:
        return self.settings.chroma_url or str(self.path)

    # -- using the collection --------------------------------------------------------------------------

    @contextmanager
    def view(self) -> Iterator[Collection]:
        """The collection as of the latest write to the vectors, for reading."""
        view = self._current()
        try:
            yield view.collection
        finally:
            self._release(view)

    def read(self, what: str, operation: Callable[[Collection], T]) -> T:
        """Run a read. In the embedded store, a Chroma error is retried once on a freshly loaded index (a write
        may have landed between the generation check and the read); an internal error even then means damaged
        files, and the index is rebuilt from the catalog's copy before a last try."""
        from chromadb.errors import ChromaError, InternalError

        try:
            with self.view() as collection:
                return operation(collection)
        except (StoreError, CatalogError):  # the catalog's errors name the catalog
            raise
        except Exception as exc:
            if not (self.embedded and isinstance(exc, ChromaError)):
                raise StoreError(f"vector store at {self.where}: cannot {what}: {_line(exc)}") from exc
        with self._locked():
            view = self._refresh(force=True)
        try:
            return operation(view.collection)
        except Exception as exc:
            if self.restore is None or not isinstance(exc, InternalError):
                raise StoreError(f"vector store at {self.where}: cannot {what}: {_line(exc)}") from exc
            reason = _line(exc)
        finally:
            self._release(view)
        self.rebuild(reason)
        try:
            with self.view() as collection:
                return operation(collection)
        except (StoreError, CatalogError):
            raise
        except Exception as exc:
            raise StoreError(f"vector store at {self.where}: cannot {what}: {_line(exc)}") from exc

    @contextmanager
    def mutation(self) -> Iterator[Collection]:
        """The collection for a change to the vectors: under the home's vectors lock, on a current view, with the
        write generation moved on first (so a crash midway still tells readers to reload)."""
        with self._mutating() as view:
            yield view.collection

    def delete_everywhere(self, where: dict[str, Any]) -> None:
        """Delete matching vectors from this collection and, in the home's own store, from every other Byline
        collection in it (other models'), so what is deleted leaves the home."""
        with self._mutating() as view:
            view.collection.delete(where=where)
            if not self.embedded:
                return
            for other in view.client.list_collections():
                if other.name != self.name and other.name.startswith(COLLECTION_PREFIX):
                    collection = view.client.get_collection(other.name, embedding_function=None)
                    _save_every_write(collection)
                    collection.delete(where=where)

    def drop(self) -> bool:
        """Delete the collection, to rebuild it; the next use makes it anew. When the embedded store cannot even
        be opened, its folder goes instead; returns True then (other collections in it went too)."""
        with self._locked():
            self.close()
            if self.embedded:
                self.catalog.bump_generation()
            unreadable = False
            try:
                client, system = self._connect()
            except StoreError:
                if not self.embedded:
                    raise
                client, system, unreadable = None, None, True
            try:
                if client is not None and any(c.name == self.name for c in client.list_collections()):
                    client.delete_collection(self.name)
            except Exception:
                if not self.embedded:
                    raise
                unreadable = True
            finally:
                if system is not None:
                    system.stop()
            if unreadable:
                shutil.rmtree(self.path, ignore_errors=True)
        return unreadable

    def max_batch_size(self) -> int:
        """Most records one write may carry (the embedded store's SQLite limits it)."""
        if self._max_batch is None:
            view = self._current()
            try:
                self._max_batch = int(view.client.get_max_batch_size())
            finally:
                self._release(view)
        return self._max_batch

    def heartbeat(self) -> None:
        """Check that the store answers and takes our token (listing collections needs it); StoreError if not."""
        client, system = self._connect()
        try:
            client.heartbeat()
            client.count_collections()
        except Exception as exc:
            raise StoreError(f"vector store at {self.where}: does not answer: {_line(exc)}") from exc
        finally:
            if system is not None:
                system.stop()

    def lock(self) -> AbstractContextManager[bool]:
        """The home's vectors lock (a no-op for a server): held while changing the vector store's files."""
        return self._locked()

    @contextmanager
    def _mutating(self) -> Iterator[_View]:
        with self._locked():
            view = self._refresh()
            try:
                if self.embedded:
                    generation = self.catalog.bump_generation()
                    with self._mutex:
                        view.generation = generation  # no one else writes while we hold the lock: our view is current
                yield view
            finally:
                self._release(view)

    def rebuild(self, reason: str) -> None:
        """Make the collection anew from the catalog's copy of the vectors (see the class docstring); an
        IndexDamagedError naming the repair when there is no copy to make it from."""
        with self._locked():
            client, system = self._connect()
            try:
                collection, generation = self._restored(client, reason)
            except BaseException:
                if system is not None:
                    system.stop()
                raise
            self._install(_View(client, collection, system, generation))

    def close(self) -> None:
        with self._mutex:
            view, self._view = self._view, None
        if view is not None:
            view.retired = True
            if view.users == 0:
                view.close()

    # -- opening ---------------------------------------------------------------------------------------

    def _locked(self) -> AbstractContextManager[bool]:
        if not self.embedded:
            return nullcontext(True)
        return self.catalog.lock(VECTORS_LOCK)

    def _current(self) -> _View:
        generation = self.catalog.generation() if self.embedded else 0
        with self._mutex:
            view = self._view
            if view is not None and (not self.embedded or view.generation == generation):
                view.users += 1
                return view
        with self._locked():
            return self._refresh()

    def _refresh(self, *, force: bool = False) -> _View:
        """The current view, loaded again if the generation moved (or `force`); the caller holds the lock."""
        generation = self.catalog.generation() if self.embedded else 0
        with self._mutex:
            view = self._view
            if view is not None and not force and (not self.embedded or view.generation == generation):
                view.users += 1
                return view
        fresh = self._open(generation)
        self._install(fresh, use=True)
        return fresh

    def _install(self, fresh: _View, *, use: bool = False) -> None:
        """Make `fresh` the current view (counted as used by the caller if `use`); the old one is let go."""
        with self._mutex:
            old, self._view = self._view, fresh
            fresh.users += use
            done = old is not None and old.users == 0
            if old is not None:
                old.retired = True
        if done and old is not None:
            old.close()

    def _release(self, view: _View) -> None:
        with self._mutex:
            view.users -= 1
            done = view.retired and view.users == 0
        if done:
            view.close()

    def _open(self, generation: int) -> _View:
        client, system = self._connect()
        try:
            try:
                collection = self._collection(client)
                collection.count()  # loads the index and applies Chroma's log now, under the lock
            except Exception as exc:
                if not self.embedded:
                    raise StoreError(f"cannot open collection {self.name} at {self.where}: {_line(exc)}") from exc
                collection, generation = self._restored(client, _line(exc))
        except BaseException:
            if system is not None:
                system.stop()
            raise
        return _View(client, collection, system, generation)

    def _collection(self, client: ClientAPI) -> Collection:
        collection = client.get_or_create_collection(
            self.name,
            configuration={"hnsw": {"space": "cosine", "sync_threshold": SYNC_THRESHOLD}},
            metadata=self.metadata,
            embedding_function=None,
        )
        _save_every_write(collection)
        return collection

    def _restored(self, client: ClientAPI, reason: str) -> tuple[Collection, int]:
        """The collection deleted and made anew from the catalog's copy (the caller holds the lock); returns it
        with the write generation it is current at."""
        damaged = f"the vector index at {self.path} cannot be read ({reason})"
        if self.restore is None:
            raise IndexDamagedError(f"{damaged}: run `byline reindex` to rebuild it from the catalog")
        try:
            if any(c.name == self.name for c in client.list_collections()):
                client.delete_collection(self.name)
            generation = self.catalog.bump_generation()  # every other view of it is stale now
            collection = self._collection(client)
            restored = self.restore(collection, int(client.get_max_batch_size()))
            collection.count()
        except Exception as exc:
            raise IndexDamagedError(
                f"{damaged} and could not be restored from the catalog ({_line(exc)}): "
                "run `byline reindex` to rebuild it"
            ) from exc
        log.warning("%s; restored its %d vectors from the catalog", damaged, restored)
        return collection, generation

    def _connect(self) -> tuple[ClientAPI, System | None]:
        if self._client is not None:
            return self._client, None
        from chromadb.config import Settings as ChromaSettings

        settings = self.settings
        try:
            if settings.chroma_url:
                return _http_client(settings, ChromaSettings(anonymized_telemetry=False)), None
            return _private_client(self.path)
        except Exception as exc:
            raise StoreError(f"cannot open the vector store at {self.where}: {_line(exc)}") from exc


def _save_every_write(collection: Collection) -> None:
    """Set the collection to save its index after every write (see the module docstring), if it was made
    before that was the rule; before its index is loaded, so the load takes the setting."""
    hnsw = (collection.configuration or {}).get("hnsw") or {}
    if hnsw.get("sync_threshold") != SYNC_THRESHOLD:
        collection.modify(configuration={"hnsw": {"sync_threshold": SYNC_THRESHOLD}})


def _private_client(path: Path) -> tuple[ClientAPI, System]:
    """An embedded client on an instance of its own: `chromadb.PersistentClient` would share the process's one
    instance for the path, and with it the index loaded first."""
    from chromadb.api import ServerAPI
    from chromadb.api.client import Client
    from chromadb.config import Settings as ChromaSettings
    from chromadb.config import System

    system = System(ChromaSettings(anonymized_telemetry=False, is_persistent=True, persist_directory=str(path)))
    system.instance(ServerAPI)  # type: ignore[type-abstract]  # the implementation its settings name
    system.start()
    try:
        return Client.from_system(system), system
    except Exception:
        system.stop()
        raise


def _http_client(store: StoreSettings, chroma_settings: Any) -> ClientAPI:
    from urllib.parse import urlsplit

    import chromadb

    url = urlsplit(store.chroma_url or "")
    return chromadb.HttpClient(
        host=url.hostname or "localhost",
        port=url.port or (443 if url.scheme == "https" else 8000),
        ssl=url.scheme == "https",
        headers=auth_headers(store),
        tenant=store.chroma_tenant,
        database=store.chroma_database,
        settings=chroma_settings,
    )


def auth_headers(settings: StoreSettings) -> dict[str, str]:
    """The header carrying the Chroma token, as the settings ask: a Bearer token or Chroma's own header."""
    if settings.chroma_token is None:
        return {}
    token = settings.chroma_token.get_secret_value()
    if settings.chroma_auth_header == "x-chroma-token":
        return {"X-Chroma-Token": token}
    return {"Authorization": f"Bearer {token}"}


def _line(exc: BaseException) -> str:
    """An error's message on one line."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def vector_bytes(vector: Any) -> bytes:
    """A vector as the catalog keeps it: float32, little-endian."""
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from(kept: bytes) -> np.ndarray:
    return np.frombuffer(kept, dtype="<f4").astype(np.float32)


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


def chunk_metadata(article: Article, chunk: Chunk, embed_hash: str | None = None) -> dict[str, Any]:
    """What Chroma keeps beside a chunk's vector: enough to filter, sweep, reuse, and cite from elsewhere."""
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
    if embed_hash is not None:
        meta["embed_hash"] = embed_hash
    return meta
