"""The objects ingest builds (an Article, one source record cleaned, and its Chunks) and the search filters
both indexes apply."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time

from ingest.injection import instruction_spans


@dataclass(slots=True)
class Article:
    """One news article, its text already cleaned; `id` is stable across re-ingests."""

    id: str
    title: str
    text: str
    url: str | None = None
    path: str | None = None
    source: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    # The article is the whole file at `path`: a new version of that file replaces it, whatever its id.
    whole_file: bool = False

    @property
    def content_hash(self) -> str:
        """What decides re-embedding: the text and the metadata that goes into chunk headers."""
        stamp = "\x1f".join(
            [self.title, self.source or "", self.published_at.date().isoformat() if self.published_at else ""]
        )
        return hashlib.sha256(f"{stamp}\x1e{self.text}".encode()).hexdigest()


@dataclass(slots=True)
class Chunk:
    """A window of an article's text: `article.text[start:end] == text`; `header` is embedded with it."""

    article_id: str
    position: int
    start: int
    end: int
    text: str
    header: str
    token_count: int
    content_hash: str = field(default="")

    @property
    def id(self) -> str:
        # The hash prefix lets a new version's chunks sit beside the old ones until the catalog switches over.
        return f"{self.article_id}:{self.content_hash[:12]}:{self.position}"

    @property
    def instruction_like(self) -> bool:
        """Some of its text reads like instructions to an AI (see ingest.injection); flagged in the catalog."""
        return bool(instruction_spans(self.text))

    @property
    def embed_text(self) -> str:
        return f"{self.header}\n{self.text}" if self.header else self.text


def article_id_for(url: str | None, text: str) -> str:
    """From the canonical URL when known, else from the content, so renamed copies are stored once."""
    if url:
        return "u-" + hashlib.sha256(normalise_url(url).encode()).hexdigest()[:20]
    return "c-" + hashlib.sha256(" ".join(text.split()).encode()).hexdigest()[:20]


def normalise_url(url: str) -> str:
    """Canonical form for identity: lower-case scheme and host, no fragment, no trailing slash."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/") or "/"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def source_key(source: str | None) -> str:
    """How outlets are compared: case and surrounding space do not matter."""
    return (source or "").strip().casefold()


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """Restrict retrieval to some outlets and/or a publication-date range (inclusive)."""

    sources: tuple[str, ...] = ()
    since: date | None = None
    until: date | None = None

    def __bool__(self) -> bool:
        return bool(self.sources or self.since or self.until)

    def source_keys(self) -> list[str]:
        return [source_key(s) for s in self.sources]

    def published_range(self) -> tuple[int | None, int | None]:
        """The date range as inclusive UTC epoch seconds (start of `since`, end of `until`); None when open."""
        since = int(datetime.combine(self.since, time.min, tzinfo=UTC).timestamp()) if self.since else None
        until = int(datetime.combine(self.until, time.max, tzinfo=UTC).timestamp()) if self.until else None
        return since, until
