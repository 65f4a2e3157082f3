"""The PostgreSQL catalog (`store.database_url`): one database shared by every machine running Byline, beside a
Chroma server. Same interface and semantics as the SQLite catalog; the lexical index is BM25 computed in SQL
(ingest.storage.postgres_lexical), kept in step by triggers inside the transactions that change chunks.

Connections come from a small pool (ingest.storage.postgres_connections): reads run in autocommit, one statement
each; a connection that died (a server restart, a dropped network) is found by the pool's check and replaced,
and a read that met a dead connection is tried once more. Locks are PostgreSQL advisory locks, so they hold
across machines and die with their holder's session. Feature SQL, written with `?` placeholders, runs with `%s` ones.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from ingest.clock import now_iso
from ingest.models import Article, Chunk
from ingest.storage import postgres_lexical
from ingest.storage.catalog import (
    ARTICLE_COLUMNS,
    Catalog,
    CatalogError,
    ChunkRow,
    Headline,
    LexicalQuery,
    Migration,
    Row,
    StoredVector,
    article_from_row,
    ref_spellings,
)
from ingest.storage.postgres_articles import write_articles
from ingest.storage.postgres_connections import ConnectionPool, PoolExhausted
from ingest.storage.postgres_import import MIGRATION_LOCK, TRANSACTION_LOCK, PostgresImport, row
from ingest.storage.postgres_schema import CORE_MIGRATIONS
from ingest.storage.postgres_upkeep import PostgresUpkeep

if TYPE_CHECKING:
    from psycopg import Connection

T = TypeVar("T")

# Connections one process keeps at most: the Slack bot's workers, a held lock and a writer.
POOL_SIZE = 8
# Seconds to wait for a connection (opening one, or a free one from the pool) before giving up.
CONNECT_TIMEOUT = 10.0
# Quoted strings, quoted identifiers and comments, whose `?` and `%` are not placeholders.
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/", re.DOTALL)


def describe_url(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{user}{parts.hostname or ''}{port}{parts.path}"


def one_line(exc: BaseException) -> str:
    """psycopg's messages span lines (server hints, per-address attempts): the gist, on one line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return "; ".join(lines[:2]) or type(exc).__name__


@lru_cache(maxsize=512)
def pg_sql(sql: str) -> str:
    """Portable SQL (`?` placeholders) as psycopg takes it: `?` becomes `%s` and a literal `%` becomes `%%`,
    outside quotes and comments."""
    out: list[str] = []
    last = 0
    for quoted in _QUOTED.finditer(sql):
        out.append(sql[last : quoted.start()].replace("%", "%%").replace("?", "%s"))
        out.append(quoted.group().replace("%", "%%"))
        last = quoted.end()
    out.append(sql[last:].replace("%", "%%").replace("?", "%s"))
    return "".join(out)


def lock_key(name: str) -> int:
    """A named lock's advisory lock key: 64 bits of a hash, so names never collide in practice."""
    return int.from_bytes(hashlib.sha256(f"byline:{name}".encode()).digest()[:8], "big", signed=True)


class _Statements:
    """The Statements of one transaction on one connection."""

    def __init__(self, conn: Connection[Any]) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(pg_sql(sql), params).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(pg_sql(sql), rows)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self.conn.execute(pg_sql(sql), params).fetchall()


class PostgresCatalog(PostgresUpkeep, PostgresImport, Catalog):
    """The catalog in a PostgreSQL database (14 or later, with the `unaccent` extension from contrib)."""

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE) -> None:
        import psycopg

        self.url = url
        self.where = describe_url(url)
        try:
            # One connection first: a wrong URL, password or schema fails here, once, with the server's reason.
            with psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT), **_SESSION) as conn:
                self._refuse_newer_schema(conn)
                self._migrate(conn, CORE_MIGRATIONS)
                conn.execute("UPDATE catalog_schema SET core = greatest(core, %s)", (len(CORE_MIGRATIONS),))
        except psycopg.Error as exc:
            raise CatalogError(f"cannot open the catalog at {self.where}: {one_line(exc)}") from exc
        self.pool = _open_pool(url, pool_size)
        self._count_lock = threading.Lock()

    def close(self) -> None:
        self.pool.close()

    def health(self) -> str:
        started = time.perf_counter()
        (version,) = self._read(lambda conn: row(conn, "SHOW server_version"))
        elapsed = (time.perf_counter() - started) * 1000
        return f"{self.where} (PostgreSQL {str(version).split()[0]}, answered in {elapsed:.1f} ms)"

    # -- connections -----------------------------------------------------------------------------------

    @contextmanager
    def _connection(self, what: str) -> Iterator[Connection[Any]]:
        """A pooled connection; a dead server or network becomes a one-line CatalogError."""
        import psycopg

        try:
            with self.pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolExhausted) as exc:
            raise CatalogError(f"catalog at {self.where}: cannot {what}: {one_line(exc)}") from exc

    def _read(self, query: Callable[[Connection[Any]], T], what: str = "read") -> T:
        """Run a read; once more on a fresh connection if the first one had died (the pool replaces it)."""
        import psycopg

        for attempt in (1, 2):
            try:
                with self._connection(what) as conn:
                    return query(conn)
            except CatalogError as exc:
                if attempt == 2 or not isinstance(exc.__cause__, psycopg.OperationalError):
                    raise
        raise AssertionError("unreachable")

    def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> list[Row]:
        """The rows of one read-only statement in psycopg's form (`%s` placeholders), read as `_read` reads."""
        return self._read(lambda conn: conn.execute(sql, params).fetchall())

    @contextmanager
    def _transaction(self, what: str = "write") -> Iterator[Connection[Any]]:
        with self._connection(what) as conn, conn.transaction():
            yield conn

    # -- lifecycle and feature state ---------------------------------------------------------------------

    def _refuse_newer_schema(self, conn: Connection[Any]) -> None:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS migrations (name text PRIMARY KEY, applied_at text NOT NULL)")
            # How many core migrations the newest Byline to open this database knew.
            conn.execute("CREATE TABLE IF NOT EXISTS catalog_schema (core integer NOT NULL)")
            conn.execute("INSERT INTO catalog_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM catalog_schema)")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        (core,) = row(conn, "SELECT max(core) FROM catalog_schema")
        if core > len(CORE_MIGRATIONS):
            raise CatalogError(
                f"the catalog at {self.where} was written by a newer Byline (schema {core}, this one knows "
                f"{len(CORE_MIGRATIONS)}): upgrade Byline on this machine"
            )

    def apply_migrations(self, migrations: Sequence[Migration]) -> list[str]:
        with self._connection("apply migrations") as conn:
            return self._migrate(conn, migrations)

    @staticmethod
    def _migrate(conn: Connection[Any], migrations: Sequence[Migration]) -> list[str]:
        """Apply those not yet applied, each in its own transaction, once even when several processes start
        together (an advisory lock held for each)."""
        done = {row[0] for row in conn.execute("SELECT name FROM migrations")}
        applied: list[str] = []
        for migration in migrations:
            if migration.name in done:
                continue
            if migration.postgres is None:
                raise CatalogError(f"migration {migration.name} has no PostgreSQL version")
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                if conn.execute("SELECT 1 FROM migrations WHERE name = %s", (migration.name,)).fetchone():
                    continue  # another process applied it meanwhile
                conn.execute(migration.postgres.encode())  # a script of several statements, no parameters
                conn.execute("INSERT INTO migrations VALUES (%s, %s)", (migration.name, now_iso()))
            applied.append(migration.name)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[_Statements]:
        with self._transaction() as conn:
            # One at a time across every process, as SQLite's BEGIN IMMEDIATE makes them.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (TRANSACTION_LOCK,))
            yield _Statements(conn)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._rows(pg_sql(sql), params)

    @contextmanager
    def lock(self, name: str, *, blocking: bool = True) -> Iterator[bool]:
        # A session advisory lock on a connection kept for the block: the server drops it if this process
        # dies or its connection breaks, so a crash never blocks another machine.
        key = lock_key(name)
        with self._connection(f"take the {name} lock") as conn:
            if blocking:
                conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            elif not row(conn, "SELECT pg_try_advisory_lock(%s)", key)[0]:
                yield False
                return
            try:
                yield True
            finally:
                _unlock(conn, key)

    # -- the write protocol ------------------------------------------------------------------------------

    def indexed_hashes(self, collection: str, article_ids: Sequence[str]) -> dict[str, str]:
        rows = self._rows(
            "SELECT article_id, hash FROM indexed WHERE collection = %s AND article_id = ANY(%s)",
            (collection, list(article_ids)),
        )
        return {row[0]: row[1] for row in rows}

    def commit_articles(
        self,
        collection: str,
        written: Sequence[tuple[Article, Sequence[Chunk]]],
        vectors: Sequence[StoredVector] = (),
        *,
        retire: Sequence[str] = (),
    ) -> list[str]:
        with self._transaction("switch articles") as conn:
            return write_articles(conn, collection, written, vectors, retire=retire)

    def remember_paths(self, pairs: Iterable[tuple[str, str]]) -> None:
        paths, ids = _columns(list(pairs), 2)
        with self._transaction() as conn:
            conn.execute(
                """INSERT INTO article_paths SELECT u.path, a.id FROM unnest(%s::text[], %s::text[]) AS u (path, id)
                   JOIN articles a ON a.id = u.id ON CONFLICT DO NOTHING""",
                (paths, ids),
            )

    def superseded(self, path: str, current_id: str) -> list[str]:
        rows = self._rows(
            """SELECT p.article_id FROM article_paths p WHERE p.path = %s AND p.article_id != %s
                   AND NOT EXISTS (SELECT 1 FROM article_paths q WHERE q.article_id = p.article_id
                                   AND q.path != p.path)""",
            (path, current_id),
        )
        return [row[0] for row in rows]

    def delete_articles(self, article_ids: Sequence[str]) -> None:
        with self._transaction("delete articles") as conn:
            conn.execute("DELETE FROM articles WHERE id = ANY(%s)", (list(article_ids),))
            conn.execute(
                """INSERT INTO forgotten SELECT id, %s FROM unnest(%s::text[]) AS u (id)
                   ON CONFLICT (article_id) DO UPDATE SET forgotten_at = excluded.forgotten_at""",
                (now_iso(), sorted(set(article_ids))),
            )

    def forgotten(self, article_ids: Sequence[str]) -> set[str]:
        rows = self._rows("SELECT article_id FROM forgotten WHERE article_id = ANY(%s)", (list(article_ids),))
        return {row[0] for row in rows}

    # -- reading -----------------------------------------------------------------------------------------

    def resolve(self, ref: str) -> list[str]:
        rows = self._rows(
            """SELECT id FROM articles WHERE id = ANY(%(refs)s) OR url = ANY(%(refs)s)
                   UNION SELECT article_id FROM article_paths WHERE path = ANY(%(refs)s)""",
            {"refs": sorted(ref_spellings(ref))},
        )
        return sorted(row[0] for row in rows)

    def article(self, article_id: str) -> Article | None:
        rows = self._rows(
            f"SELECT {ARTICLE_COLUMNS} FROM articles WHERE id = %s",
            (article_id,),
        )
        if not rows:
            return None
        return article_from_row(rows[0])

    def chunk_rows(self, collection: str, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        rows = self._rows(_CURRENT_CHUNKS + " AND c.id = ANY(%s)", (collection, list(chunk_ids)))
        return {row[0]: ChunkRow(*row) for row in rows}

    def article_chunks(self, collection: str, article_ids: Sequence[str]) -> list[ChunkRow]:
        rows = self._rows(_CURRENT_CHUNKS + " AND c.article_id = ANY(%s)", (collection, list(article_ids)))
        order = {article_id: i for i, article_id in enumerate(article_ids)}
        found = [ChunkRow(*row) for row in rows]
        return sorted(found, key=lambda row: (order[row.article_id], row.start, row.end))

    def lexical_search(self, collection: str, query: LexicalQuery) -> list[tuple[str, float]]:
        return self._read(lambda conn: postgres_lexical.lexical_search(conn, collection, query), "search")

    def recent_articles(self, collection: str, n: int) -> list[Headline]:
        rows = self._rows(
            """SELECT a.id, a.title, a.source, a.published_at FROM articles a
                   JOIN indexed i ON i.article_id = a.id AND i.collection = %s
                   ORDER BY a.published_ts IS NULL, a.published_ts DESC, a.ingested_at DESC, a.id
                   LIMIT %s""",
            (collection, n),
        )
        return [Headline(*row) for row in rows]

    def article_count(self, collection: str) -> int:
        return self._read(lambda conn: _count(conn, "indexed WHERE collection = %s", collection))

    def stats(self, collection: str) -> dict[str, object]:
        def figures(conn: Connection[Any]) -> dict[str, object]:
            chunks, tokens = row(
                conn, "SELECT count(*), coalesce(sum(token_count), 0) FROM chunks WHERE collection = %s", collection
            )
            first, last = row(conn, "SELECT min(published_at), max(published_at) FROM articles")
            sources = conn.execute(
                "SELECT coalesce(source, '(unknown)'), count(*) FROM articles GROUP BY 1 ORDER BY 2 DESC, 1"
            ).fetchall()
            return {
                "articles": _count(conn, "articles"),
                "indexed_articles": _count(conn, "indexed WHERE collection = %s", collection),
                "chunks": chunks,
                "tokens": int(tokens),
                "sources": {row[0]: row[1] for row in sources},
                "published_first": first,
                "published_last": last,
                "pending_writes": _count(conn, "pending_writes WHERE collection = %s", collection),
                "instruction_like_chunks": _count(
                    conn, "chunks WHERE collection = %s AND instruction_like = 1", collection
                ),
            }

        return self._read(figures, "read statistics")

    def applied_migrations(self) -> list[str]:
        return [row[0] for row in self.fetch("SELECT name FROM migrations ORDER BY name")]


# Current chunks (of the version the collection's vectors hold) as ChunkRows; the caller adds a condition.
_CURRENT_CHUNKS = """SELECT c.id, c.rowid, c.article_id, c.text, c.start_char, c.end_char, a.title, a.url, a.path,
                            a.source, a.author, a.published_at, c.instruction_like::boolean
                     FROM chunks c JOIN articles a ON a.id = c.article_id
                     JOIN indexed i ON i.collection = c.collection AND i.article_id = c.article_id
                     WHERE c.collection = %s AND i.hash = a.hash"""

# Every connection: autocommit (a read is one statement), no JIT (compiling, for costs estimated from guessed row
# counts of unnested arrays, took longer than the queries).
_SESSION: dict[str, Any] = {"autocommit": True, "options": "-c jit=off"}


def _open_pool(url: str, size: int) -> ConnectionPool:
    import psycopg

    return ConnectionPool(
        lambda: psycopg.connect(url, connect_timeout=int(CONNECT_TIMEOUT), **_SESSION), size, wait=CONNECT_TIMEOUT
    )


def _count(conn: Connection[Any], rows: str, *params: object) -> int:
    """count(*) of FROM `rows` (a table and conditions)."""
    return int(row(conn, "SELECT count(*) FROM " + rows, *params)[0])


def _unlock(conn: Connection[Any], key: int) -> None:
    import psycopg

    try:
        conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    except psycopg.Error:
        conn.close()  # the session is gone, and its lock with it; the pool drops a closed connection


def _columns(rows: Sequence[Sequence[str]], width: int) -> list[list[str]]:
    return [[row[i] for row in rows] for i in range(width)]
