"""The SQLite catalog's upkeep: the write generation, the write protocol's pending marks and the store's
bookkeeping, checking and repairing the lexical index, the vectors kept and what the vector store should hold, and
leaving no trace of deleted rows.

A mixin of `SQLiteCatalog` (kept apart so each file stays readable); it uses only the catalog's connection, its
lock and its transactions.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import datetime

from more_itertools import batched

from ingest.clock import now_iso
from ingest.models import Article, Chunk
from ingest.storage.catalog import DELETING, GENERATION, PendingWrite, StoredVector


class SQLiteUpkeep:
    # SQLiteCatalog's connection, lock and transactions
    conn: sqlite3.Connection
    _lock: threading.RLock
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]

    # -- the write generation and the store's bookkeeping ----------------------------------------------

    def generation(self) -> int:
        return int(self.state(GENERATION) or 0)

    def bump_generation(self) -> int:
        with self._transaction() as db:
            db.execute(
                """INSERT INTO store_state (key, value) VALUES (?, '1')
                   ON CONFLICT(key) DO UPDATE SET value = CAST(CAST(value AS INTEGER) + 1 AS TEXT)""",
                (GENERATION,),
            )
            return int(db.execute("SELECT value FROM store_state WHERE key = ?", (GENERATION,)).fetchone()[0])

    def state(self, key: str) -> str | None:
        with self._lock:
            row = self.conn.execute("SELECT value FROM store_state WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_state(self, key: str, value: str | None) -> None:
        with self._transaction() as db:
            if value is None:
                db.execute("DELETE FROM store_state WHERE key = ?", (key,))
            else:
                db.execute(
                    "INSERT INTO store_state (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                    (key, value, value),
                )

    # -- the write protocol's marks -------------------------------------------------------------------------

    def mark_pending(self, collection: str, articles: Sequence[Article], *, delete: Sequence[str] = ()) -> None:
        now = now_iso()
        rows = [(collection, a.id, a.content_hash, now) for a in articles]
        rows += [(collection, article_id, DELETING, now) for article_id in delete]
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO pending_writes VALUES (?, ?, ?, ?)", rows)

    def pending(self, collection: str) -> list[PendingWrite]:
        with self._lock:
            rows = self.conn.execute(
                """SELECT p.article_id, i.hash, p.hash = ? FROM pending_writes p
                   LEFT JOIN indexed i ON i.collection = p.collection AND i.article_id = p.article_id
                   WHERE p.collection = ?""",
                (DELETING, collection),
            ).fetchall()
        return [PendingWrite(row[0], row[1], bool(row[2])) for row in rows]

    def clear_pending(self, collection: str, article_ids: Sequence[str]) -> None:
        with self._transaction() as db:
            db.executemany(
                "DELETE FROM pending_writes WHERE collection = ? AND article_id = ?",
                [(collection, a) for a in article_ids],
            )

    # -- leaving nothing behind ------------------------------------------------------------------------

    def purge_deleted(self) -> None:
        """Deleted rows are zeroed as they go (secure_delete); this merges the lexical index's segments, which
        keep deleted chunks' terms until merged, then copies the write-ahead log into the database and empties
        it, so no older page image survives there."""
        with self._transaction() as db:
            db.execute("INSERT INTO chunks_fts (chunks_fts) VALUES ('optimize')")
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    # -- checking --------------------------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        with self._lock:
            try:
                problems = [str(row[0]) for row in self.conn.execute("PRAGMA integrity_check")]
                problems = [] if problems == ["ok"] else problems
                # The lexical index checked against the chunk texts it stores.
                self.conn.execute("INSERT INTO chunks_fts (chunks_fts, rank) VALUES ('integrity-check', 1)")
            except sqlite3.DatabaseError as exc:
                problems.append(f"lexical index: {exc}")
        return problems

    def chunk_count(self, collection: str) -> int:
        with self._lock:
            row = self.conn.execute("SELECT count(*) FROM chunks WHERE collection = ?", (collection,)).fetchone()
        return int(row[0])

    def chunk_ids(self, collection: str) -> set[str]:
        with self._lock:
            rows = self.conn.execute("SELECT id FROM chunks WHERE collection = ?", (collection,))
            return {row[0] for row in rows}

    def indexed_article_ids(self, collection: str) -> list[str]:
        with self._lock:
            rows = self.conn.execute(
                "SELECT article_id FROM indexed WHERE collection = ? ORDER BY article_id", (collection,)
            )
            return [row[0] for row in rows]

    def indexed_chunks(self, collection: str, article_ids: Sequence[str]) -> list[tuple[Article, list[Chunk]]]:
        found: list[tuple[Article, list[Chunk]]] = []
        for batch in batched(article_ids, 500):
            found += self._indexed_chunks(collection, batch)
        return found

    def _indexed_chunks(self, collection: str, article_ids: Sequence[str]) -> Iterator[tuple[Article, list[Chunk]]]:
        marks = ",".join("?" * len(article_ids))
        with self._lock:
            articles = self.conn.execute(
                f"""SELECT a.id, a.title, a.text, a.url, a.path, a.source, a.author, a.published_at, i.hash
                    FROM articles a JOIN indexed i ON i.article_id = a.id AND i.collection = ?
                    WHERE a.id IN ({marks}) ORDER BY a.id""",
                (collection, *article_ids),
            ).fetchall()
            chunk_rows = self.conn.execute(
                f"""SELECT article_id, position, start_char, end_char, text, token_count FROM chunks
                    WHERE collection = ? AND article_id IN ({marks}) ORDER BY article_id, position""",
                (collection, *article_ids),
            ).fetchall()
        by_article: dict[str, list[Chunk]] = {}
        hashes = {row[0]: row[8] for row in articles}
        for article_id, position, start, end, text, tokens in chunk_rows:
            chunk = Chunk(article_id, position, start, end, text, "", tokens, content_hash=hashes.get(article_id, ""))
            by_article.setdefault(article_id, []).append(chunk)
        for row in articles:
            published = datetime.fromisoformat(row[7]) if row[7] else None
            article = Article(row[0], row[1], row[2], url=row[3], path=row[4], source=row[5], author=row[6])
            article.published_at = published
            yield article, by_article.get(row[0], [])

    def stored_vectors(self, collection: str, chunk_ids: Sequence[str]) -> dict[str, StoredVector]:
        found: dict[str, StoredVector] = {}
        with self._lock:
            for batch in batched(chunk_ids, 500):
                marks = ",".join("?" * len(batch))
                rows = self.conn.execute(
                    f"""SELECT id, vector, embed_hash FROM chunks
                        WHERE collection = ? AND id IN ({marks}) AND vector IS NOT NULL""",
                    (collection, *batch),
                )
                found.update({row[0]: StoredVector(bytes(row[1]), row[2]) for row in rows})
        return found

    def store_vectors(self, collection: str, vectors: Iterable[tuple[str, StoredVector]]) -> None:
        with self._transaction() as db:
            db.executemany(
                "UPDATE chunks SET vector = ?, embed_hash = ? WHERE collection = ? AND id = ?",
                [(kept.vector, kept.embed_hash, collection, chunk_id) for chunk_id, kept in vectors],
            )

    def chunks_without_vectors(self, collection: str) -> list[str]:
        with self._lock:
            rows = self.conn.execute("SELECT id FROM chunks WHERE collection = ? AND vector IS NULL", (collection,))
            return [row[0] for row in rows]

    def lexical_gaps(self) -> tuple[int, int, int]:
        with self._lock:
            one = self.conn.execute
            chunks = one("SELECT count(*) FROM chunks").fetchone()[0]
            rows = one("SELECT count(*) FROM chunks_fts").fetchone()[0]
            missing = one("SELECT count(*) FROM chunks WHERE rowid NOT IN (SELECT rowid FROM chunks_fts)").fetchone()
            extra = one("SELECT count(*) FROM chunks_fts WHERE rowid NOT IN (SELECT rowid FROM chunks)").fetchone()
        return int(chunks), int(rows), int(missing[0]) + int(extra[0])

    def repair_lexical(self) -> int:
        with self._transaction() as db:
            added = db.execute(
                """INSERT INTO chunks_fts (rowid, title, text)
                   SELECT c.rowid, a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article_id
                   WHERE c.rowid NOT IN (SELECT rowid FROM chunks_fts)"""
            ).rowcount
            dropped = db.execute("DELETE FROM chunks_fts WHERE rowid NOT IN (SELECT rowid FROM chunks)").rowcount
        return int(added) + int(dropped)
