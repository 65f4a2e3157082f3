"""Extraction: article pages (trafilatura + JSON-LD / Open Graph), RSS/Atom feeds, sitemaps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from web_site import BRIDGE, MUSEUM, STORM, Site, article_html

from ingest.links import strip_tracking
from ingest.models import article_id_for
from ingest.web.extract import Hints, article_from_html, fragment_text
from ingest.web.feeds import parse_feed
from ingest.web.sitemaps import parse_sitemap, xml_root

BASE = "https://gazette.example"


@pytest.fixture(scope="module")
def site() -> Site:
    """The site's documents, built for BASE (nothing is served here)."""
    content = Site()
    content.base = BASE
    content.build()
    return content


def page(site: Site, path: str) -> bytes:
    body = site.pages[path].body
    assert isinstance(body, bytes)
    return body


def test_main_text_without_navigation_related_cards_ads_or_footer(site: Site) -> None:
    article = article_from_html(page(site, "/news/storm-surge.html"), BASE + "/news/storm-surge.html")
    for paragraph in STORM:
        assert paragraph in article.text
    assert article.text.count("\n\n") == len(STORM) - 1  # one paragraph each, as on the page
    for furniture in ("Subscribe for $1", "Ferry timetable changes", "Buy cheap flights", "All rights reserved",
                      "More from the Gazette", "About us"):  # fmt: skip
        assert furniture not in article.text
    assert not article.text.startswith("Storm surge floods")  # the headline is the title, not body text


def test_metadata_from_json_ld_keeps_the_time(site: Site) -> None:
    article = article_from_html(page(site, "/news/storm-surge.html"), BASE + "/news/storm-surge.html?x=1")
    assert article.title == "Storm surge floods lower harbour"
    assert article.author == "Maria Keane"
    assert article.source == "The Harbour Gazette"
    assert article.published_at == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert article.url == BASE + "/news/storm-surge.html"  # canonical, not the address fetched
    assert article.id == article_id_for(BASE + "/news/storm-surge.html", "")


def test_open_graph_when_there_is_no_json_ld(site: Site) -> None:
    article = article_from_html(page(site, "/culture/museum.html"), BASE + "/culture/museum.html")
    assert article.title == "Figurehead gallery to reopen at maritime museum"
    assert article.source == "The Harbour Gazette"
    assert article.published_at == datetime(2024, 3, 7, 11, 0, tzinfo=UTC)
    assert MUSEUM[1] in article.text


def test_one_article_at_two_addresses_has_one_id(site: Site) -> None:
    original = article_from_html(page(site, "/news/storm-surge.html"), BASE + "/news/storm-surge.html")
    amp = article_from_html(page(site, "/amp/storm-surge"), BASE + "/amp/storm-surge")
    assert amp.id == original.id and amp.url == original.url


def test_a_canonical_pointing_at_the_front_page_is_ignored() -> None:
    html = article_html(
        path="/news/bridge.html",
        headline="Bridge closed",
        author="Dev Patel",
        published="2024-03-06T14:10:00+00:00",
        paragraphs=BRIDGE,
        canonical=BASE + "/",
    )
    article = article_from_html(html, BASE + "/news/bridge.html")
    assert article.url == BASE + "/news/bridge.html"


def test_feed_hints_fill_what_the_page_lacks() -> None:
    html = "<html><body><article>" + "".join(f"<p>{p}</p>" for p in BRIDGE) + "</article></body></html>"
    hints = Hints(
        title="Footbridge shut",
        author="Dev Patel",
        published_at=datetime(2024, 3, 6, tzinfo=UTC),
        source="The Harbour Gazette",
    )
    article = article_from_html(html, BASE + "/b?utm_source=rss&id=7", hints)
    assert (article.title, article.author, article.source) == ("Footbridge shut", "Dev Patel", "The Harbour Gazette")
    assert article.published_at == datetime(2024, 3, 6, tzinfo=UTC)
    assert article.url == BASE + "/b?id=7"


def test_a_page_with_no_article_text_is_an_error(site: Site) -> None:
    with pytest.raises(ValueError, match="no article text"):
        article_from_html(page(site, "/empty.html"), BASE + "/empty.html")


def test_tracking_parameters_are_dropped_from_canonical_urls_by_courlans_list() -> None:
    """`xtor` (AT Internet) and `_ga` are on courlan's list only: the hand-written one had seven names."""
    html = (
        '<html><head><link rel="canonical" href="https://a.example/x?id=3&xtor=RSS-8&_ga=2.1&utm_source=rss">'
        "<title>Ferry fares</title></head><body><article><p>"
        + "Ferry fares rise by five percent from April, the operator said on Monday. " * 4
        + "</p></article></body></html>"
    )
    assert article_from_html(html, "https://a.example/x?id=3&fbclid=abc").url == "https://a.example/x?id=3"
    assert strip_tracking("https://a.example/x?q=a%20b") == "https://a.example/x?q=a%20b"


def test_rss2_entries(site: Site) -> None:
    feed = parse_feed(page(site, "/feeds/rss2.xml"), BASE + "/feeds/rss2.xml")
    assert feed.title == "The Harbour Gazette"
    storm, bridge = feed.entries
    assert storm.key == "gazette-1001"
    assert storm.link == BASE + "/news/storm-surge.html"
    assert storm.published_at == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert storm.author == "Maria Keane"
    assert fragment_text(bridge.summary_html).strip() == "Engineers found corrosion in two cables."
    assert not storm.content_html


def test_atom_entries_carry_full_content(site: Site) -> None:
    feed = parse_feed(page(site, "/feeds/atom.xml"), BASE + "/feeds/atom.xml")
    first = feed.entries[0]
    assert first.key == "tag:gazette,2024:report-1"
    assert first.link == BASE + "/reports/1.html"
    assert first.published_at == datetime(2024, 3, 1, 7, 0, tzinfo=UTC)
    assert first.updated_at == datetime(2024, 3, 1, 7, 30, tzinfo=UTC)
    text = fragment_text(first.content_html)
    assert MUSEUM[0] in text and len(text) > 600


def test_rss1_and_rss091(site: Site) -> None:
    rdf = parse_feed(page(site, "/feeds/rss1.rdf"), BASE + "/feeds/rss1.rdf")
    assert rdf.entries[0].link == BASE + "/culture/museum.html"
    assert rdf.entries[0].newest == datetime(2024, 3, 7, 11, 0, tzinfo=UTC)  # dc:date
    old = parse_feed(page(site, "/feeds/rss091.xml"), BASE + "/feeds/rss091.xml")
    assert old.entries[0].key == BASE + "/amp/storm-surge"  # no guid: the link names the entry


def test_an_entry_stamp_changes_with_the_entry(site: Site) -> None:
    before = parse_feed(page(site, "/feeds/rss2.xml"), BASE + "/feeds/rss2.xml").entries[0]
    changed = page(site, "/feeds/rss2.xml").replace(b"Tue, 05 Mar 2024 08:30", b"Tue, 05 Mar 2024 10:00")
    after = parse_feed(changed, BASE + "/feeds/rss2.xml").entries[0]
    assert before.key == after.key and before.stamp != after.stamp


@pytest.mark.parametrize(
    "body",
    [b"this is {not} a feed, just text", b"<html><body><p>a web page</p></body></html>", b""],
)
def test_what_is_not_a_feed(body: bytes) -> None:
    with pytest.raises(ValueError, match="not an RSS or Atom feed"):
        parse_feed(body, BASE + "/feed")


def test_sitemap_index_and_urlset(site: Site) -> None:
    index = list(parse_sitemap(page(site, "/sitemap.xml")))
    assert [(i.loc, i.is_sitemap) for i in index] == [
        (BASE + "/sitemap-2024.xml", True),
        (BASE + "/sitemap-2019.xml", True),
    ]
    urls = list(parse_sitemap(page(site, "/sitemap-2024.xml")))
    assert [u.loc.removeprefix(BASE) for u in urls] == [
        "/news/storm-surge.html",
        "/news/bridge-closed.html",
        "/culture/museum.html",
        "/about",
    ]
    assert urls[0].lastmod == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert urls[1].lastmod == datetime(2024, 3, 6, tzinfo=UTC)
    assert urls[3].lastmod is None


def test_what_is_not_a_sitemap(site: Site) -> None:
    with pytest.raises(ValueError, match="root element <rss>"):
        list(parse_sitemap(page(site, "/feeds/rss2.xml")))
    with pytest.raises(ValueError, match="malformed XML"):
        list(parse_sitemap(b"<urlset><url><loc>x</loc></url>"))


def test_xml_root(site: Site) -> None:
    assert xml_root(page(site, "/feeds/rss1.rdf")) == "RDF"
    assert xml_root(page(site, "/feeds/atom.xml")) == "feed"
    assert xml_root(page(site, "/sitemap.xml")) == "sitemapindex"
    assert xml_root(b"not xml") is None


def test_fragment_text_keeps_paragraphs() -> None:
    text = fragment_text("<p>One.</p><p>Two<br>lines.</p><script>x()</script><ul><li>Three</li></ul>")
    assert [p.strip() for p in text.split("\n\n") if p.strip()] == ["One.", "Two\nlines.", "Three"]
