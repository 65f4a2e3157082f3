"""What Byline remembers about the web in the catalog: followed feeds, HTTP validators, seen feed entries.

This module owns those tables: it declares their migrations and is the only code that reads or writes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from more_itertools import batched

from ingest.clock import now_iso
from ingest.models import Article
from ingest.storage.catalog import Catalog, Migration

_FEEDS_HTTP_CACHE = """
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
        """

MIGRATIONS = [Migration.portable("003_web_feeds_http_cache", _FEEDS_HTTP_CACHE)]


@dataclass(frozen=True, slots=True)
class Feed:
    url: str
    added_at: str
    etag: str | None
    last_modified: str | None
    last_polled: str | None
    last_error: str | None
    interval: float | None
    title: str | None

    def due_at(self, default_interval: float) -> float:
        """Epoch seconds of the next poll; a never-polled feed is due at once."""
        if not self.last_polled:
            return 0.0
        return datetime.fromisoformat(self.last_polled).timestamp() + (self.interval or default_interval)


@dataclass(frozen=True, slots=True)
class CachedPage:
    url: str
    final_url: str | None
    etag: str | None
    last_modified: str | None
    article_id: str | None
    content_hash: str | None
    fetched_at: str


@dataclass(frozen=True, slots=True)
class SeenEntry:
    stamp: str
    article_id: str | None
    content_hash: str | None
    error: str | None


class WebState:
    """Reads and writes the web tables of one catalog (thread-safe through the catalog's lock)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.apply_migrations(MIGRATIONS)

    # -- feeds -----------------------------------------------------------------------------------------

    def add_feed(self, url: str, interval: float | None = None) -> bool:
        """Follow a feed; False if it was already followed (its interval is updated when given)."""
        with self.catalog.transaction() as db:
            if db.fetch("SELECT 1 FROM feeds WHERE url = ?", (url,)):
                if interval is not None:
                    db.execute("UPDATE feeds SET interval = ? WHERE url = ?", (interval, url))
                return False
            db.execute("INSERT INTO feeds (url, added_at, interval) VALUES (?, ?, ?)", (url, now_iso(), interval))
            return True

    def remove_feed(self, url: str) -> bool:
        with self.catalog.transaction() as db:
            gone = db.execute("DELETE FROM feeds WHERE url = ?", (url,))
            db.execute("DELETE FROM feed_entries WHERE feed_url = ?", (url,))
        return bool(gone)

    def feeds(self) -> list[Feed]:
        rows = self.catalog.fetch(
            """SELECT url, added_at, etag, last_modified, last_polled, last_error, interval, title
               FROM feeds ORDER BY added_at, url"""
        )
        return [Feed(*row) for row in rows]

    def feed(self, url: str) -> Feed | None:
        return next((f for f in self.feeds() if f.url == url), None)

    def record_poll(
        self,
        url: str,
        *,
        error: str | None,
        title: str | None = None,
        validators: tuple[str | None, str | None] | None = None,
    ) -> None:
        """After a poll of a followed feed: when, how it went, and the validators if every entry was taken."""
        with self.catalog.transaction() as db:
            db.execute(
                "UPDATE feeds SET last_polled = ?, last_error = ?, title = COALESCE(?, title) WHERE url = ?",
                (now_iso(), error, title, url),
            )
            if validators is not None:
                db.execute("UPDATE feeds SET etag = ?, last_modified = ? WHERE url = ?", (*validators, url))

    # -- pages -----------------------------------------------------------------------------------------

    def cached(self, url: str) -> CachedPage | None:
        rows = self.catalog.fetch(
            """SELECT url, final_url, etag, last_modified, article_id, content_hash, fetched_at
               FROM http_cache WHERE url = ?""",
            (url,),
        )
        return CachedPage(*rows[0]) if rows else None

    def remember_page(
        self,
        url: str,
        *,
        final_url: str | None,
        etag: str | None,
        last_modified: str | None,
        article_id: str | None = None,
        content_hash: str | None = None,
    ) -> None:
        with self.catalog.transaction() as db:
            db.execute(
                """INSERT INTO http_cache VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (url) DO UPDATE SET final_url = excluded.final_url, etag = excluded.etag,
                       last_modified = excluded.last_modified, article_id = excluded.article_id,
                       content_hash = excluded.content_hash, fetched_at = excluded.fetched_at""",
                (url, final_url, etag, last_modified, article_id, content_hash, now_iso()),
            )

    def forget_page(self, url: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM http_cache WHERE url = ?", (url,))

    # -- feed entries ----------------------------------------------------------------------------------

    def seen_entries(self, feed_url: str, keys: Sequence[str]) -> dict[str, SeenEntry]:
        found: dict[str, SeenEntry] = {}
        for batch in batched(keys, 500):
            marks = ",".join("?" * len(batch))
            for row in self.catalog.fetch(
                f"""SELECT entry_key, stamp, article_id, content_hash, error FROM feed_entries
                    WHERE feed_url = ? AND entry_key IN ({marks})""",
                (feed_url, *batch),
            ):
                found[row[0]] = SeenEntry(*row[1:])
        return found

    def remember_entry(
        self,
        feed_url: str,
        key: str,
        stamp: str,
        *,
        article_id: str | None = None,
        content_hash: str | None = None,
        error: str | None = None,
    ) -> None:
        with self.catalog.transaction() as db:
            db.execute(
                """INSERT INTO feed_entries VALUES (?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (feed_url, entry_key) DO UPDATE SET stamp = excluded.stamp,
                       article_id = excluded.article_id, content_hash = excluded.content_hash,
                       error = excluded.error, seen_at = excluded.seen_at""",
                (feed_url, key, stamp, article_id, content_hash, error, now_iso()),
            )

    def entry_articles(self, feed_url: str) -> dict[str, str]:
        """Article id -> content hash of every article a feed's entries gave."""
        rows = self.catalog.fetch(
            "SELECT article_id, content_hash FROM feed_entries WHERE feed_url = ? AND article_id IS NOT NULL",
            (feed_url,),
        )
        return {row[0]: row[1] for row in rows}

    def stored_article(self, article_id: str) -> Article | None:
        """The article as the catalog holds it (what a 304 says is still current)."""
        return self.catalog.article(article_id)

    def forgotten(self, article_ids: Sequence[str]) -> set[str]:
        """Those of `article_ids` removed with `byline forget`: feed polls leave them out."""
        return self.catalog.forgotten(article_ids)
