"""The SQLite catalog (the default, embedded backend): one database file under BYLINE_HOME, shared safely by
threads and processes (WAL), with an FTS5 BM25 index kept in step by triggers.

Schema changes are named, ordered migrations; append new ones, never edit old.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from itertools import repeat
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from more_itertools import batched

from ingest.clock import now_iso
from ingest.models import Article, Chunk, source_key
from ingest.storage.catalog import (
    ARTICLE_COLUMNS,
    DELETING,
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
from ingest.storage.sqlite_export import SQLiteExport
from ingest.storage.sqlite_schema import CORE_MIGRATIONS, statements
from ingest.storage.sqlite_upkeep import SQLiteUpkeep

# Below this many chunks every query term is scored: BM25 is fast there, and small collections have few
# truly common words.
COMMON_TERMS_FROM = 10_000


def _fts_any(terms: Sequence[str]) -> str:
    """An FTS5 query matching any of the terms, each quoted so it is a phrase and never FTS5 syntax."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


class _Statements:
    """The Statements of a transaction on one connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [tuple(row) for row in self.conn.execute(sql, params)]


class SQLiteCatalog(SQLiteUpkeep, SQLiteExport, Catalog):
    """`catalog.sqlite` under BYLINE_HOME; one connection, shared by this process's threads under a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as exc:
            raise CatalogError(f"cannot open the catalog {path}: {exc}") from exc
        self.conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._chunk_count: tuple[tuple[int, int], int] | None = None  # (database version, chunks then)
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        # Deleted rows are overwritten, not left in free pages: a forgotten article leaves no text behind.
        self.conn.execute("PRAGMA secure_delete=ON")
        # The source filter compares outlets exactly as the vector store's metadata does.
        self.conn.create_function("source_key", 1, source_key, deterministic=True)
        self.apply_migrations(CORE_MIGRATIONS)

    def close(self) -> None:
        self.conn.close()

    def health(self) -> str:
        try:
            with self._lock:
                self.conn.execute("SELECT 1").fetchone()
        except sqlite3.Error as exc:
            raise CatalogError(f"the catalog {self.path} does not answer: {exc}") from exc
        return f"sqlite {self.path}"

    def apply_migrations(self, migrations: Sequence[Migration]) -> list[str]:
        applied: list[str] = []
        with self._transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {row[0] for row in self.fetch("SELECT name FROM migrations")}
        for migration in migrations:
            if migration.name in done:
                continue
            if migration.sqlite is None:
                raise CatalogError(f"migration {migration.name} has no SQLite version")
            with self._transaction() as db:
                if db.execute("SELECT 1 FROM migrations WHERE name = ?", (migration.name,)).fetchone():
                    continue  # another process applied it meanwhile
                for statement in statements(migration.sqlite):
                    db.execute(statement)
                db.execute("INSERT INTO migrations VALUES (?, ?)", (migration.name, now_iso()))
            applied.append(migration.name)
        return applied

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error: IMMEDIATE takes the write lock first, so
        another process's read-then-write cannot interleave."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[_Statements]:
        with self._transaction() as conn:
            yield _Statements(conn)

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with self._lock:
            return [tuple(row) for row in self.conn.execute(sql, params)]

    @contextmanager
    def lock(self, name: str, *, blocking: bool = True) -> Iterator[bool]:
        # An OS file lock beside the database: released by the OS when its process dies.
        file_lock = FileLock(self.path.parent / f"{name}.lock")
        try:
            file_lock.acquire(timeout=-1 if blocking else 0)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            file_lock.release()

    # -- what is indexed -------------------------------------------------------------------------------

    def indexed_hashes(self, collection: str, article_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self._lock:
            for batch in batched(article_ids, 500):
                marks = ",".join("?" * len(batch))
                rows = self.conn.execute(
                    f"SELECT article_id, hash FROM indexed WHERE collection = ? AND article_id IN ({marks})",
                    (collection, *batch),
                )
                found.update({row[0]: row[1] for row in rows})
        return found

    def commit_articles(
        self,
        collection: str,
        written: Sequence[tuple[Article, Sequence[Chunk]]],
        vectors: Sequence[StoredVector] = (),
        *,
        retire: Sequence[str] = (),
    ) -> list[str]:
        if vectors and len(vectors) != sum(len(chunks) for _, chunks in written):
            raise ValueError("one vector per chunk expected")
        kept: Iterator[StoredVector | None] = iter(vectors) if vectors else repeat(None)
        now = now_iso()
        replaced: list[str] = []
        with self._transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO pending_writes VALUES (?, ?, ?, ?)",
                [(collection, article_id, DELETING, now) for article_id in retire],
            )
            db.executemany("DELETE FROM articles WHERE id = ?", [(article_id,) for article_id in retire])
            for article, chunks in written:
                replaced += [
                    row[0]
                    for row in db.execute(
                        "SELECT id FROM chunks WHERE collection = ? AND article_id = ?",
                        (collection, article.id),
                    )
                ]
                db.execute("DELETE FROM chunks WHERE collection = ? AND article_id = ?", (collection, article.id))
                self._upsert_article(db, article, now)
                db.executemany(
                    """INSERT INTO chunks (id, collection, article_id, position, start_char, end_char, text,
                       token_count, instruction_like, vector, embed_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    [
                        (
                            c.id,
                            collection,
                            c.article_id,
                            c.position,
                            c.start,
                            c.end,
                            c.text,
                            c.token_count,
                            int(c.instruction_like),
                            v.vector if v else None,
                            v.embed_hash if v else None,
                        )
                        for c, v in zip(chunks, kept, strict=False)
                    ],
                )
                db.execute(
                    "INSERT OR REPLACE INTO indexed VALUES (?, ?, ?)",
                    (collection, article.id, article.content_hash),
                )
                db.execute("DELETE FROM forgotten WHERE article_id = ?", (article.id,))  # ingested again on purpose
        new_ids = {c.id for _, chunks in written for c in chunks}
        return [chunk_id for chunk_id in replaced if chunk_id not in new_ids]

    def _upsert_article(self, db: sqlite3.Connection, article: Article, now: str) -> None:
        published = article.published_at
        db.execute(
            """INSERT INTO articles (id, title, url, path, source, author, published_at, published_ts, hash,
                   text, ingested_at, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT(id) DO UPDATE SET title = excluded.title, url = excluded.url,
                   path = COALESCE(excluded.path, articles.path), source = excluded.source,
                   author = excluded.author, published_at = excluded.published_at,
                   published_ts = excluded.published_ts, hash = excluded.hash, text = excluded.text,
                   updated_at = excluded.updated_at""",
            (
                article.id,
                article.title,
                article.url,
                article.path,
                article.source,
                article.author,
                published.isoformat() if published else None,
                published.timestamp() if published else None,
                article.content_hash,
                article.text,
                now,
                now,
            ),
        )
        if article.path:
            db.execute("INSERT OR IGNORE INTO article_paths VALUES (?, ?)", (article.path, article.id))

    def remember_paths(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record that a file (path) holds an already-indexed article, so `forget PATH` finds it."""
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO article_paths SELECT ?, id FROM articles WHERE id = ?", list(pairs))

    def superseded(self, path: str, current_id: str) -> list[str]:
        """Articles other than `current_id` whose only file was `path`: older versions of that file."""
        with self._lock:
            rows = self.conn.execute(
                """SELECT p.article_id FROM article_paths p WHERE p.path = ? AND p.article_id != ?
                   AND NOT EXISTS (SELECT 1 FROM article_paths q WHERE q.article_id = p.article_id
                                   AND q.path != p.path)""",
                (path, current_id),
            ).fetchall()
        return [row[0] for row in rows]

    # -- reading ---------------------------------------------------------------------------------------

    def chunk_rows(self, collection: str, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        """Current chunks by id: a chunk of a superseded article version is not returned."""
        # `+c.collection` keeps SQLite on the chunk-id index: via chunks_article it scanned the whole
        # collection (50 ms at 150k chunks, 0.7 ms this way).
        rows: dict[str, ChunkRow] = {}
        with self._lock:
            for batch in batched(chunk_ids, 500):
                marks = ",".join("?" * len(batch))
                for row in self.conn.execute(
                    f"""SELECT c.id, c.rowid, c.article_id, c.text, c.start_char, c.end_char, a.title, a.url,
                               a.path, a.source, a.author, a.published_at, c.instruction_like
                        FROM chunks c JOIN articles a ON a.id = c.article_id
                        JOIN indexed i ON i.collection = c.collection AND i.article_id = c.article_id
                        WHERE +c.collection = ? AND c.id IN ({marks}) AND i.hash = a.hash""",
                    (collection, *batch),
                ):
                    *columns, flag = row
                    chunk = ChunkRow(*columns)
                    rows[chunk.chunk_id] = replace(chunk, instruction_like=None if flag is None else bool(flag))
        return rows

    def article_chunks(self, collection: str, article_ids: Sequence[str]) -> list[ChunkRow]:
        rows: list[ChunkRow] = []
        with self._lock:
            for batch in batched(article_ids, 500):
                marks = ",".join("?" * len(batch))
                rows += [
                    ChunkRow(*row)
                    for row in self.conn.execute(
                        f"""SELECT c.id, c.rowid, c.article_id, c.text, c.start_char, c.end_char, a.title, a.url,
                                   a.path, a.source, a.author, a.published_at
                            FROM chunks c JOIN articles a ON a.id = c.article_id
                            JOIN indexed i ON i.collection = c.collection AND i.article_id = c.article_id
                            WHERE c.collection = ? AND c.article_id IN ({marks}) AND i.hash = a.hash""",
                        (collection, *batch),
                    )
                ]
        order = {article_id: i for i, article_id in enumerate(article_ids)}
        return sorted(rows, key=lambda row: (order[row.article_id], row.start, row.end))

    def lexical_search(self, collection: str, query: LexicalQuery) -> list[tuple[str, float]]:
        terms, n, filters = query.terms, query.n, query.filters
        title_weight, common_share = query.title_weight, query.common_share
        if not terms or n <= 0:
            return []
        if common_share < 1 and len(terms) > 1:
            terms = self._without_common(terms, common_share)
        match = _fts_any(terms)
        where = ["c.collection = ?", "i.hash = a.hash"]
        params: list[object] = [collection]
        if filters and filters.sources:
            keys = filters.source_keys()
            where.append(f"source_key(a.source) IN ({','.join('?' * len(keys))})")
            params += keys
        since, until = filters.published_range() if filters else (None, None)
        if since is not None:
            where.append("a.published_ts >= ?")
            params.append(since)
        if until is not None:
            where.append("a.published_ts <= ?")
            params.append(until)
        # bm25() is lower for better matches; its arguments weigh the title and text columns.
        joins = """JOIN chunks c ON c.rowid = f.rowid JOIN articles a ON a.id = c.article_id
                   JOIN indexed i ON i.collection = c.collection AND i.article_id = c.article_id"""
        if len(where) == 2:
            # Unfiltered (no source or date condition), the usual case: rank inside FTS5 first and join only
            # the best rows (joining every match, tens of thousands for common words in a large archive, was most
            # of the query's time). Rows of other collections or superseded versions drop out at the join: fetch
            # more, and check.
            fetched = 2 * n
            sql = f"""SELECT c.id, -f.score FROM (SELECT rowid, bm25(chunks_fts, ?, 1.0) AS score FROM chunks_fts
                      WHERE chunks_fts MATCH ? ORDER BY score LIMIT ?) f {joins}
                      WHERE {" AND ".join(where)} ORDER BY f.score LIMIT ?"""
            with self._lock:
                rows = self.conn.execute(sql, (title_weight, match, fetched, *params, n)).fetchall()
            if len(rows) == n or not self._fts_has_more(match, fetched):
                return [(row[0], float(row[1])) for row in rows]
        sql = f"""SELECT c.id, f.score FROM (SELECT rowid, -bm25(chunks_fts, ?, 1.0) AS score FROM chunks_fts
                  WHERE chunks_fts MATCH ?) f {joins}
                  WHERE {" AND ".join(where)} ORDER BY f.score DESC LIMIT ?"""
        with self._lock:
            rows = self.conn.execute(sql, (title_weight, match, *params, n)).fetchall()
        return [(row[0], float(row[1])) for row in rows]

    def _without_common(self, terms: Sequence[str], share: float) -> Sequence[str]:
        """`terms` less those in more than `share` of the chunks, unless none would be left.

        Such a term has a BM25 weight near zero, yet scoring it means visiting every chunk it occurs in: in a
        156k-chunk archive that was most of the query's time (SciFact nDCG@10 unchanged at share 0.2).
        """
        total = self._count_chunks()
        if total < COMMON_TERMS_FROM:
            return terms
        cap = int(share * total)
        with self._lock:
            # Counting stops past the cap, so a very common term costs no more than a bounded scan.
            counts = {
                term: self.conn.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)",
                    (_fts_any([term]), cap + 1),
                ).fetchone()[0]
                for term in terms
            }
        # A term found nowhere keeps nothing else out: the common ones stay when only such terms would remain.
        kept = [term for term in terms if 0 < counts[term] <= cap]
        return kept or terms

    def _count_chunks(self) -> int:
        """Chunks in the catalog (one lexical row each), counted again only after this or another connection
        wrote."""
        with self._lock:
            version = (self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes)
            if self._chunk_count is None or self._chunk_count[0] != version:
                self._chunk_count = (version, self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
            return self._chunk_count[1]

    def _fts_has_more(self, match: str, than: int) -> bool:
        with self._lock:
            row = self.conn.execute(
                "SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT 1 OFFSET ?", (match, than)
            ).fetchone()
        return row is not None

    def article(self, article_id: str) -> Article | None:
        rows = self.fetch(
            f"SELECT {ARTICLE_COLUMNS} FROM articles WHERE id = ?",
            (article_id,),
        )
        if not rows:
            return None
        return article_from_row(rows[0])

    def resolve(self, ref: str) -> list[str]:
        """Article ids matching an id, a URL or a file path."""
        with self._lock:
            ids: list[str] = []
            for value in ref_spellings(ref):
                for sql in (
                    "SELECT id FROM articles WHERE id = ?",
                    "SELECT id FROM articles WHERE url = ?",
                    "SELECT article_id FROM article_paths WHERE path = ?",
                ):
                    ids += [row[0] for row in self.conn.execute(sql, (value,))]
        return sorted(set(ids))

    def delete_articles(self, article_ids: Sequence[str]) -> None:
        """Remove articles and everything hanging off them (chunks, paths, indexed rows); remember them as
        forgotten, so a feed that still lists one does not bring it back."""
        now = now_iso()
        with self._transaction() as db:
            db.executemany("DELETE FROM articles WHERE id = ?", [(a,) for a in article_ids])
            db.executemany("INSERT OR REPLACE INTO forgotten VALUES (?, ?)", [(a, now) for a in article_ids])

    def forgotten(self, article_ids: Sequence[str]) -> set[str]:
        """Those of `article_ids` removed with forget and not ingested again since."""
        found: set[str] = set()
        with self._lock:
            for batch in batched(article_ids, 500):
                marks = ",".join("?" * len(batch))
                rows = self.conn.execute(f"SELECT article_id FROM forgotten WHERE article_id IN ({marks})", batch)
                found.update(row[0] for row in rows)
        return found

    def recent_articles(self, collection: str, n: int) -> list[Headline]:
        rows = self.fetch(
            """SELECT a.id, a.title, a.source, a.published_at FROM articles a
                   JOIN indexed i ON i.article_id = a.id AND i.collection = ?
                   ORDER BY a.published_ts IS NULL, a.published_ts DESC, a.ingested_at DESC, a.id
                   LIMIT ?""",
            (collection, n),
        )
        return [Headline(*row) for row in rows]

    def article_count(self, collection: str) -> int:
        with self._lock:
            row = self.conn.execute("SELECT COUNT(*) FROM indexed WHERE collection = ?", (collection,)).fetchone()
        return int(row[0])

    def stats(self, collection: str) -> dict[str, object]:
        with self._lock:
            one = self.conn.execute
            articles = one("SELECT COUNT(*) FROM articles").fetchone()[0]
            indexed = one("SELECT COUNT(*) FROM indexed WHERE collection = ?", (collection,)).fetchone()[0]
            chunks, tokens = one(
                "SELECT COUNT(*), COALESCE(SUM(token_count), 0) FROM chunks WHERE collection = ?",
                (collection,),
            ).fetchone()
            sources = one(
                "SELECT COALESCE(source, '(unknown)'), COUNT(*) FROM articles GROUP BY 1 ORDER BY 2 DESC"
            ).fetchall()
            first, last = one("SELECT MIN(published_at), MAX(published_at) FROM articles").fetchone()
            pending = one("SELECT COUNT(*) FROM pending_writes WHERE collection = ?", (collection,)).fetchone()[0]
            instruction_like = one(
                "SELECT COUNT(*) FROM chunks WHERE collection = ? AND instruction_like = 1", (collection,)
            ).fetchone()[0]
        return {
            "articles": articles,
            "indexed_articles": indexed,
            "chunks": chunks,
            "tokens": tokens,
            "sources": {row[0]: row[1] for row in sources},
            "published_first": first,
            "published_last": last,
            "pending_writes": pending,
            "instruction_like_chunks": instruction_like,
        }
