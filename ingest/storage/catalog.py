"""The catalog interface: the source of truth beside the vector store, with one implementation per database.

The catalog holds articles, chunk texts and offsets, the lexical (BM25) index, which version of each article a
collection's vectors hold, and the state of features (web, Slack), each feature owning its tables through its
own named migrations. Vectors can always be rebuilt from the chunk texts kept here.

Nothing outside an implementation touches its connection: features run their own SQL through `transaction()`
and `fetch()`, written once with `?` placeholders and `ON CONFLICT` clauses that every backend accepts, and
declare their tables as `Migration`s carrying the DDL of each backend.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ingest.models import Article, Chunk, SearchFilters, normalise_url

Row = tuple[Any, ...]

_SQLITE_WIDTHS = re.compile(r"\b(?:INTEGER|REAL)\b")
_POSTGRES_TYPES = {"INTEGER": "bigint", "REAL": "double precision"}


@dataclass(frozen=True, slots=True)
class Migration:
    """A named schema change, a script for each backend; applied once per database, in the order given, each in
    its own transaction. A feature's migration carries both scripts; a backend's own core migrations only its own.
    Names never change (a live database never re-runs one)."""

    name: str
    sqlite: str | None = None
    postgres: str | None = None

    @classmethod
    def portable(cls, name: str, sql: str) -> Migration:
        """A feature's migration written once, in what both databases read alike (TEXT, INTEGER, REAL, PRIMARY
        KEY, indexes, in upper case): PostgreSQL gets SQLite's widths, INTEGER as bigint and REAL as double
        precision (its own REAL is single precision: epoch seconds would lose minutes)."""
        return cls(name, sqlite=sql, postgres=_SQLITE_WIDTHS.sub(lambda m: _POSTGRES_TYPES[m.group()], sql))


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
    # Some of the text reads like instructions to an AI; None when not checked (written by an older version).
    instruction_like: bool | None = None


@dataclass(frozen=True, slots=True)
class LexicalQuery:
    """A BM25 search: chunks matching any of `terms` (each matched as the phrase of its word pieces, never as
    query syntax), the best `n`, within `filters`. A title match weighs `title_weight` against one in the text; in
    a large index, terms found in more than `common_share` of the chunks are left out while rarer ones remain."""

    terms: Sequence[str]
    n: int
    filters: SearchFilters | None = None
    title_weight: float = 1.0
    common_share: float = 1.0


@dataclass(frozen=True, slots=True)
class Headline:
    """An indexed article as a list of stories shows it: its title, outlet and publication date (ISO)."""

    article_id: str
    title: str
    source: str | None
    published_at: str | None


class Statements(Protocol):
    """SQL inside one transaction."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...


def ref_spellings(ref: str) -> set[str]:
    """The values `Catalog.resolve` looks for: the reference as given, and a URL normalised or a path with `~`
    expanded."""
    if ref.startswith(("http://", "https://")):
        return {ref, normalise_url(ref)}
    return {ref, str(Path(ref).expanduser())}


class CatalogError(RuntimeError):
    """The catalog cannot be opened, or refused an operation; the message is one line."""


class Catalog(ABC):
    """What every catalog backend provides; see the module docstring."""

    # -- lifecycle and feature state --------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def health(self) -> str:
        """Where the catalog lives and that it answers (one line, no secrets); CatalogError when it does not."""

    @abstractmethod
    def apply_migrations(self, migrations: Sequence[Migration]) -> list[str]:
        """Apply those of `migrations` not yet applied (by name); returns the names applied now."""

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Statements]:
        """A write transaction: committed when the block ends, rolled back on any error. Transactions run one at
        a time across every process using the catalog, so a read-then-write inside one sees no concurrent
        change."""

    @abstractmethod
    def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Rows of one read-only statement."""

    @abstractmethod
    def lock(self, name: str, *, blocking: bool = True) -> AbstractContextManager[bool]:
        """A lock shared by every process using this catalog, held for the block; yields False when
        `blocking` is off and another process holds it. It dies with its holder, so a crash never blocks."""

    # -- the write protocol (see ingest.storage.store) --------------------------------------------------

    @abstractmethod
    def indexed_hashes(self, collection: str, article_ids: Sequence[str]) -> dict[str, str]:
        """The content hash each of these articles' vectors hold in `collection`, for those indexed."""

    @abstractmethod
    def mark_pending(self, collection: str, articles: Sequence[Article]) -> None: ...

    @abstractmethod
    def pending(self, collection: str) -> list[tuple[str, str | None]]:
        """(article id, the hash its vectors should have now, None if it should have none)."""

    @abstractmethod
    def clear_pending(self, collection: str, article_ids: Sequence[str]) -> None: ...

    @abstractmethod
    def commit_articles(self, collection: str, written: Sequence[tuple[Article, Sequence[Chunk]]]) -> list[str]:
        """Switch the catalog to the new versions in one transaction; returns the replaced chunk ids."""

    @abstractmethod
    def remember_paths(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Record that a file (path) holds an already-indexed article (id), so `forget PATH` finds it."""

    @abstractmethod
    def superseded(self, path: str, current_id: str) -> list[str]:
        """Articles other than `current_id` whose only file was `path`: older versions of that file."""

    @abstractmethod
    def delete_articles(self, article_ids: Sequence[str]) -> None:
        """Remove articles and everything hanging off them; remember them as forgotten."""

    @abstractmethod
    def forgotten(self, article_ids: Sequence[str]) -> set[str]:
        """Those of `article_ids` removed with forget and not ingested again since."""

    # -- reading ----------------------------------------------------------------------------------------

    @abstractmethod
    def resolve(self, ref: str) -> list[str]:
        """Article ids matching an id, a URL or a file path."""

    @abstractmethod
    def article(self, article_id: str) -> Article | None:
        """The article as the catalog holds it (its indexed version)."""

    @abstractmethod
    def chunk_rows(self, collection: str, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        """Current chunks by id: a chunk of a superseded article version is not returned."""

    @abstractmethod
    def article_chunks(self, collection: str, article_ids: Sequence[str]) -> list[ChunkRow]:
        """Every current chunk of the given articles, in article then text order."""

    @abstractmethod
    def lexical_search(self, collection: str, query: LexicalQuery) -> list[tuple[str, float]]:
        """(chunk id, BM25 score, higher is better) of the current chunks the query matches, best first."""

    @abstractmethod
    def recent_articles(self, collection: str, n: int) -> list[Headline]:
        """The `n` articles indexed in `collection` published last (undated ones after the dated, newest
        ingested first), newest first."""

    @abstractmethod
    def article_count(self, collection: str) -> int:
        """Articles whose vectors `collection` holds: cheap enough to ask once per question."""

    @abstractmethod
    def stats(self, collection: str) -> dict[str, object]: ...
