"""Articles from the web: `WebLoader` turns URLs, feeds and sitemaps into `Article | LoadFailure` values for the
ingest pipeline, fetching politely (`ingest.web.fetch`) and remembering validators and seen feed entries in the
catalog (`ingest.web.state`), so an unchanged page or feed costs one cheap request and embeds nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from ingest.config import WebSettings
from ingest.loaders import LoadFailure, LoadResult, failure_reason, make_article
from ingest.models import Article
from ingest.outlets import Outlets
from ingest.web.extract import Hints, article_from_page, fragment_text
from ingest.web.feeds import FeedEntry, ParsedFeed, parse_feed
from ingest.web.fetch import Fetcher, FetchFailure, Page, map_bounded
from ingest.web.sitemaps import SitemapItem, parse_sitemap, xml_root
from ingest.web.state import CachedPage, SeenEntry, WebState

log = logging.getLogger(__name__)

IndexedHashes = Callable[[Sequence[str]], dict[str, str]]

FEED_PREFIX = "feed:"
SITEMAP_PREFIX = "sitemap:"
# Sitemap indexes nest; real sites use one level, so three is generous and stops cycles early.
_MAX_SITEMAP_DEPTH = 3


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
    change of embedding model, pages are fetched in full again). `outlets` names the outlet of an article whose
    page and feed name none, before its version is remembered.
    """

    def __init__(
        self,
        settings: WebSettings,
        state: WebState | None = None,
        indexed: IndexedHashes | None = None,
        *,
        outlets: Outlets | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.settings = settings
        self.state = state
        self.indexed: IndexedHashes = indexed or (lambda ids: {})
        self.outlets = outlets
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

    def handle(self, source: str) -> Iterator[LoadResult] | None:
        """A source handler for `load_sources`: claims http(s) URLs (and feed:/sitemap: URLs), leaves the rest."""
        return self.load(source) if is_web_source(source) else None

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
        if result.kind not in ("html", "text", "pdf"):
            return LoadFailure(job.url, f"not an article page ({result.content_type or 'no content type'})")
        try:
            return self._named(article_from_page(result, job.hints))
        except Exception as exc:  # whatever extraction raises on a hostile page fails that page alone
            return LoadFailure(job.url, failure_reason(exc))

    def _named(self, article: Article) -> Article:
        return self.outlets.fill(article) if self.outlets else article

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
        for article_id in self.state.forgotten(list(expected)):
            del expected[article_id]  # not missing: forgotten on purpose
        held = self.indexed(list(expected))
        return stored if all(held.get(a) == h for a, h in expected.items()) else (None, None)

    def _entry_items(self, url: str, parsed: ParsedFeed, poll: FeedPoll) -> Iterator[_PageJob | LoadResult]:
        """New or changed entries, newest first, at most `entries_per_poll`: articles straight from feeds that
        carry the full text, page jobs for entries that carry only a summary."""
        seen = self.state.seen_entries(url, [e.key for e in parsed.entries]) if self.state else {}
        given = [s.article_id for s in seen.values() if s.article_id]
        held = self.indexed(given)  # one lookup, not one each
        gone = self.state.forgotten(given) if self.state else set()
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
            article = self._named(
                make_article(
                    title=hints.title,
                    text=text,
                    url=entry.link,
                    source=hints.source,
                    author=hints.author,
                    published_at=hints.published_at,
                )
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
            elif state is not None and state.forgotten([item.id]):
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


def is_web_source(source: str) -> bool:
    lowered = source.lower()
    for prefix in ("", FEED_PREFIX, SITEMAP_PREFIX):
        if lowered.startswith(prefix) and lowered[len(prefix) :].startswith(("http://", "https://")):
            return True
    return False
