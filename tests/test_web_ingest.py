"""Web pages, feeds and sitemaps through the real ingest pipeline (real model, real Chroma, real SQLite; the tests
of what the web state remembers on PostgreSQL too), fetched from a local site; `byline watch` and the web CLI
commands."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest
from catalog_backends import on_both_catalogs
from conftest import free_port
from typer.testing import CliRunner
from web_site import STORM, Resource, Site, SiteServer

from bot.app import Byline
from bot.cli.main import build_app
from bot.settings import load_settings
from bot.watch import Watcher, feed_lock, parse_duration
from ingest.config import WebSettings
from ingest.embedding import Embedder
from ingest.pipeline import IngestReport
from ingest.progress import IngestProgress, Progress
from ingest.web.state import WebState

app = build_app()

pytestmark = [pytest.mark.network, pytest.mark.slow]

FAST = {
    "delay": 0.0,
    "backoff": 0.01,
    "timeout": 1.0,
    "max_seconds": 3.0,
    "max_bytes": 3_000_000,
    "max_retry_after": 2.0,
    "retries": 0,
}
FAST_ENV = {f"BYLINE_WEB_{k.upper()}": str(v) for k, v in FAST.items()}


@pytest.fixture
def site() -> Iterator[Site]:
    with SiteServer() as served:
        yield served


@pytest.fixture
def web(byline: Byline) -> Byline:
    """The test Byline (real model, fresh home) with quick web settings."""
    byline.settings.web = WebSettings(**FAST)
    return byline


@pytest.fixture
def embedded(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Texts embedded so far (the real model still does the work)."""
    counts: list[int] = []
    real = embedder.embed

    def counting(texts: list[str]) -> object:
        counts.append(len(texts))
        return real(texts)

    monkeypatch.setattr(embedder, "embed", counting)
    return counts


def articles(byline: Byline) -> dict[str, tuple[str, str | None, str | None, str | None]]:
    rows = byline.catalog.fetch("SELECT url, title, author, source, published_at FROM articles")
    return {row[0]: tuple(row[1:]) for row in rows}


def chunk_texts(byline: Byline, url: str) -> list[str]:
    rows = byline.catalog.fetch(
        "SELECT c.text FROM chunks c JOIN articles a ON a.id = c.article_id WHERE a.url = ? ORDER BY position",
        (url,),
    )
    return [row[0] for row in rows]


def vector_ids(byline: Byline, url: str) -> set[str]:
    return byline.store.vector_ids(where={"url": url})


def update_storm(site: Site, update: str) -> None:
    """The storm story republished with one more paragraph."""
    site.set_article(
        "/news/storm-surge.html",
        "Storm surge floods lower harbour",
        [*STORM, update],
        author="Maria Keane",
        published="2024-03-05T08:30:00+00:00",
    )


def counts(report: IngestReport) -> tuple[int, int, int, int]:
    return report.added, report.updated, report.unchanged, len(report.failed)


# -- pages --------------------------------------------------------------------------------------------------


def test_one_article_reached_by_three_urls_is_stored_once(web: Byline, site: Site) -> None:
    report = web.ingest([site.url("/news/storm-surge.html"), site.url("/amp/storm-surge"), site.url("/moved")])
    assert counts(report) == (1, 0, 2, 0)
    canonical = site.url("/news/storm-surge.html")
    assert articles(web) == {
        canonical: (
            "Storm surge floods lower harbour",
            "Maria Keane",
            "The Harbour Gazette",
            "2024-03-05T08:30:00+00:00",
        )
    }
    assert any("Quay Street" in text for text in chunk_texts(web, canonical))


@on_both_catalogs
def test_an_unchanged_page_costs_one_304_and_embeds_nothing(web: Byline, site: Site, embedded: list[int]) -> None:
    url = site.url("/news/storm-surge.html")
    assert counts(web.ingest([url])) == (1, 0, 0, 0)
    calls = len(embedded)
    report = web.ingest([url])
    assert counts(report) == (0, 0, 1, 0) and report.chunks == 0
    assert len(embedded) == calls
    last = site.hits_for("/news/storm-surge.html")[-1]
    assert last.status == 304 and last.headers["if-none-match"]


def test_an_updated_page_replaces_its_chunks(web: Byline, site: Site) -> None:
    url = site.url("/news/storm-surge.html")
    web.ingest([url])
    before = vector_ids(web, url)
    update_storm(site, "Update: the ferry terminal reopened on Friday morning after divers inspected the pier.")
    report = web.ingest([url])
    assert counts(report) == (0, 1, 0, 0)
    assert any("ferry terminal reopened on Friday" in t for t in chunk_texts(web, url))
    after = vector_ids(web, url)
    assert after and not before & after  # old vectors gone, new ones in
    assert len(articles(web)) == 1


def test_every_bad_url_is_reported_and_the_rest_continues(web: Byline, site: Site) -> None:
    closed = f"http://127.0.0.1:{free_port()}/news/a.html"
    bad = {
        site.url("/missing"): "HTTP 404",
        site.url("/gone"): "HTTP 410",
        site.url("/empty.html"): "no article text",
        site.url("/report.html"): "PDF",
        site.url("/img/ferry.jpg"): "image/jpeg",
        site.url("/loop/a"): "redirect loop",
        site.url("/huge"): "too large",
        site.url("/slow"): "timed out",
        site.url("/private/memo.html"): "robots.txt",
        closed: "cannot connect",
        "feed:" + site.url("/feeds/not-xml"): "not an RSS or Atom feed",
        "feed:" + site.url("/feeds/html-page"): "not an RSS or Atom feed",
        "sitemap:" + site.url("/feeds/rss2.xml"): "not a sitemap",
    }
    good = [site.url("/news/storm-surge.html"), site.url("/culture/museum.html")]
    report = web.ingest([good[0], *bad, good[1]])
    assert (report.added, len(report.failed)) == (2, len(bad))
    reasons = {f.source: f.reason for f in report.failed}
    for source, words in bad.items():
        url = source.split(":", 1)[1] if source.startswith(("feed:", "sitemap:")) else source
        assert words in reasons[url], (url, reasons.get(url))
    assert web.catalog.fetch("SELECT COUNT(*) FROM pending_writes")[0][0] == 0
    assert sorted(articles(web)) == sorted(good)


def test_a_pdf_served_as_application_pdf_is_an_article(web: Byline, site: Site) -> None:
    report = web.ingest([site.url("/docs/press-release.pdf?utm_source=newsletter&id=7")])
    assert counts(report) == (1, 0, 0, 0)
    url = site.url("/docs/press-release.pdf?id=7")  # the tracking parameter gone
    assert articles(web)[url][0] == "Harbour Authority approves new ferry terminal at Quay Street"
    assert any("14.2 million pounds" in text for text in chunk_texts(web, url))


# -- feeds --------------------------------------------------------------------------------------------------


@on_both_catalogs
def test_feed_ingest_repoll_and_update_end_to_end(web: Byline, site: Site, embedded: list[int]) -> None:
    """Summary-only RSS: pages fetched from entry links; a re-poll costs one 304; an update replaces chunks."""
    feed = "feed:" + site.url("/feeds/rss2.xml")
    storm, bridge = site.url("/news/storm-surge.html"), site.url("/news/bridge-closed.html")
    assert counts(web.ingest([feed])) == (2, 0, 0, 0)
    assert set(articles(web)) == {storm, bridge}  # the utm_ parameters did not make a second article
    pages_fetched = site.count("/news/storm-surge.html") + site.count("/news/bridge-closed.html")
    calls = len(embedded)

    report = web.ingest([feed])
    assert counts(report) == (0, 0, 0, 0) and report.chunks == 0
    assert len(embedded) == calls
    assert site.hits_for("/feeds/rss2.xml")[-1].status == 304
    assert site.count("/news/storm-surge.html") + site.count("/news/bridge-closed.html") == pages_fetched

    old_vectors = vector_ids(web, storm)
    update_storm(site, "Update: insurers said claims could exceed four million pounds.")
    site.pages["/feeds/rss2.xml"] = Resource(
        site.rss2().replace("Tue, 05 Mar 2024 08:30:00", "Tue, 05 Mar 2024 12:00:00").encode(),
        "application/rss+xml",
    )
    report = web.ingest([feed])
    assert counts(report) == (0, 1, 0, 0)
    assert site.count("/news/bridge-closed.html") == 1  # its entry did not change: not fetched again
    assert any("four million pounds" in t for t in chunk_texts(web, storm))
    assert not old_vectors & vector_ids(web, storm)


@on_both_catalogs
def test_a_forgotten_feed_article_stays_forgotten_until_ingested_again(web: Byline, site: Site) -> None:
    url = site.url("/feeds/rss2.xml")
    storm, bridge = site.url("/news/storm-surge.html"), site.url("/news/bridge-closed.html")
    WebState(web.catalog).add_feed(url)
    watcher = Watcher(web, stop=threading.Event(), echo=lambda line: None)
    assert watcher.poll(url).report.added == 2  # type: ignore[union-attr]
    removed, _ = web.forget([storm])
    assert len(removed) == 1

    site.pages["/feeds/rss2.xml"] = Resource(  # the feed changes, the forgotten entry with it
        site.rss2().replace("Tue, 05 Mar 2024 08:30:00", "Tue, 05 Mar 2024 12:00:00").encode(), "application/rss+xml"
    )
    polled = watcher.poll(url)
    assert polled.poll is not None and polled.report is not None
    assert (polled.poll.forgotten, polled.report.added, polled.poll.complete) == (1, 0, True)
    assert "1 forgotten" in polled.describe()
    assert set(articles(web)) == {bridge}
    again = watcher.poll(url)  # handled: the next poll is one 304
    assert again.poll is not None and again.poll.not_modified

    assert counts(web.ingest([storm])) == (1, 0, 0, 0)  # asked for by name: back, and followed again
    assert set(articles(web)) == {storm, bridge}
    assert not web.catalog.forgotten(web.catalog.resolve(storm))


@on_both_catalogs
def test_a_feed_met_after_forget_leaves_the_forgotten_article_out(web: Byline, site: Site) -> None:
    storm, bridge = site.url("/news/storm-surge.html"), site.url("/news/bridge-closed.html")
    web.ingest([bridge])
    web.forget([bridge])
    url = site.url("/feeds/rss2.xml")
    WebState(web.catalog).add_feed(url)
    polled = Watcher(web, stop=threading.Event(), echo=lambda line: None).poll(url)
    assert polled.poll is not None and polled.report is not None
    assert (polled.poll.forgotten, polled.report.added) == (1, 1)
    assert set(articles(web)) == {storm}


def test_atom_with_full_content_needs_no_page_fetch(web: Byline, site: Site) -> None:
    report = web.ingest(["feed:" + site.url("/feeds/atom.xml")])
    assert counts(report) == (2, 0, 0, 0)
    assert not [h for h in site.hits if h.path.startswith("/reports/")]
    meta = articles(web)[site.url("/reports/1.html")]
    assert meta == ("Weekly shipping report 1", "Port Desk", "Gazette Port Reports", "2024-03-01T07:00:00+00:00")


def test_feed_and_sitemap_urls_are_recognised_by_their_content(web: Byline, site: Site) -> None:
    report = web.ingest([site.url("/feeds/rss1.rdf"), site.url("/feeds/rss091.xml")])
    assert counts(report) == (2, 0, 0, 0)
    assert set(articles(web)) == {site.url("/culture/museum.html"), site.url("/news/storm-surge.html")}


def test_sitemap_since_skips_old_pages_and_old_child_sitemaps(web: Byline, site: Site) -> None:
    web.settings.web.sitemap_since = date(2024, 1, 1)
    report = web.ingest(["sitemap:" + site.url("/sitemap.xml")])
    assert counts(report) == (2, 0, 0, 0)
    assert set(articles(web)) == {site.url("/news/storm-surge.html"), site.url("/news/bridge-closed.html")}
    assert site.count("/culture/museum.html") == 0  # lastmod 2023
    assert site.count("/about") == 0  # no lastmod
    assert site.count("/sitemap-2019.xml") == 0  # the whole child sitemap is older
    requests = len(site.hits)
    again = web.ingest(["sitemap:" + site.url("/sitemap.xml")])
    assert counts(again) == (0, 0, 2, 0)
    # fetched after their lastmod: only the two sitemaps were requested, no page
    assert [h.path for h in site.hits[requests:] if h.path != "/robots.txt"] == ["/sitemap.xml", "/sitemap-2024.xml"]


@on_both_catalogs
def test_failing_entries_are_retried_next_poll_and_lasting_failures_are_not(web: Byline, site: Site) -> None:
    url = site.url("/feeds/with-broken-entry.xml")
    state = WebState(web.catalog)
    state.add_feed(url)
    watcher = Watcher(web, echo=lambda line: None)

    first = watcher.poll(url)
    assert first.report is not None and first.poll is not None
    assert counts(first.report) == (1, 0, 0, 3)
    reasons = sorted(f.reason for f in first.report.failed)
    assert reasons == ["HTTP 404 Not Found", "HTTP 503 Service Unavailable", "no article text found in the HTML"]
    assert not first.poll.complete and state.feed(url).etag is None  # type: ignore[union-attr]

    second = watcher.poll(url)
    assert second.report is not None and second.poll is not None
    assert counts(second.report) == (1, 0, 0, 0)  # the flaky page made it; the 404 and empty page not retried
    assert site.count("/missing") == 1 and site.count("/empty.html") == 1
    assert second.poll.complete and state.feed(url).etag  # type: ignore[union-attr]

    third = watcher.poll(url)
    assert third.poll is not None and third.poll.not_modified


@on_both_catalogs
def test_a_feed_with_10000_entries_is_taken_in_bounded_rounds(web: Byline, site: Site) -> None:
    web.settings.web.entries_per_poll = 5
    site.pages["/feeds/big.xml"] = Resource(site.big_feed(10_000), "application/rss+xml")
    url = site.url("/feeds/big.xml")
    WebState(web.catalog).add_feed(url)
    watcher = Watcher(web, echo=lambda line: None)

    first = watcher.poll(url)
    assert first.poll is not None and first.report is not None
    assert (first.poll.entries, first.poll.taken, first.poll.deferred) == (10_000, 5, 9_995)
    assert first.report.added == 5
    assert set(articles(web)) == {site.url(f"/gen/{n}.html") for n in range(9_995, 10_000)}  # the newest
    assert len([h for h in site.hits if h.path.startswith("/gen/")]) == 5

    second = watcher.poll(url)
    assert second.poll is not None and second.report is not None
    assert (second.poll.known, second.poll.taken, second.report.added) == (5, 5, 5)
    assert set(articles(web)) == {site.url(f"/gen/{n}.html") for n in range(9_990, 10_000)}


@on_both_catalogs
def test_watch_stops_between_articles_and_finishes_next_time(web: Byline, site: Site) -> None:
    web.settings.web.entries_per_poll = 6
    web.settings.web.concurrency = 1
    site.pages["/feeds/big.xml"] = Resource(site.big_feed(20), "application/rss+xml")
    url = site.url("/feeds/big.xml")
    WebState(web.catalog).add_feed(url)
    stop = threading.Event()
    site.on_request = lambda path: stop.set() if path == "/gen/17.html" else None
    watcher = Watcher(web, stop=stop, echo=lambda line: None)

    stopped = watcher.poll(url)
    assert stopped.poll is not None and stopped.report is not None
    taken = stopped.report.added
    assert 0 < taken < 6 and not stopped.poll.complete
    # every article written is whole: catalog and vectors agree, nothing pending
    rows = dict(web.catalog.fetch("SELECT id, hash FROM articles"))
    assert len(rows) == taken and web.store.indexed_hashes(list(rows)) == rows
    assert web.catalog.fetch("SELECT COUNT(*) FROM pending_writes")[0][0] == 0
    assert WebState(web.catalog).feed(url).etag is None  # type: ignore[union-attr]

    stop.clear()
    site.on_request = None
    resumed = watcher.poll(url)
    assert resumed.report is not None and resumed.poll is not None
    assert (resumed.poll.known, resumed.report.added) == (taken, 6)
    assert set(articles(web)) == {site.url(f"/gen/{n}.html") for n in range(20 - taken - 6, 20)}


@on_both_catalogs
def test_watch_survives_failing_feeds(web: Byline, site: Site) -> None:
    state = WebState(web.catalog)
    broken = [site.url("/feeds/not-xml"), f"http://127.0.0.1:{free_port()}/rss.xml", site.url("/missing")]
    for url in [*broken, site.url("/feeds/rss2.xml")]:
        state.add_feed(url)
    lines: list[str] = []
    outcomes = Watcher(web, echo=lines.append).poll_round()
    assert len(outcomes) == 4
    assert len(articles(web)) == 2
    errors = {f.url: f.last_error for f in state.feeds()}
    assert "not an RSS or Atom feed" in (errors[broken[0]] or "")
    assert "cannot connect" in (errors[broken[1]] or "")
    assert errors[broken[2]] == "HTTP 404 Not Found"
    assert errors[site.url("/feeds/rss2.xml")] is None
    assert any("added 2" in line for line in lines)
    # polled feeds are not due again until their interval has passed
    assert Watcher(web, every=3600).due(time.time()) == []


@on_both_catalogs
def test_two_watches_poll_each_feed_once(web: Byline, site: Site, embedder: Embedder) -> None:
    """Two watches at once on one catalog (two machines sharing PostgreSQL, or two processes on one home)."""
    url = site.url("/feeds/rss2.xml")
    WebState(web.catalog).add_feed(url)
    other = Byline(load_settings(), embedder=embedder)  # its own connections, as another process has
    other.settings.web = web.settings.web
    start = threading.Barrier(2)
    lines: list[str] = []

    def watch(byline: Byline) -> None:
        start.wait()
        Watcher(byline, echo=lines.append).poll_round()

    threads = [threading.Thread(target=watch, args=(byline,)) for byline in (web, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert site.count("/feeds/rss2.xml") == 1, lines
    assert len(articles(web)) == 2 and sum("added 2" in line for line in lines) == 1

    # while one watch holds a feed, another leaves it alone, even when asked to poll everything
    with other.catalog.lock(feed_lock(url)):
        assert Watcher(web, echo=lines.append).poll_round(everything=True) == []
    assert lines[-1] == f"{url}: another watch is polling it"
    assert len(Watcher(web, echo=lines.append).poll_round(everything=True)) == 1


def test_each_feed_poll_reports_to_the_progress_display(web: Byline, site: Site) -> None:
    """`watch` draws each feed's ingest on the display it is given: one display per poll, events in it."""
    state = WebState(web.catalog)
    for url in (site.url("/feeds/rss2.xml"), site.url("/feeds/atom.xml")):
        state.add_feed(url)
    polls: list[list[IngestProgress]] = []

    @contextmanager
    def display() -> Iterator[Progress]:
        polls.append([])
        yield polls[-1].append

    Watcher(web, echo=lambda line: None, display=display).poll_round()
    assert len(polls) == 2
    first = polls[0]
    assert first[-1].stage == "writing" and first[-1].done == 2 and first[-1].total is None  # feeds: no count
    assert first[-1].chunks_done == first[-1].chunks_total > 0


def test_parse_duration() -> None:
    assert parse_duration("15m") == 900
    assert parse_duration("1h30m") == 5400
    assert parse_duration("90") == 90
    for bad in ("soon", "10x", "0s", "-5"):
        with pytest.raises(ValueError):
            parse_duration(bad)


# -- the CLI ------------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)


@on_both_catalogs
def test_feeds_add_list_remove(site: Site, cli_env: None) -> None:
    runner = CliRunner()
    url = site.url("/feeds/rss2.xml")
    added = runner.invoke(app, ["feeds", "add", url, "--every", "1h"])
    assert added.exit_code == 0, added.output
    assert "The Harbour Gazette: 2 entries" in added.output and f"following {url}" in added.output
    assert "already following" in runner.invoke(app, ["feeds", "add", url]).output

    not_a_feed = runner.invoke(app, ["feeds", "add", site.url("/news/storm-surge.html")])
    assert not_a_feed.exit_code == 1 and "not an RSS or Atom feed" in not_a_feed.output
    assert runner.invoke(app, ["feeds", "add", "ftp://x/feed"]).exit_code == 2

    listed = runner.invoke(app, ["feeds", "list", "--json"])
    assert listed.exit_code == 0
    assert '"interval": 3600.0' in listed.output and url in listed.output
    assert runner.invoke(app, ["feeds", "remove", url]).exit_code == 0
    assert runner.invoke(app, ["feeds", "remove", url]).exit_code == 1
    assert "no feeds followed" in runner.invoke(app, ["feeds", "list"]).output


@on_both_catalogs
def test_cli_ingest_feed_and_watch_once(site: Site, cli_env: None) -> None:
    runner = CliRunner()
    once = runner.invoke(app, ["ingest", "--feed", site.url("/feeds/atom.xml"), "--json"])
    assert once.exit_code == 0, once.output
    assert '"added": 2' in once.output
    since = runner.invoke(app, ["ingest", "--sitemap", site.url("/sitemap.xml"), "--since", "2024-03-06"])
    assert since.exit_code == 0, since.output
    assert "added 1," in since.output  # only the bridge page was modified on or after that day
    assert runner.invoke(app, ["ingest", "--since", "yesterday", "x"]).exit_code == 2
    assert runner.invoke(app, ["ingest"]).exit_code == 2

    assert runner.invoke(app, ["feeds", "add", site.url("/feeds/rss2.xml")]).exit_code == 0
    first = runner.invoke(app, ["watch", "--once"])
    assert first.exit_code == 0, first.output
    assert "2 entries, 0 already indexed; added 1, updated 0" in first.output  # the bridge was already in
    second = runner.invoke(app, ["watch", "--once"])
    assert "not modified" in second.output


def test_sigterm_stops_watch_cleanly(web: Byline, site: Site) -> None:
    url = site.url("/feeds/rss2.xml")
    web.ingest(["feed:" + url])  # everything indexed already: the child process embeds nothing
    WebState(web.catalog).add_feed(url)
    env = {**os.environ, **FAST_ENV, "BYLINE_HOME": str(web.settings.home), "PYTHONUNBUFFERED": "1"}
    child = subprocess.Popen(
        [str(Path(sys.executable).parent / "byline"), "watch", "--every", "1h"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(child.stdout, selectors.EVENT_READ)
            assert selector.select(timeout=60), "watch printed nothing"
        line = child.stdout.readline()
        assert "2 entries, 2 already indexed; added 0" in line
        child.send_signal(signal.SIGTERM)  # now asleep until the next round
        _, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 0, err
    assert "SIGTERM: stopping" in err and "stopped after 1 round(s)" in err
