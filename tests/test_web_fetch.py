"""The polite HTTP client against a real local server: retries, redirects, caps, robots.txt, validators."""

from __future__ import annotations

import itertools
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port
from loopback import LoopbackServer
from web_site import Resource, Site, SiteServer, _Handler

from ingest.config import WebSettings
from ingest.web.fetch import Fetcher, FetchFailure, Page, map_bounded

pytestmark = pytest.mark.network

FAST = {
    "delay": 0.0,
    "backoff": 0.01,
    "timeout": 0.5,
    "max_seconds": 2.0,
    "max_bytes": 1_000_000,
    "max_retry_after": 2.0,
    "retries": 2,
}


def web(**overrides: object) -> WebSettings:
    return WebSettings(**{**FAST, **overrides})


@pytest.fixture
def site() -> Iterator[Site]:
    with SiteServer() as served:
        yield served


def fetch(site: Site, path: str, **overrides: object) -> Page | FetchFailure:
    with Fetcher(web(**overrides)) as fetcher:
        return fetcher.fetch(site.url(path))


def failure(result: Page | FetchFailure) -> FetchFailure:
    assert isinstance(result, FetchFailure), f"expected a failure, got {result}"
    return result


def test_fetches_a_page_with_a_named_user_agent_and_reads_robots_once(site: Site) -> None:
    with Fetcher(web()) as fetcher:
        pages = [fetcher.fetch(site.url(p)) for p in ("/news/storm-surge.html", "/culture/museum.html")]
    assert all(isinstance(p, Page) and p.status == 200 and p.kind == "html" for p in pages)
    page = pages[0]
    assert isinstance(page, Page)
    assert b"Storm surge floods lower harbour" in page.body
    assert page.etag and page.last_modified
    assert site.hits_for("/news/storm-surge.html")[0].headers["user-agent"].startswith("Byline/")
    assert site.count("/robots.txt") == 1


def test_robots_disallow_is_respected_unless_turned_off(site: Site) -> None:
    blocked = failure(fetch(site, "/private/memo.html"))
    assert "robots.txt" in blocked.reason and blocked.url.endswith("/private/memo.html")
    assert site.count("/private/memo.html") == 0
    assert isinstance(fetch(site, "/private/memo.html", respect_robots=False), Page)


def test_missing_robots_allows_and_a_failing_robots_disallows(site: Site) -> None:
    del site.pages["/robots.txt"]
    assert isinstance(fetch(site, "/private/memo.html"), Page)
    site.pages["/robots.txt"] = Resource(b"down", "text/plain", status=503)
    refused = failure(fetch(site, "/news/storm-surge.html", retries=0))
    assert "robots.txt unreadable" in refused.reason
    assert site.count("/news/storm-surge.html") == 0


def test_robots_crawl_delay_spaces_requests(site: Site) -> None:
    site.pages["/robots.txt"] = Resource(b"User-agent: *\nCrawl-delay: 1\n", "text/plain")
    with Fetcher(web()) as fetcher:
        for n in range(3):
            assert isinstance(fetcher.fetch(site.url(f"/gen/{n}.html")), Page)
    arrivals = sorted(h.at for h in site.hits if h.path.startswith("/gen/"))
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(arrivals))


def test_redirects_are_followed_and_loops_named(site: Site) -> None:
    page = fetch(site, "/moved")
    assert isinstance(page, Page) and page.final_url == site.url("/news/storm-surge.html")
    loop = failure(fetch(site, "/loop/a"))
    assert loop.reason.startswith("redirect loop:") and "/loop/b ->" in loop.reason and loop.permanent
    assert site.count("/loop/a") == 1 and site.count("/loop/b") == 1


def test_too_many_redirects(site: Site) -> None:
    site.pages["/hop1"] = Resource(b"", status=302, headers={"Location": "/hop2"})
    site.pages["/hop2"] = Resource(b"", status=302, headers={"Location": "/moved"})
    assert "more than 2 redirects" in failure(fetch(site, "/hop1", max_redirects=2)).reason
    assert isinstance(fetch(site, "/hop1", max_redirects=3), Page)


@pytest.mark.parametrize(("path", "reason"), [("/missing", "HTTP 404 Not Found"), ("/gone", "HTTP 410 Gone")])
def test_missing_pages_fail_permanently_without_retries(site: Site, path: str, reason: str) -> None:
    result = failure(fetch(site, path))
    assert result.reason == reason and result.permanent
    assert site.count(path) == 1


def test_unreachable_host_is_reported_after_bounded_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}/news/"
    with Fetcher(web(retries=2)) as fetcher:
        result = failure(fetcher.fetch(url))
    assert result.url == url
    assert "cannot connect" in result.reason and "after 3 attempts" in result.reason
    assert not result.permanent


def test_images_are_unsupported(site: Site) -> None:
    result = failure(fetch(site, "/img/ferry.jpg"))
    assert "image/jpeg" in result.reason and result.permanent


@pytest.mark.parametrize("path", ["/docs/press-release.pdf", "/report.html"])
def test_pdfs_are_fetched_whatever_they_are_served_as(site: Site, path: str) -> None:
    """application/pdf, or PDF bytes under text/html: a PDF either way, by its first bytes."""
    page = fetch(site, path)
    assert isinstance(page, Page) and page.kind == "pdf" and page.body.startswith(b"%PDF-")
    assert "application/pdf" in site.hits_for(path)[0].headers["accept"]


def test_a_50_mb_page_is_cut_off_while_streaming(site: Site) -> None:
    result = failure(fetch(site, "/huge"))
    assert "too large" in result.reason and "stopped reading" in result.reason
    # the server managed to push only what the socket buffers held before the client hung up
    assert site.sent("/huge") < 25 * 1024 * 1024


def test_a_declared_50_mb_page_is_refused_before_reading(site: Site) -> None:
    result = failure(fetch(site, "/huge-declared"))
    assert "52,428,800 bytes declared" in result.reason


def test_slow_responses_time_out(site: Site) -> None:
    result = failure(fetch(site, "/slow", retries=1))
    assert "timed out" in result.reason and "after 2 attempts" in result.reason
    trickle = failure(fetch(site, "/trickle", max_seconds=1.0))
    assert "too slow" in trickle.reason


def test_429_waits_for_retry_after_then_succeeds(site: Site) -> None:
    page = fetch(site, "/busy")
    assert isinstance(page, Page) and b"Old Mill footbridge" in page.body
    first, second = site.hits_for("/busy")
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 0.9  # Retry-After: 1 was honoured


def test_a_retry_after_beyond_the_cap_fails_at_once(site: Site) -> None:
    result = failure(fetch(site, "/always-busy"))
    assert "Retry-After 86400 s" in result.reason and "max_retry_after" in result.reason
    assert site.count("/always-busy") == 1


def test_server_errors_are_retried_a_bounded_number_of_times(site: Site) -> None:
    assert isinstance(fetch(site, "/flaky"), Page)
    assert [h.status for h in site.hits_for("/flaky")] == [503, 200]
    broken = failure(fetch(site, "/broken", retries=2))
    assert broken.reason == "HTTP 500 Internal Server Error (after 3 attempts)"
    assert site.count("/broken") == 3


def test_etag_gives_a_304_that_costs_no_body(site: Site) -> None:
    with Fetcher(web()) as fetcher:
        first = fetcher.fetch(site.url("/news/storm-surge.html"))
        assert isinstance(first, Page)
        again = fetcher.fetch(site.url("/news/storm-surge.html"), etag=first.etag)
    assert isinstance(again, Page) and again.not_modified and again.body == b""
    assert again.etag == first.etag
    assert site.hits_for("/news/storm-surge.html")[1].headers["if-none-match"] == first.etag


def test_last_modified_alone_also_gives_a_304(site: Site) -> None:
    site.pages["/news/storm-surge.html"].etag_header = False
    with Fetcher(web()) as fetcher:
        first = fetcher.fetch(site.url("/news/storm-surge.html"))
        assert isinstance(first, Page) and first.etag is None and first.last_modified
        again = fetcher.fetch(site.url("/news/storm-surge.html"), last_modified=first.last_modified)
    assert isinstance(again, Page) and again.not_modified
    assert site.hits_for("/news/storm-surge.html")[1].headers["if-modified-since"] == first.last_modified


def test_per_host_concurrency_limit(site: Site) -> None:
    urls = [site.url(f"/gen/{n}.html?sleep=0.15") for n in range(8)]
    with Fetcher(web(per_host_concurrency=2, concurrency=8)) as fetcher:
        results = list(map_bounded(fetcher.fetch, urls, workers=8))
    assert all(isinstance(r, Page) for r in results)
    assert site.max_in_flight == 2


def test_politeness_delay_spaces_requests_to_one_host(site: Site) -> None:
    urls = [site.url(f"/gen/{n}.html") for n in range(4)]
    with Fetcher(web(delay=0.3, per_host_concurrency=4, concurrency=4)) as fetcher:
        list(map_bounded(fetcher.fetch, urls, workers=4))
    arrivals = sorted(h.at for h in site.hits if h.path.startswith("/gen/"))
    assert len(arrivals) == 4
    assert all(b - a >= 0.25 for a, b in itertools.pairwise(arrivals))


def test_map_bounded_keeps_order_and_draws_items_lazily() -> None:
    drawn = []

    def items() -> Iterator[int]:
        for n in range(1000):
            drawn.append(n)
            yield n

    results = map_bounded(lambda n: n * n, items(), workers=3)
    assert [next(results) for _ in range(5)] == [0, 1, 4, 9, 16]
    assert len(drawn) <= 5 + 2 * 3


def test_not_http_is_refused() -> None:
    with Fetcher(web()) as fetcher:
        assert failure(fetcher.fetch("ftp://example.org/file")).reason == "not an http(s) URL"


@pytest.fixture
def tls_site(tmp_path: Path) -> Iterator[str]:
    """The site over HTTPS with a self-signed certificate the client does not trust."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "1", "-subj", "/CN=127.0.0.1"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    site = Site()
    server = LoopbackServer(type("Handler", (_Handler,), {"site": site}))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    site.base = server.base_url.replace("http:", "https:")
    site.build()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield site.url("/news/storm-surge.html")
    server.shutdown()
    server.server_close()


def test_tls_errors_are_reported_without_retries(tls_site: str) -> None:
    with Fetcher(web(retries=3)) as fetcher:
        result = failure(fetcher.fetch(tls_site))
    assert result.reason.startswith("TLS error") and "certificate" in result.reason.lower()
    assert result.permanent and "attempts" not in result.reason
