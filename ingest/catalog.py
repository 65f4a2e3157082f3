"""The SQLite catalog beside the vector store: articles, chunk texts and offsets, what is indexed where.

Schema changes are named, ordered migrations applied when the catalog opens; append new ones, never edit old.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.models import SearchFilters, source_key
from ingest.models import Article, Chunk, normalise_url

# Below this many chunks every query term is scored: BM25 is fast there, and small collections have few
# truly common words.
COMMON_TERMS_FROM = 10_000

MIGRATIONS: list[tuple[str, str]] = [
    (
        "001_articles_chunks",
        """
        CREATE TABLE articles (
            id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            url TEXT,
            path TEXT,
            source TEXT,
            author TEXT,
            published_at TEXT,
            published_ts REAL,
            hash TEXT NOT NULL,
            text TEXT NOT NULL,
            ingested_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX articles_url ON articles(url);
        CREATE INDEX articles_source ON articles(source);
        CREATE INDEX articles_published ON articles(published_ts);
        CREATE TABLE article_paths (
            path TEXT NOT NULL,
            article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
            PRIMARY KEY (path, article_id)
        );
        CREATE TABLE chunks (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            collection TEXT NOT NULL,
            article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
            position INTEGER NOT NULL,
            start_char INTEGER NOT NULL,
            end_char INTEGER NOT NULL,
            text TEXT NOT NULL,
            token_count INTEGER NOT NULL
        );
        CREATE INDEX chunks_article ON chunks(collection, article_id);
        -- which version (hash) of each article a collection's vectors hold
        CREATE TABLE indexed (
            collection TEXT NOT NULL,
            article_id TEXT NOT NULL REFERENCES articles(id) ON DELETE CASCADE,
            hash TEXT NOT NULL,
            PRIMARY KEY (collection, article_id)
        );
        -- articles whose vectors are being written: reconciled with the vector store on the next open
        CREATE TABLE pending_writes (
            collection TEXT NOT NULL,
            article_id TEXT NOT NULL,
            hash TEXT NOT NULL,
            started_at TEXT NOT NULL,
            PRIMARY KEY (collection, article_id)
        );
        """,
    ),
    (
        "002_slack_feedback",
        """
        -- answers the Slack bot showed (the id is the one its 👍/👎 buttons carry) and the votes on them
        CREATE TABLE slack_answers (
            id TEXT PRIMARY KEY,
            question TEXT NOT NULL,
            answer TEXT NOT NULL,
            refused INTEGER NOT NULL,
            citations TEXT NOT NULL,
            channel TEXT,
            ts TEXT,
            thread_ts TEXT,
            user_id TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE feedback (
            answer_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            vote INTEGER NOT NULL CHECK (vote IN (-1, 1)),
            channel TEXT,
            message_ts TEXT,
            voted_at TEXT NOT NULL,
            PRIMARY KEY (answer_id, user_id)
        );
        CREATE INDEX feedback_vote ON feedback(vote, voted_at);
        """,
    ),
    (
        "003_web_feeds_http_cache",
        """
        -- feeds followed by `byline watch`; etag/last_modified are stored only after a poll took every entry
        CREATE TABLE feeds (
            url TEXT PRIMARY KEY,
            added_at TEXT NOT NULL,
            etag TEXT,
            last_modified TEXT,
            last_polled TEXT,
            last_error TEXT,
            interval REAL,
            title TEXT
        );
        -- validators of fetched pages (and of feeds ingested once), with the article each page gave
        CREATE TABLE http_cache (
            url TEXT PRIMARY KEY,
            final_url TEXT,
            etag TEXT,
            last_modified TEXT,
            article_id TEXT,
            content_hash TEXT,
            fetched_at TEXT NOT NULL
        );
        -- feed entries already handled: an entry whose stamp is unchanged is not fetched again
        CREATE TABLE feed_entries (
            feed_url TEXT NOT NULL,
            entry_key TEXT NOT NULL,
            stamp TEXT NOT NULL,
            article_id TEXT,
            content_hash TEXT,
            error TEXT,
            seen_at TEXT NOT NULL,
            PRIMARY KEY (feed_url, entry_key)
        );
        """,
    ),
    (
        "004_chunks_fts",
        """
        -- The lexical (BM25) index: each chunk's text and its article's title, rowid = chunks.rowid. Triggers keep
        -- it in step with chunks inside whatever transaction changes them, cascaded deletes of articles included.
        -- It stores its own copy of the text: SQLite before 3.43 cannot delete from a contentless FTS5 table by
        -- rowid, and an external-content table would need the title, which lives in another table, at delete time.
        CREATE VIRTUAL TABLE chunks_fts USING fts5(title, text, tokenize = 'porter unicode61 remove_diacritics 2');
        INSERT INTO chunks_fts (rowid, title, text)
            SELECT c.rowid, a.title, c.text FROM chunks c JOIN articles a ON a.id = c.article_id;
        CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN
            INSERT INTO chunks_fts (rowid, title, text)
                VALUES (new.rowid, (SELECT title FROM articles WHERE id = new.article_id), new.text);
        END;
        CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN
            DELETE FROM chunks_fts WHERE rowid = old.rowid;
        END;
        CREATE TRIGGER chunks_fts_text AFTER UPDATE OF text ON chunks BEGIN
            UPDATE chunks_fts SET text = new.text WHERE rowid = new.rowid;
        END;
        CREATE TRIGGER articles_fts_title AFTER UPDATE OF title ON articles WHEN old.title IS NOT new.title BEGIN
            UPDATE chunks_fts SET title = new.title WHERE rowid IN (SELECT rowid FROM chunks WHERE article_id = new.id);
        END;
        """,
    ),
    (
        "005_slack_deliveries",
        """
        -- Slack deliveries already taken (event id, client_msg_id, channel+ts), so each message is answered once
        -- across retries, restarts and several bot processes on one home; rows expire after an hour
        CREATE TABLE slack_deliveries (key TEXT PRIMARY KEY, seen_at REAL NOT NULL);
        CREATE INDEX slack_deliveries_seen ON slack_deliveries(seen_at);
        """,
    ),
    (
        "006_forgotten",
        """
        -- articles removed with `byline forget`: feed polls do not bring them back (an explicit ingest does)
        CREATE TABLE forgotten (article_id TEXT PRIMARY KEY, forgotten_at TEXT NOT NULL);
        """,
    ),
]


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A chunk joined with its article's metadata, as the retriever needs it."""

    chunk_id: str
    rowid: int
    article_id: str
    text: str
    start: int
    end: int
    title: str
    url: str | None
    path: str | None
    source: str | None
    author: str | None
    published_at: str | None


def _fts_any(terms: Sequence[str]) -> str:
    """An FTS5 query matching any of the terms, each quoted so it is a phrase and never FTS5 syntax."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Catalog:
    """One SQLite database under BYLINE_HOME, safe to share between threads and processes (WAL)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.conn = sqlite3.connect(path, check_same_thread=False, timeout=30, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.lock = threading.RLock()
        self._chunk_count: tuple[tuple[int, int], int] | None = None  # (database version, chunks then)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        # The source filter compares outlets exactly as the vector store's metadata does.
        self.conn.create_function("source_key", 1, source_key, deterministic=True)
        self.migrate()

    def close(self) -> None:
        self.conn.close()

    def migrate(self) -> list[str]:
        """Apply the migrations not yet applied, each in its own transaction; returns their names."""
        applied: list[str] = []
        with self.transaction() as db:
            db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        done = {row[0] for row in self.conn.execute("SELECT name FROM migrations")}
        for name, sql in MIGRATIONS:
            if name in done:
                continue
            with self.transaction() as db:
                if db.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone():
                    continue  # another process applied it meanwhile
                for statement in _statements(sql):
                    db.execute(statement)
                db.execute("INSERT INTO migrations VALUES (?, ?)", (name, _now()))
            applied.append(name)
        return applied

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any error."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # -- what is indexed -------------------------------------------------------------------------------

    def indexed_hashes(self, collection: str, article_ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        with self.lock:
            for batch in _batches(article_ids, 500):
                marks = ",".join("?" * len(batch))
                rows = self.conn.execute(
                    f"SELECT article_id, hash FROM indexed WHERE collection = ? AND article_id IN ({marks})",
                    (collection, *batch),
                )
                found.update({row[0]: row[1] for row in rows})
        return found

    def mark_pending(self, collection: str, articles: Sequence[Article]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO pending_writes VALUES (?, ?, ?, ?)",
                [(collection, a.id, a.content_hash, _now()) for a in articles],
            )

    def pending(self, collection: str) -> list[tuple[str, str | None]]:
        """(article id, the hash its vectors should have now, None if it should have none)."""
        with self.lock:
            rows = self.conn.execute(
                """SELECT p.article_id, i.hash FROM pending_writes p
                   LEFT JOIN indexed i ON i.collection = p.collection AND i.article_id = p.article_id
                   WHERE p.collection = ?""",
                (collection,),
            ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def clear_pending(self, collection: str, article_ids: Sequence[str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM pending_writes WHERE collection = ? AND article_id = ?",
                [(collection, a) for a in article_ids],
            )

    def commit_articles(self, collection: str, written: Sequence[tuple[Article, Sequence[Chunk]]]) -> list[str]:
        """Switch the catalog to the new versions in one transaction; returns the replaced chunk ids."""
        now = _now()
        replaced: list[str] = []
        with self.transaction() as db:
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
                       token_count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                    [
                        (c.id, collection, c.article_id, c.position, c.start, c.end, c.text, c.token_count)
                        for c in chunks
                    ],
                )
                db.execute(
                    "INSERT OR REPLACE INTO indexed VALUES (?, ?, ?)",
                    (collection, article.id, article.content_hash),
                )
                db.execute(
                    "DELETE FROM pending_writes WHERE collection = ? AND article_id = ?",
                    (collection, article.id),
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
        with self.transaction() as db:
            db.executemany("INSERT OR IGNORE INTO article_paths SELECT ?, id FROM articles WHERE id = ?", list(pairs))

    def superseded(self, path: str, current_id: str) -> list[str]:
        """Articles other than `current_id` whose only file was `path`: older versions of that file."""
        with self.lock:
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
        with self.lock:
            for batch in _batches(chunk_ids, 500):
                marks = ",".join("?" * len(batch))
                for row in self.conn.execute(
                    f"""SELECT c.id, c.rowid, c.article_id, c.text, c.start_char, c.end_char, a.title, a.url,
                               a.path, a.source, a.author, a.published_at
                        FROM chunks c JOIN articles a ON a.id = c.article_id
                        JOIN indexed i ON i.collection = c.collection AND i.article_id = c.article_id
                        WHERE +c.collection = ? AND c.id IN ({marks}) AND i.hash = a.hash""",
                    (collection, *batch),
                ):
                    rows[row[0]] = ChunkRow(*row)
        return rows

    def lexical_search(
        self,
        collection: str,
        terms: Sequence[str],
        n: int,
        filters: SearchFilters | None = None,
        title_weight: float = 1.0,
        common_share: float = 1.0,
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25 score, higher is better) of the current chunks matching any term, best first.

        Each term is quoted, so it is matched as a phrase of its tokens and is never FTS5 syntax. In a large
        index, terms matching more than `common_share` of all chunks are left out while rarer ones remain.
        """
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
            with self.lock:
                rows = self.conn.execute(sql, (title_weight, match, fetched, *params, n)).fetchall()
            if len(rows) == n or not self._fts_has_more(match, fetched):
                return [(row[0], float(row[1])) for row in rows]
        sql = f"""SELECT c.id, f.score FROM (SELECT rowid, -bm25(chunks_fts, ?, 1.0) AS score FROM chunks_fts
                  WHERE chunks_fts MATCH ?) f {joins}
                  WHERE {" AND ".join(where)} ORDER BY f.score DESC LIMIT ?"""
        with self.lock:
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
        with self.lock:
            kept = [
                term
                for term in terms
                # Counting stops past the cap, so a very common term costs no more than a bounded scan.
                if self.conn.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT ?)",
                    (_fts_any([term]), cap + 1),
                ).fetchone()[0]
                <= cap
            ]
        return kept or terms

    def _count_chunks(self) -> int:
        """Chunks in the catalog (one lexical row each), counted again only after this or another connection
        wrote."""
        with self.lock:
            version = (self.conn.execute("PRAGMA data_version").fetchone()[0], self.conn.total_changes)
            if self._chunk_count is None or self._chunk_count[0] != version:
                self._chunk_count = (version, self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0])
            return self._chunk_count[1]

    def _fts_has_more(self, match: str, than: int) -> bool:
        with self.lock:
            row = self.conn.execute(
                "SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? LIMIT 1 OFFSET ?", (match, than)
            ).fetchone()
        return row is not None

    def article_text(self, article_id: str) -> str | None:
        with self.lock:
            row = self.conn.execute("SELECT text FROM articles WHERE id = ?", (article_id,)).fetchone()
        return row[0] if row else None

    def resolve(self, ref: str) -> list[str]:
        """Article ids matching an id, a URL or a file path."""
        candidates = {ref}
        if ref.startswith(("http://", "https://")):
            candidates.add(normalise_url(ref))
        else:
            candidates.add(str(Path(ref).expanduser()))
        with self.lock:
            ids: list[str] = []
            for value in candidates:
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
        now = _now()
        with self.transaction() as db:
            db.executemany("DELETE FROM articles WHERE id = ?", [(a,) for a in article_ids])
            db.executemany("INSERT OR REPLACE INTO forgotten VALUES (?, ?)", [(a, now) for a in article_ids])

    def forgotten(self, article_ids: Sequence[str]) -> set[str]:
        """Those of `article_ids` removed with forget and not ingested again since."""
        found: set[str] = set()
        with self.lock:
            for start in range(0, len(article_ids), 500):
                batch = article_ids[start : start + 500]
                marks = ",".join("?" * len(batch))
                rows = self.conn.execute(f"SELECT article_id FROM forgotten WHERE article_id IN ({marks})", batch)
                found.update(row[0] for row in rows)
        return found

    def stats(self, collection: str) -> dict[str, object]:
        with self.lock:
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
        return {
            "articles": articles,
            "indexed_articles": indexed,
            "chunks": chunks,
            "tokens": tokens,
            "sources": {row[0]: row[1] for row in sources},
            "published_first": first,
            "published_last": last,
            "pending_writes": pending,
        }


def _statements(sql: str) -> list[str]:
    """Split a script into statements; sqlite3.complete_statement keeps trigger bodies whole."""
    body = "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))
    statements, current = [], ""
    for part in body.split(";"):
        current += part + ";"
        if sqlite3.complete_statement(current):
            if current.strip(" \n;"):
                statements.append(current.strip())
            current = ""
    return statements


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
