"""robots.txt per RFC 9309: wildcard and end-anchored rules, longest match, product-token groups."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from web_site import Resource, Site, SiteServer

from ingest.config import WebSettings
from ingest.web.fetch import Fetcher, FetchFailure, Page
from ingest.web.robots import parse_robots, product_token

UA = "Byline/0.1 (+news question-answering bot)"

WILDCARDS = b"""# tracking copies and PDFs are off limits; one private page is open
User-agent: *
Disallow: /*?utm
Disallow: /*.pdf$
Allow: /private/open-*.html
Disallow: /private/

User-agent: bot
Disallow: /
"""


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/news/storm-surge.html", True),
        ("/news/storm-surge.html?utm_source=rss", False),
        ("/news/storm-surge.html?page=2&utm_medium=feed", True),  # `?utm` must follow the path directly
        ("/docs/annual-report.pdf", False),
        ("/docs/annual-report.pdf?download=1", True),  # `$` anchors the rule at the end of the URL
        ("/docs/annual-report.pdfx", True),
        ("/private/memo.html", False),
        ("/private/open-day.html", True),  # the longer Allow wins over the shorter Disallow
    ],
)
def test_wildcard_and_anchor_rules(path: str, allowed: bool) -> None:
    rules = parse_robots(WILDCARDS)
    assert rules.allows(f"https://example.org{path}", UA) is allowed


def test_groups_match_the_product_token_not_the_comment() -> None:
    # "bot" appears in our User-Agent's comment; RFC 9309 matches the product token only
    assert product_token(UA) == "Byline"
    assert parse_robots(WILDCARDS).allows("https://example.org/news/a.html", UA)
    named = parse_robots(b"User-agent: BYLINE\nDisallow: /news/\n\nUser-agent: *\nDisallow: /\n")
    assert not named.allows("https://example.org/news/a.html", UA)
    assert named.allows("https://example.org/sport/a.html", UA)  # its own group, not the catch-all one


def test_crawl_delay_and_bad_bytes() -> None:
    rules = parse_robots(b"User-agent: *\nCrawl-delay: 2.5\nDisallow: /caf\xe9/\n")
    assert rules.crawl_delay(UA) == 2.5
    assert parse_robots(b"").allows("https://example.org/anything", UA)
    assert parse_robots(b"").crawl_delay(UA) is None


@pytest.fixture
def site() -> Iterator[Site]:
    with SiteServer() as served:
        served.pages["/robots.txt"] = Resource(WILDCARDS, "text/plain")
        served.pages["/private/open-day.html"] = served.pages["/news/bridge-closed.html"]
        yield served


@pytest.mark.network
def test_the_fetcher_refuses_what_wildcard_rules_disallow(site: Site) -> None:
    settings = WebSettings(delay=0.0, backoff=0.01, timeout=2.0, retries=0, user_agent=UA)
    with Fetcher(settings) as fetcher:
        results = {
            path: fetcher.fetch(site.url(path))
            for path in (
                "/news/storm-surge.html?utm_source=rss&utm_medium=feed",
                "/docs/annual-report.pdf",
                "/private/memo.html",
                "/private/open-day.html",
                "/news/bridge-closed.html?page=2",
            )
        }
    refused = {path for path, result in results.items() if isinstance(result, FetchFailure)}
    assert refused == {
        "/news/storm-surge.html?utm_source=rss&utm_medium=feed",
        "/docs/annual-report.pdf",
        "/private/memo.html",
    }
    assert all("disallowed by robots.txt" in results[p].reason for p in refused)  # type: ignore[union-attr]
    assert isinstance(results["/private/open-day.html"], Page)
    # refused URLs are never requested; robots.txt is read once
    for path in ("/news/storm-surge.html", "/docs/annual-report.pdf", "/private/memo.html"):
        assert site.count(path) == 0
    assert site.count("/robots.txt") == 1
