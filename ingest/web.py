"""Articles from the web: pages (trafilatura), RSS/Atom feeds (feedparser) and sitemaps.

`WebLoader` turns URLs into `Article | LoadFailure` values for the ingest pipeline, fetching politely
(`ingest.fetch`) and remembering validators and seen feed entries in the catalog (`ingest.webstate`), so an
unchanged page or feed costs one cheap request and embeds nothing.
"""

from __future__ import annotations

import contextvars
import hashlib
import io
import json
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from bot.settings import WebSettings
from ingest.catalog import Catalog
from ingest.fetch import Fetcher, FetchFailure, Page, map_bounded
from ingest.loaders import LoadFailure, LoadResult, make_article, parse_date, register_source_handler
from ingest.models import Article
from ingest.webstate import CachedPage, SeenEntry, WebState

log = logging.getLogger(__name__)

IndexedHashes = Callable[[Sequence[str]], dict[str, str]]

FEED_PREFIX = "feed:"
SITEMAP_PREFIX = "sitemap:"
# Sitemap indexes nest; real sites use one level, so three is generous and stops cycles early.
_MAX_SITEMAP_DEPTH = 3
_TRACKING_PARAMS = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ocid|cmpid)$", re.IGNORECASE)
# schema.org types of an article: Article, NewsArticle and its kinds (ReportageNewsArticle...), BlogPosting...
_ARTICLE_TYPE = re.compile(r"\w*newsarticle|article|(live)?blogposting|report", re.IGNORECASE)
# fmt: off
_BLOCK_TAGS = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr", "section",
               "article", "figcaption", "dd", "dt")
# fmt: on


# -- pages -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hints:
    """What a feed entry says about its article, used where the page itself is silent."""

    title: str | None = None
    author: str | None = None
    published_at: datetime | None = None
    source: str | None = None


@dataclass(slots=True)
class _Structured:
    """Metadata from JSON-LD and Open Graph, which carry times and canonical URLs reliably."""

    canonical: str | None = None
    title: str | None = None
    author: str | None = None
    published: str | None = None
    site_name: str | None = None


def article_from_page(page: Page, hints: Hints | None = None) -> Article:
    """An Article from a fetched HTML or plain-text page; raises ValueError when there is no article text."""
    if page.kind == "text":
        text = page.text()
        title, _, body = text.strip().partition("\n")
        return make_article(
            title=hints.title if hints and hints.title else title,
            text=body if body.strip() else text,
            url=strip_tracking(page.final_url),
            author=hints.author if hints else None,
            source=hints.source if hints else None,
            published_at=hints.published_at if hints else None,
        )
    # the HTTP charset wins; without one, trafilatura detects the page's own declaration
    html = page.text() if page.charset else page.body
    return article_from_html(html, page.final_url, hints)


def article_from_html(html: bytes | str, url: str, hints: Hints | None = None) -> Article:
    """Main text via trafilatura (no navigation, ads or related-link cards). Title and author from trafilatura,
    then JSON-LD / Open Graph, then the feed entry's hints; date, site name and canonical URL from JSON-LD /
    Open Graph first (they carry the time and the publisher's own name). The canonical URL gives the id."""
    import trafilatura
    from trafilatura.utils import load_html

    tree = load_html(html)
    if tree is None:
        raise ValueError("not parseable HTML")
    extracted = trafilatura.bare_extraction(
        tree,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=False,
        favor_precision=True,
    )
    if extracted is None or not (getattr(extracted, "text", None) or "").strip():
        raise ValueError("no article text found in the HTML")
    found: dict[str, Any] = extracted if isinstance(extracted, dict) else extracted.as_dict()
    meta = _structured(tree)
    hints = hints or Hints()
    title = found.get("title") or meta.title or hints.title
    return make_article(
        title=title,
        text=_body_text(found["text"], title),
        url=_canonical(tree, url, meta),
        source=meta.site_name or _named_site(found.get("sitename"), url) or hints.source or found.get("sitename"),
        author=found.get("author") or meta.author or hints.author,
        # structured data first for the date: it carries the time, trafilatura's date only the day
        published_at=parse_date(meta.published) or hints.published_at or parse_date(found.get("date")),
    )


def _named_site(sitename: str | None, url: str) -> str | None:
    """trafilatura's site name, unless it is only its guess from the host name (a feed title is better)."""
    host = (urlsplit(url).hostname or "").removeprefix("www.")
    if not sitename or sitename.casefold() in (host.casefold(), host.split(".")[0].casefold()):
        return None
    return sitename


def _body_text(text: str, title: str | None) -> str:
    """trafilatura puts one paragraph per line; the cleaner wants blank lines between paragraphs. The
    headline, repeated as the first line, is dropped: it is the title already."""
    paragraphs = [line for line in text.split("\n") if line.strip()]
    if paragraphs and title and " ".join(paragraphs[0].split()).casefold() == " ".join(title.split()).casefold():
        paragraphs = paragraphs[1:]
    return "\n\n".join(paragraphs)


def _canonical(tree: Any, url: str, meta: _Structured) -> str:
    """<link rel=canonical>, else og:url / JSON-LD url, else the URL fetched; tracking parameters dropped.

    A canonical pointing at the site's front page (a common CMS bug) is ignored: it would merge every article.
    """
    links = tree.xpath('//head/link[translate(@rel, "CANONICAL", "canonical")="canonical"]/@href')
    for candidate in [*(str(h) for h in links), meta.canonical]:
        if not candidate:
            continue
        absolute = urljoin(url, candidate.strip())
        parts = urlsplit(absolute)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            continue
        if parts.path.strip("/") == "" and urlsplit(url).path.strip("/") != "":
            continue
        return strip_tracking(absolute)
    return strip_tracking(url)


def _structured(tree: Any) -> _Structured:
    meta = _Structured()
    for script in tree.xpath('//script[@type="application/ld+json"]'):
        try:
            data = json.loads(script.text_content() or "null")
        except json.JSONDecodeError:
            continue
        for node in _json_ld_nodes(data):
            kinds = node.get("@type")
            if not any(_ARTICLE_TYPE.fullmatch(str(k)) for k in (kinds if isinstance(kinds, list) else [kinds])):
                continue
            meta.title = meta.title or _string(node.get("headline") or node.get("name"))
            meta.published = meta.published or _string(node.get("datePublished") or node.get("dateCreated"))
            meta.author = meta.author or _names(node.get("author"))
            meta.site_name = meta.site_name or _names(node.get("publisher"))
            page = node.get("mainEntityOfPage")
            meta.canonical = meta.canonical or _string(page.get("@id") if isinstance(page, dict) else page)
            meta.canonical = meta.canonical or _string(node.get("url"))
    properties = {
        str(el.get("property") or el.get("name") or "").lower(): el.get("content")
        for el in tree.xpath("//head/meta[@content]")
    }
    meta.title = meta.title or properties.get("og:title")
    meta.site_name = meta.site_name or properties.get("og:site_name")
    meta.published = meta.published or properties.get("article:published_time") or properties.get("og:published_time")
    meta.canonical = meta.canonical or properties.get("og:url")
    author = properties.get("article:author") or properties.get("author")
    if not meta.author and author and not author.startswith(("http://", "https://")):
        meta.author = author
    return meta


def _json_ld_nodes(data: Any) -> Iterator[dict[str, Any]]:
    if isinstance(data, list):
        for item in data:
            yield from _json_ld_nodes(item)
    elif isinstance(data, dict):
        yield data
        if "@graph" in data:
            yield from _json_ld_nodes(data["@graph"])


def _string(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _names(value: Any) -> str | None:
    """A person or organisation (or a list of them) as 'A, B'."""
    items = value if isinstance(value, list) else [value]
    names = [_string(item.get("name")) if isinstance(item, dict) else _string(item) for item in items]
    return ", ".join(n for n in names if n) or None


def strip_tracking(url: str) -> str:
    """The URL without utm_* and similar click-tracking parameters, so feed links match canonical URLs."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(k, v) for k, v in pairs if not _TRACKING_PARAMS.match(k)]
    if len(kept) == len(pairs):
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment))


def fragment_text(html: str) -> str:
    """Text of an HTML fragment (a feed's content or summary), one paragraph per block element."""
    import lxml.html

    if not html.strip():
        return ""
    try:
        root = lxml.html.fragment_fromstring(html, create_parent="div")
    except (ValueError, lxml.etree.ParserError):
        return html
    for junk in root.xpath(".//script|.//style|.//noscript|.//iframe"):
        junk.drop_tree()
    for br in root.iter("br"):
        br.tail = "\n" + (br.tail or "")
    for block in root.iter(*_BLOCK_TAGS):
        block.text = "\n\n" + (block.text or "")
        block.tail = "\n\n" + (block.tail or "")
    return str(root.text_content())


# -- feeds -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedEntry:
    key: str
    link: str | None
    title: str | None
    author: str | None
    published_at: datetime | None
    updated_at: datetime | None
    content_html: str
    summary_html: str

    @property
    def stamp(self) -> str:
        """Changes when the entry does: a new stamp means the article is looked at again."""
        when = self.updated_at or self.published_at
        parts = [
            self.link or "",
            self.title or "",
            when.isoformat() if when else "",
            self.content_html,
            self.summary_html,
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]

    @property
    def newest(self) -> datetime:
        return self.updated_at or self.published_at or datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    entries: list[FeedEntry]


def parse_feed(body: bytes, url: str, content_type: str = "") -> ParsedFeed:
    """RSS 0.9x/1.0/2.0 or Atom; raises ValueError when the body is not a feed."""
    import feedparser

    # No sanitising or link rewriting inside entry HTML: only its text is used (scripts and styles dropped
    # by `fragment_text`), and skipping both makes a 10,000-entry feed parse about a third faster.
    parsed = feedparser.parse(
        body,
        response_headers={"content-location": url, "content-type": content_type or "application/xml"},
        resolve_relative_uris=False,
        sanitize_html=False,
    )
    if not parsed.get("version") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        raise ValueError(f"not an RSS or Atom feed{f': {problem}' if problem else ''}")
    entries = []
    for raw in parsed.entries:
        link = raw.get("link") or next(
            (ln.get("href") for ln in raw.get("links", []) if ln.get("rel", "alternate") == "alternate"), None
        )
        link = strip_tracking(link) if link and link.startswith(("http://", "https://")) else None
        content = max((c.get("value", "") for c in raw.get("content", [])), key=len, default="")
        summary = raw.get("summary", "") or ""
        key = raw.get("id") or link or hashlib.sha256((raw.get("title", "") + summary).encode()).hexdigest()
        entries.append(
            FeedEntry(
                key=str(key),
                link=link,
                title=raw.get("title"),
                author=raw.get("author"),
                published_at=_struct_time(raw.get("published_parsed")),
                updated_at=_struct_time(raw.get("updated_parsed")),
                content_html=content,
                summary_html=summary if summary != content else "",
            )
        )
    return ParsedFeed(title=parsed.feed.get("title"), entries=entries)


def _struct_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        year, month, day, hour, minute, second = value[:6]
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


# -- sitemaps ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SitemapItem:
    loc: str
    lastmod: datetime | None
    is_sitemap: bool  # a child sitemap of a sitemap index, not a page


def parse_sitemap(body: bytes) -> Iterator[SitemapItem]:
    """<urlset> pages or <sitemapindex> children, streamed element by element; ValueError if not a sitemap."""
    root: str | None = None
    loc: str | None = None
    lastmod: str | None = None
    published: str | None = None
    try:
        for event, element in ET.iterparse(io.BytesIO(body), events=("start", "end")):
            name = element.tag.rsplit("}", 1)[-1]
            if event == "start":
                if root is None:
                    root = name
                    if root not in ("urlset", "sitemapindex"):
                        raise ValueError(f"not a sitemap (root element <{root}>)")
                continue
            text = (element.text or "").strip()
            if name == "loc":
                loc = text
            elif name == "lastmod":
                lastmod = text
            elif name == "publication_date":  # Google News sitemaps
                published = text
            elif name in ("url", "sitemap"):
                if loc:
                    yield SitemapItem(loc, parse_date(lastmod or published), is_sitemap=name == "sitemap")
                loc = lastmod = published = None
                element.clear()  # keep memory flat on 50,000-URL sitemaps
    except ET.ParseError as exc:
        raise ValueError(f"not a sitemap: malformed XML ({exc})") from None


def xml_root(body: bytes) -> str | None:
    """Local name of the first element (rss, RDF, feed, urlset, sitemapindex...), or None if not XML."""
    try:
        for _, element in ET.iterparse(io.BytesIO(body), events=("start",)):
            return str(element.tag).rsplit("}", 1)[-1]
    except ET.ParseError:
        return None
    return None


# -- loading -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _PageJob:
    url: str
    hints: Hints | None = None
    validators: tuple[str | None, str | None] = (None, None)
    # set for feed entries: where to record the outcome
    feed_url: str | None = None
    entry: FeedEntry | None = None


# A page job's outcome, computed on the pool: (job, response or failure, article / failure / None if 304).
_Fetched = tuple[_PageJob, Page | FetchFailure, Article | LoadFailure | None]


@dataclass
class FeedPoll:
    """How one poll of a feed went; filled in while its results are consumed."""

    url: str
    title: str | None = None
    not_modified: bool = False
    entries: int = 0
    known: int = 0
    taken: int = 0
    deferred: int = 0
    forgotten: int = 0  # entries whose article was removed with `byline forget`: left out
    failures: list[LoadFailure] = field(default_factory=list)
    error: str | None = None
    complete: bool = False  # every entry was handled: the feed's validators were stored


class WebLoader:
    """Loads URLs, feeds and sitemaps into `Article | LoadFailure` values.

    `state` remembers validators and feed entries; `indexed(ids)` gives the article versions the index holds,
    so a remembered validator is used only when what it stands for is really indexed (after a crash or a
    change of embedding model, pages are fetched in full again).
    """

    def __init__(
        self,
        settings: WebSettings,
        state: WebState | None = None,
        indexed: IndexedHashes | None = None,
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.state = state
        self.indexed: IndexedHashes = indexed or (lambda ids: {})
        self.should_stop = should_stop
        self._fetcher: Fetcher | None = None

    @property
    def fetcher(self) -> Fetcher:
        if self._fetcher is None:
            self._fetcher = Fetcher(self.settings)
        return self._fetcher

    def close(self) -> None:
        if self._fetcher is not None:
            self._fetcher.close()
            self._fetcher = None

    def __enter__(self) -> WebLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, source: str) -> Iterator[LoadResult]:
        """`feed:URL`, `sitemap:URL`, or a plain URL whose content decides whether it is a page, feed or sitemap."""
        if source.startswith(FEED_PREFIX):
            yield from self.load_feed(source.removeprefix(FEED_PREFIX))
            return
        if source.startswith(SITEMAP_PREFIX):
            yield from self.load_sitemap(source.removeprefix(SITEMAP_PREFIX), self.settings.sitemap_since)
            return
        cached = self.state.cached(source) if self.state else None
        if cached is not None and cached.article_id is None and (cached.etag or cached.last_modified):
            yield from self.load_feed(source)  # only feeds are cached without an article
            return
        job = _PageJob(source, validators=self._validators(cached))
        result = self.fetcher.fetch(source, etag=job.validators[0], last_modified=job.validators[1])
        if isinstance(result, Page) and result.kind == "xml":
            root = xml_root(result.body)
            if root in ("urlset", "sitemapindex"):
                yield from self._sitemap_pages(result, self.settings.sitemap_since, depth=0)
                return
            if root in ("rss", "RDF", "feed"):
                yield from self.load_feed(source, fetched=result)
                return
            what = f"XML with root <{root}>" if root else "malformed XML"
            yield LoadFailure(source, f"neither an article, a feed nor a sitemap: {what}")
            return
        yield from self._finish_page((job, result, self._extract(job, result)))

    def load_feed(self, url: str, *, fetched: Page | None = None, followed: bool = False) -> FeedLoad:
        """One poll of the feed at `url`: iterate it for results, then read `.poll`."""
        return FeedLoad(self, url, fetched=fetched, followed=followed)

    def load_sitemap(self, url: str, since: date | None = None) -> Iterator[LoadResult]:
        """Pages listed in a sitemap (or a sitemap index), only those modified on or after `since`."""
        result = self.fetcher.fetch(url)
        if isinstance(result, FetchFailure):
            yield LoadFailure(url, result.reason)
            return
        yield from self._sitemap_pages(result, since, depth=0)

    # -- pages -----------------------------------------------------------------------------------------

    def _run(self, items: Iterable[_PageJob | Article | LoadFailure]) -> Iterator[LoadResult]:
        """Page jobs go through the fetch pool (bounded window, order kept); ready results pass straight on.

        Catalog writes happen here, on the consuming thread; the pool only fetches and extracts.
        """

        def work(item: _PageJob | Article | LoadFailure) -> _Fetched | Article | LoadFailure:
            return self._fetch_and_extract(item) if isinstance(item, _PageJob) else item

        for done in map_bounded(work, items, workers=self.settings.concurrency, should_stop=self.should_stop):
            if isinstance(done, tuple):
                yield from self._finish_page(done)
            else:
                yield done

    def _page_job(self, url: str, hints: Hints | None = None, entry: tuple[str, FeedEntry] | None = None) -> _PageJob:
        cached = self.state.cached(url) if self.state else None
        feed_url, feed_entry = entry or (None, None)
        return _PageJob(url, hints, self._validators(cached), feed_url, feed_entry)

    def _is_indexed(self, cached: CachedPage) -> bool:
        return (
            bool(cached.article_id)
            and self.indexed([cached.article_id or ""]).get(cached.article_id or "") == cached.content_hash
        )

    def _validators(self, cached: CachedPage | None) -> tuple[str | None, str | None]:
        if cached is None or not self._is_indexed(cached):
            return (None, None)
        return (cached.etag, cached.last_modified)

    def _fetch_and_extract(self, job: _PageJob) -> _Fetched:
        result = self.fetcher.fetch(job.url, etag=job.validators[0], last_modified=job.validators[1])
        return job, result, self._extract(job, result)

    def _extract(self, job: _PageJob, result: Page | FetchFailure) -> Article | LoadFailure | None:
        if isinstance(result, FetchFailure):
            return LoadFailure(job.url, result.reason)
        if result.not_modified:
            return None
        if result.kind not in ("html", "text"):
            return LoadFailure(job.url, f"not an article page ({result.content_type or 'no content type'})")
        try:
            return article_from_page(result, job.hints)
        except ValueError as exc:
            return LoadFailure(job.url, str(exc))

    def _finish_page(self, done: _Fetched) -> Iterator[LoadResult]:
        job, result, extracted = done
        if self.state is not None and isinstance(result, Page):
            if isinstance(extracted, Article):
                self.state.remember_page(
                    job.url,
                    final_url=result.final_url,
                    etag=result.etag,
                    last_modified=result.last_modified,
                    article_id=extracted.id,
                    content_hash=extracted.content_hash,
                )
            elif isinstance(extracted, LoadFailure):
                self.state.forget_page(job.url)
        if job.feed_url is not None and job.entry is not None:
            self._record_entry(job.feed_url, job.entry, result, extracted)
        if extracted is not None:
            yield extracted
        elif (stored := self._stored(job.url)) is not None:
            yield stored  # 304: the indexed version, so the pipeline counts it as unchanged and embeds nothing

    def _stored(self, url: str) -> Article | None:
        cached = self.state.cached(url) if self.state else None
        if self.state is None or cached is None or not cached.article_id:
            return None
        return self.state.stored_article(cached.article_id)

    # -- feed entries ----------------------------------------------------------------------------------

    def _feed_validators(self, url: str, followed: bool) -> tuple[str | None, str | None]:
        """Stored validators of a feed, unless some article it gave is missing from the index."""
        if self.state is None:
            return (None, None)
        if followed:
            feed = self.state.feed(url)
            stored = (feed.etag, feed.last_modified) if feed else (None, None)
        else:
            cached = self.state.cached(url)
            stored = (cached.etag, cached.last_modified) if cached else (None, None)
        if stored == (None, None):
            return stored
        expected = self.state.entry_articles(url)
        for article_id in self.state.catalog.forgotten(list(expected)):
            del expected[article_id]  # not missing: forgotten on purpose
        held = self.indexed(list(expected))
        return stored if all(held.get(a) == h for a, h in expected.items()) else (None, None)

    def _entry_items(self, url: str, parsed: ParsedFeed, poll: FeedPoll) -> Iterator[_PageJob | LoadResult]:
        """New or changed entries, newest first, at most `entries_per_poll`: articles straight from feeds that
        carry the full text, page jobs for entries that carry only a summary."""
        seen = self.state.seen_entries(url, [e.key for e in parsed.entries]) if self.state else {}
        given = [s.article_id for s in seen.values() if s.article_id]
        held = self.indexed(given)  # one lookup, not one each
        gone = self.state.catalog.forgotten(given) if self.state else set()
        # Entries whose article was forgotten stay out, even when the feed updates them.
        left_out = [e for e in parsed.entries if e.key in seen and seen[e.key].article_id in gone]
        for entry in left_out:
            if self.state and seen[entry.key].stamp != entry.stamp:
                was = seen[entry.key]
                self.state.remember_entry(
                    url, entry.key, entry.stamp, article_id=was.article_id, content_hash=was.content_hash
                )
        left_keys = {e.key for e in left_out}
        fresh = [e for e in parsed.entries if e.key not in left_keys and not _entry_known(seen.get(e.key), e, held)]
        fresh.sort(key=lambda e: e.newest, reverse=True)
        cap = self.settings.entries_per_poll
        poll.forgotten = len(left_out)
        poll.known = len(parsed.entries) - len(fresh) - len(left_out)
        poll.deferred = max(0, len(fresh) - cap)
        for entry in fresh[:cap]:
            poll.taken += 1
            hints = Hints(entry.title, entry.author, entry.published_at or entry.updated_at, poll.title)
            text = fragment_text(entry.content_html).strip()
            if len(text) >= self.settings.full_text_chars or (text and not entry.link):
                yield self._entry_article(url, entry, text, hints)
            elif entry.link:
                yield self._page_job(entry.link, hints, (url, entry))
            elif summary := fragment_text(entry.summary_html).strip():
                yield self._entry_article(url, entry, summary, hints)
            else:
                reason = "feed entry has neither a link nor any text"
                self._remember_entry(url, entry, error=reason)
                yield LoadFailure(f"{url}#{entry.key}", reason)

    def _entry_article(self, url: str, entry: FeedEntry, text: str, hints: Hints) -> LoadResult:
        try:
            article = make_article(
                title=hints.title,
                text=text,
                url=entry.link,
                source=hints.source,
                author=hints.author,
                published_at=hints.published_at,
            )
        except ValueError as exc:
            self._remember_entry(url, entry, error=str(exc))
            return LoadFailure(entry.link or f"{url}#{entry.key}", str(exc))
        self._remember_entry(url, entry, article=article)
        return article

    def _record_entry(
        self, url: str, entry: FeedEntry, result: Page | FetchFailure, extracted: Article | LoadFailure | None
    ) -> None:
        if isinstance(extracted, Article):
            self._remember_entry(url, entry, article=extracted)
        elif extracted is None and self.state is not None:  # 304: the page is indexed as it is
            cached = self.state.cached(entry.link or "")
            if cached is not None and cached.article_id:
                self.state.remember_entry(
                    url, entry.key, entry.stamp, article_id=cached.article_id, content_hash=cached.content_hash
                )
        elif isinstance(extracted, LoadFailure) and (isinstance(result, Page) or result.permanent):
            # the page answered without an article, or is gone: not retried until the entry changes
            self._remember_entry(url, entry, error=extracted.reason)

    def _remember_entry(
        self, url: str, entry: FeedEntry, *, article: Article | None = None, error: str | None = None
    ) -> None:
        if self.state is not None:
            self.state.remember_entry(
                url,
                entry.key,
                entry.stamp,
                article_id=article.id if article else None,
                content_hash=article.content_hash if article else None,
                error=error,
            )

    # -- sitemaps --------------------------------------------------------------------------------------

    def _sitemap_pages(self, page: Page, since: date | None, depth: int) -> Iterator[LoadResult]:
        cutoff = datetime(since.year, since.month, since.day, tzinfo=UTC) if since else None
        children: list[str] = []
        problems: list[LoadFailure] = []

        def jobs() -> Iterator[_PageJob | Article]:
            try:
                for item in parse_sitemap(page.body):
                    if cutoff and (item.lastmod is None or item.lastmod < cutoff):
                        continue
                    if item.is_sitemap:
                        children.append(item.loc)
                    elif self._fetched_since(item) and (stored := self._stored(item.loc)) is not None:
                        yield stored  # not modified since we fetched it: not even a request
                    else:
                        yield self._page_job(item.loc)
            except ValueError as exc:
                problems.append(LoadFailure(page.url, str(exc)))

        yield from self._run(jobs())
        yield from problems
        for child in children:
            if self.should_stop():
                return
            if depth + 1 >= _MAX_SITEMAP_DEPTH:
                yield LoadFailure(child, f"sitemap indexes nested deeper than {_MAX_SITEMAP_DEPTH} levels")
                continue
            result = self.fetcher.fetch(child)
            if isinstance(result, FetchFailure):
                yield LoadFailure(child, result.reason)
                continue
            yield from self._sitemap_pages(result, since, depth + 1)

    def _fetched_since(self, item: SitemapItem) -> bool:
        """The page was fetched (and is indexed as fetched) after its lastmod: not worth even a request."""
        cached = self.state.cached(item.loc) if self.state and item.lastmod else None
        if cached is None or item.lastmod is None or not self._is_indexed(cached):
            return False
        return datetime.fromisoformat(cached.fetched_at) >= item.lastmod


def _entry_known(seen: SeenEntry | None, entry: FeedEntry, held: dict[str, str]) -> bool:
    """Handled before and unchanged since: its article is indexed as it was then, or it failed for good."""
    if seen is None or seen.stamp != entry.stamp:
        return False
    if seen.article_id is None:
        return seen.error is not None  # a lasting failure: not retried until the entry changes
    return held.get(seen.article_id) == seen.content_hash


class FeedLoad:
    """One poll of one feed: iterating yields its articles and failures; `poll` says how it went.

    The feed's validators are stored only once every entry was handled, so entries deferred by the per-poll
    cap, or whose pages failed for now, are looked at again on the next poll.
    """

    def __init__(self, loader: WebLoader, url: str, *, fetched: Page | None, followed: bool) -> None:
        self.loader = loader
        self.url = url
        self.followed = followed
        self.fetched = fetched
        self.poll = FeedPoll(url)

    def __iter__(self) -> Iterator[LoadResult]:
        loader, poll = self.loader, self.poll
        page = self.fetched
        if page is None:
            etag, modified = loader._feed_validators(self.url, self.followed)
            result = loader.fetcher.fetch(self.url, etag=etag, last_modified=modified)
            if isinstance(result, FetchFailure):
                yield self._failed(result.reason)
                return
            page = result
        if page.not_modified:
            poll.not_modified = poll.complete = True
            self._record(None, (page.etag, page.last_modified))
            return
        try:
            parsed = parse_feed(page.body, page.final_url, page.content_type)
        except ValueError as exc:
            yield self._failed(str(exc))
            return
        poll.title, poll.entries = parsed.title, len(parsed.entries)
        state = loader.state
        for item in loader._run(loader._entry_items(self.url, parsed, poll)):
            if isinstance(item, LoadFailure):
                poll.failures.append(item)
            elif state is not None and state.catalog.forgotten([item.id]):
                poll.forgotten += 1  # a new entry for an article forgotten before (ingested some other way)
                continue
            yield item
        poll.complete = not loader.should_stop() and poll.deferred == 0 and self._all_handled(parsed)
        self._record(None, (page.etag, page.last_modified) if poll.complete else None)

    def _all_handled(self, parsed: ParsedFeed) -> bool:
        state = self.loader.state
        if state is None:
            return not self.poll.failures
        seen = state.seen_entries(self.url, [e.key for e in parsed.entries])
        return all(e.key in seen and seen[e.key].stamp == e.stamp for e in parsed.entries)

    def _failed(self, reason: str) -> LoadFailure:
        self.poll.error = reason
        failure = LoadFailure(self.url, reason)
        self.poll.failures.append(failure)
        self._record(reason, None)
        return failure

    def _record(self, error: str | None, validators: tuple[str | None, str | None] | None) -> None:
        state = self.loader.state
        if state is None:
            return
        if self.followed:
            state.record_poll(self.url, error=error, title=self.poll.title, validators=validators)
        elif validators is not None:
            state.remember_page(self.url, final_url=None, etag=validators[0], last_modified=validators[1])


# -- the loader registry hook ------------------------------------------------------------------------------

_SESSION: contextvars.ContextVar[WebLoader | None] = contextvars.ContextVar("byline_web_session", default=None)
T = TypeVar("T")


@contextmanager
def web_session(
    settings: WebSettings, catalog: Catalog | None = None, indexed: IndexedHashes | None = None
) -> Iterator[WebLoader]:
    """Within this block, URL sources given to `load_sources` are loaded with these settings, remembering
    validators and feed entries in `catalog`; `indexed` is the store's `indexed_hashes`."""
    loader = WebLoader(settings, WebState(catalog) if catalog is not None else None, indexed)
    token = _SESSION.set(loader)
    try:
        yield loader
    finally:
        _SESSION.reset(token)
        loader.close()


def in_this_session(results: Iterable[T]) -> Iterator[T]:
    """`results` consumed in the current session whichever thread pulls them (the ingest pipeline loads on a
    producer thread, which a context variable would not follow)."""
    context = contextvars.copy_context()  # now, on the calling thread: a generator would copy it too late

    def pulled() -> Iterator[T]:
        items = iter(results)
        while True:
            try:
                yield context.run(next, items)
            except StopIteration:
                return

    return pulled()


def is_web_source(source: str) -> bool:
    lowered = source.lower()
    for prefix in ("", FEED_PREFIX, SITEMAP_PREFIX):
        if lowered.startswith(prefix) and lowered[len(prefix) :].startswith(("http://", "https://")):
            return True
    return False


def handle_source(source: str) -> Iterator[LoadResult] | None:
    """The loader registry's hook: claims http(s) URLs (and feed:/sitemap: URLs) and leaves the rest."""
    if not is_web_source(source):
        return None
    loader = _SESSION.get()
    return loader.load(source) if loader is not None else _load_once(source)


def _load_once(source: str) -> Iterator[LoadResult]:
    # Outside a session (a script calling load_sources directly): default settings, nothing remembered.
    with WebLoader(WebSettings()) as loader:
        yield from loader.load(source)


register_source_handler(handle_source)
