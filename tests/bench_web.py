"""Figures for the web loader against the local test site (no embedding): run
`.venv/bin/python tests/bench_web.py`. Prints throughput, request counts, memory and cut-off sizes."""

from __future__ import annotations

import sys
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from web_site import Resource, Site, SiteServer

from ingest.config import WebSettings
from ingest.models import Article
from ingest.storage.sqlite import SQLiteCatalog
from ingest.web.feeds import parse_feed
from ingest.web.fetch import Fetcher, FetchFailure
from ingest.web.loader import WebLoader
from ingest.web.state import WebState

PAGES = 200
SETTINGS = WebSettings(delay=0.0, backoff=0.01, timeout=5.0, retries=0, max_bytes=10_000_000, entries_per_poll=200)


class Index:
    """Stands in for the store: remembers which article versions were 'indexed'."""

    def __init__(self) -> None:
        self.held: dict[str, str] = {}

    def add(self, results: Sequence[object]) -> None:
        self.held.update({r.id: r.content_hash for r in results if isinstance(r, Article)})

    def __call__(self, ids: Sequence[str]) -> dict[str, str]:
        return {i: self.held[i] for i in ids if i in self.held}


def requests_to(site: Site, prefix: str) -> int:
    return len([h for h in site.hits if h.path.startswith(prefix)])


def pages(site: Site, state: WebState, index: Index) -> None:
    urls = [site.url(f"/gen/{n}.html") for n in range(PAGES)]
    sitemap = "".join(f"<url><loc>{u}</loc></url>" for u in urls)
    site.pages["/bench-sitemap.xml"] = Resource(
        f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{sitemap}</urlset>'.encode(),
        "application/xml",
    )
    for label in ("first fetch", "re-fetch (validators)"):
        with WebLoader(SETTINGS, state, index) as loader:
            before = len(site.hits)
            started = time.perf_counter()
            results = list(loader.load(site.url("/bench-sitemap.xml")))
            seconds = time.perf_counter() - started
        index.add(results)
        statuses = [h.status for h in site.hits[before:] if h.path.startswith("/gen/")]
        print(
            f"{PAGES} article pages, {label}: {seconds:.2f} s ({PAGES / seconds:.0f} pages/s, fetch + extract, "
            f"concurrency {SETTINGS.concurrency}); {statuses.count(200)} x 200, {statuses.count(304)} x 304"
        )


def big_feed(site: Site, state: WebState, index: Index) -> None:
    body = site.big_feed(10_000)
    site.pages["/big.xml"] = Resource(body, "application/rss+xml")
    started = time.perf_counter()
    parsed = parse_feed(body, site.url("/big.xml"))
    seconds = time.perf_counter() - started
    tracemalloc.start()
    parse_feed(body, site.url("/big.xml"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(
        f"10,000-entry feed ({len(body) / 1e6:.1f} MB): parsed in {seconds:.2f} s, "
        f"peak Python memory while parsing {peak / 1e6:.0f} MB"
    )
    url = site.url("/big.xml")
    state.add_feed(url)
    for poll in (1, 2):
        with WebLoader(SETTINGS, state, index) as loader:
            load = loader.load_feed(url, followed=True)
            started = time.perf_counter()
            results = list(load)
            seconds = time.perf_counter() - started
        index.add(results)
        print(
            f"  poll {poll}: {load.poll.known} known, {load.poll.taken} taken (cap {SETTINGS.entries_per_poll}), "
            f"{load.poll.deferred} deferred; {seconds:.2f} s including {load.poll.taken} page fetches"
        )
    small = site.url("/feeds/rss2.xml")
    state.add_feed(small)
    for poll in (1, 2):
        with WebLoader(SETTINGS, state, index) as loader:
            before = len(site.hits)
            started = time.perf_counter()
            results = list(loader.load_feed(small, followed=True))
            seconds = time.perf_counter() - started
        index.add(results)
        hits = [(h.path, h.status) for h in site.hits[before:] if h.path != "/robots.txt"]
        print(f"2-entry RSS feed, poll {poll}: {len(results)} articles, requests {hits}, {seconds * 1000:.0f} ms")
    assert len(parsed.entries) == 10_000


def failures(site: Site) -> None:
    settings = SETTINGS.model_copy(update={"max_bytes": 1_000_000})
    with Fetcher(settings) as fetcher:
        started = time.perf_counter()
        result = fetcher.fetch(site.url("/huge"))
        seconds = time.perf_counter() - started
    assert isinstance(result, FetchFailure)
    time.sleep(0.5)
    sent = site.bytes_sent.get("/huge", 0)
    print(
        f"50 MB page with a 1 MB cap: refused in {seconds * 1000:.0f} ms; the server got {sent / 1e6:.1f} MB "
        f"out before the client hung up ({result.reason})"
    )


def main() -> None:
    with SiteServer() as site, tempfile.TemporaryDirectory() as home:
        state = WebState(SQLiteCatalog(Path(home) / "catalog.sqlite"))
        index = Index()
        pages(site, state, index)
        big_feed(site, state, index)
        failures(site)


if __name__ == "__main__":
    main()
