"""The PostgreSQL catalog's upkeep: the write generation, the write protocol's pending marks and the store's
bookkeeping, the vectors kept and what the vector store should hold, and checking and repairing the lexical
index (ingest.storage.postgres_lexical). The same semantics as the SQLite catalog's (ingest.storage.sqlite_upkeep).

A mixin of `PostgresCatalog` (kept apart so each file stays readable); it uses only the catalog's reads and
transactions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ingest.clock import now_iso
from ingest.models import Article, Chunk
from ingest.storage.catalog import DELETING, GENERATION, PendingWrite, StoredVector
from ingest.storage.postgres_import import row

if TYPE_CHECKING:
    from psycopg import Connection

T = TypeVar("T")

# Current chunks' rowids whose postings are missing (the lexemes say they should have some), and rowids with
# postings but no chunk.
_LEXICAL_MISSING = """SELECT c.rowid FROM chunks c
                      WHERE c.lexemes <> '' AND NOT EXISTS (SELECT 1 FROM lexical_postings p WHERE p.chunk = c.rowid)"""
_LEXICAL_EXTRA = """SELECT DISTINCT p.chunk FROM lexical_postings p
                    WHERE NOT EXISTS (SELECT 1 FROM chunks c WHERE c.rowid = p.chunk)"""
# Each collection's totals as the lexical index counts them, beside what its chunks add up to.
_LEXICAL_TOTALS = """SELECT lc.name, lc.chunks, lc.tokens, coalesce(s.chunks, 0), coalesce(s.tokens, 0)
                     FROM lexical_collections lc LEFT JOIN (
                         SELECT collection, count(*) AS chunks, sum(lexical_length) AS tokens FROM chunks GROUP BY 1
                     ) s ON s.collection = lc.name"""


class PostgresUpkeep:
    # PostgresCatalog's reads and transactions
    _read: Callable[..., Any]
    _rows: Callable[..., list[Any]]
    _transaction: Callable[..., AbstractContextManager[Connection[Any]]]

    # -- the write generation and the store's bookkeeping ----------------------------------------------

    def generation(self) -> int:
        return int(self.state(GENERATION) or 0)

    def bump_generation(self) -> int:
        with self._transaction() as conn:
            (value,) = row(
                conn,
                """INSERT INTO store_state (key, value) VALUES (%s, '1')
                   ON CONFLICT (key) DO UPDATE SET value = (store_state.value::bigint + 1)::text RETURNING value""",
                GENERATION,
            )
        return int(value)

    def state(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM store_state WHERE key = %s", (key,))
        return str(rows[0][0]) if rows else None

    def set_state(self, key: str, value: str | None) -> None:
        with self._transaction() as conn:
            if value is None:
                conn.execute("DELETE FROM store_state WHERE key = %s", (key,))
            else:
                conn.execute(
                    "INSERT INTO store_state VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )

    # -- the write protocol's marks -------------------------------------------------------------------------

    def mark_pending(self, collection: str, articles: Sequence[Article], *, delete: Sequence[str] = ()) -> None:
        latest = {a.id: a.content_hash for a in articles} | dict.fromkeys(delete, DELETING)
        with self._transaction() as conn:
            conn.execute(
                """INSERT INTO pending_writes
                   SELECT %s, u.id, u.hash, %s FROM unnest(%s::text[], %s::text[]) AS u (id, hash)
                   ON CONFLICT (collection, article_id) DO UPDATE
                       SET hash = excluded.hash, started_at = excluded.started_at""",
                (collection, now_iso(), list(latest), list(latest.values())),
            )

    def pending(self, collection: str) -> list[PendingWrite]:
        rows = self._rows(
            """SELECT p.article_id, i.hash, p.hash = %s FROM pending_writes p
                   LEFT JOIN indexed i ON i.collection = p.collection AND i.article_id = p.article_id
                   WHERE p.collection = %s""",
            (DELETING, collection),
        )
        return [PendingWrite(r[0], r[1], bool(r[2])) for r in rows]

    def clear_pending(self, collection: str, article_ids: Sequence[str]) -> None:
        with self._transaction() as conn:
            conn.execute(
                "DELETE FROM pending_writes WHERE collection = %s AND article_id = ANY(%s)",
                (collection, list(article_ids)),
            )

    # -- leaving nothing behind ------------------------------------------------------------------------

    def purge_deleted(self) -> None:
        """Nothing to do here: the rows are deleted in their transactions. What the server's files keep of them
        until vacuumed (dead tuples, its write-ahead log and archives) is the server operator's to manage."""

    # -- checking --------------------------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        """The server checks its own pages; what is checked here is the lexical index's bookkeeping: each
        collection's chunk and token totals against its chunks."""
        rows = self._rows(_LEXICAL_TOTALS)
        return [
            f"lexical totals of {name}: {chunks} chunks and {tokens} tokens counted, {real_chunks} and "
            f"{real_tokens} there"
            for name, chunks, tokens, real_chunks, real_tokens in rows
            if (chunks, tokens) != (real_chunks, real_tokens)
        ]

    def chunk_count(self, collection: str) -> int:
        rows = self._rows("SELECT count(*) FROM chunks WHERE collection = %s", (collection,))
        return int(rows[0][0])

    def chunk_ids(self, collection: str) -> set[str]:
        rows = self._rows("SELECT id FROM chunks WHERE collection = %s", (collection,))
        return {r[0] for r in rows}

    def indexed_article_ids(self, collection: str) -> list[str]:
        rows = self._rows(
            'SELECT article_id FROM indexed WHERE collection = %s ORDER BY article_id COLLATE "C"', (collection,)
        )
        return [r[0] for r in rows]

    def indexed_chunks(self, collection: str, article_ids: Sequence[str]) -> list[tuple[Article, list[Chunk]]]:
        def read(conn: Connection[Any]) -> tuple[list[Any], list[Any]]:
            articles = conn.execute(
                """SELECT a.id, a.title, a.text, a.url, a.path, a.source, a.author, a.published_at, i.hash
                   FROM articles a JOIN indexed i ON i.article_id = a.id AND i.collection = %s
                   WHERE a.id = ANY(%s) ORDER BY a.id COLLATE "C"
                """,
                (collection, list(article_ids)),
            ).fetchall()
            chunks = conn.execute(
                """SELECT article_id, position, start_char, end_char, text, token_count FROM chunks
                   WHERE collection = %s AND article_id = ANY(%s) ORDER BY article_id, position""",
                (collection, list(article_ids)),
            ).fetchall()
            return articles, chunks

        articles, chunk_rows = self._read(read)
        hashes = {r[0]: r[8] for r in articles}
        by_article: dict[str, list[Chunk]] = {}
        for article_id, position, start, end, text, tokens in chunk_rows:
            chunk = Chunk(article_id, position, start, end, text, "", tokens, content_hash=hashes.get(article_id, ""))
            by_article.setdefault(article_id, []).append(chunk)
        found: list[tuple[Article, list[Chunk]]] = []
        for r in articles:
            article = Article(r[0], r[1], r[2], url=r[3], path=r[4], source=r[5], author=r[6])
            article.published_at = datetime.fromisoformat(r[7]) if r[7] else None
            found.append((article, by_article.get(r[0], [])))
        return found

    def stored_vectors(self, collection: str, chunk_ids: Sequence[str]) -> dict[str, StoredVector]:
        rows = self._rows(
            """SELECT id, vector, embed_hash FROM chunks
                   WHERE collection = %s AND id = ANY(%s) AND vector IS NOT NULL""",
            (collection, list(chunk_ids)),
        )
        return {r[0]: StoredVector(bytes(r[1]), r[2]) for r in rows}

    def store_vectors(self, collection: str, vectors: Iterable[tuple[str, StoredVector]]) -> None:
        pairs = list(vectors)
        with self._transaction("keep vectors") as conn:
            conn.execute(
                """UPDATE chunks c SET vector = u.vector, embed_hash = u.embed_hash
                   FROM unnest(%s::text[], %s::bytea[], %s::text[]) AS u (id, vector, embed_hash)
                   WHERE c.collection = %s AND c.id = u.id""",
                (
                    [chunk_id for chunk_id, _ in pairs],
                    [kept.vector for _, kept in pairs],
                    [kept.embed_hash for _, kept in pairs],
                    collection,
                ),
            )

    def chunks_without_vectors(self, collection: str) -> list[str]:
        rows = self._rows("SELECT id FROM chunks WHERE collection = %s AND vector IS NULL", (collection,))
        return [r[0] for r in rows]

    def lexical_gaps(self) -> tuple[int, int, int]:
        """(chunks, chunks the lexical index counts, chunks out of step: postings missing or left over)."""

        def read(conn: Connection[Any]) -> tuple[int, int, int]:
            (chunks,) = row(conn, "SELECT count(*) FROM chunks")
            (counted,) = row(conn, "SELECT coalesce(sum(chunks), 0) FROM lexical_collections")
            (missing,) = row(conn, f"SELECT count(*) FROM ({_LEXICAL_MISSING}) m")
            (extra,) = row(conn, f"SELECT count(*) FROM ({_LEXICAL_EXTRA}) e")
            return int(chunks), int(counted), int(missing) + int(extra)

        result: tuple[int, int, int] = self._read(read)
        return result

    def repair_lexical(self) -> int:
        """Drop postings of chunks that are gone, index the chunks whose postings are missing, and set each
        collection's totals from its chunks; returns how many chunks and totals changed."""
        with self._transaction("repair the lexical index") as conn:
            extra = [r[0] for r in conn.execute(_LEXICAL_EXTRA)]
            conn.execute("DELETE FROM lexical_postings WHERE chunk = ANY(%s)", (extra,))
            missing = [r[0] for r in conn.execute(_LEXICAL_MISSING)]
            conn.execute(
                """SELECT lexical_add(array_agg(collection), array_agg(rowid), array_agg(lexemes),
                                      array_agg(lexical_length))
                   FROM chunks WHERE rowid = ANY(%s) HAVING count(*) > 0""",
                (missing,),
            )
            totals = conn.execute(
                """UPDATE lexical_collections lc SET chunks = t.real_chunks, tokens = t.real_tokens
                   FROM (SELECT name, coalesce(s.chunks, 0) AS real_chunks, coalesce(s.tokens, 0) AS real_tokens
                         FROM lexical_collections l LEFT JOIN (
                             SELECT collection, count(*) AS chunks, sum(lexical_length) AS tokens
                             FROM chunks GROUP BY 1) s ON s.collection = l.name) t
                   WHERE lc.name = t.name AND (lc.chunks, lc.tokens) IS DISTINCT FROM (t.real_chunks, t.real_tokens)"""
            ).rowcount
        return len(extra) + len(missing) + int(totals)
