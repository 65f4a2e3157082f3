"""Sitemaps (`urlset` pages, `sitemapindex` children), streamed element by element, and XML sniffing."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from ingest.loaders import parse_date


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
