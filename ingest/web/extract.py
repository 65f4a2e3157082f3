"""Articles from web pages: the main text via trafilatura, metadata from JSON-LD and Open Graph, the canonical
URL (tracking parameters removed, by courlan's list: `ingest.links`) as the article's identity."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from ingest.documents import article_from_pdf
from ingest.links import strip_tracking
from ingest.loaders import make_article, parse_date
from ingest.models import Article
from ingest.web.fetch import Page

# schema.org types of an article: Article, NewsArticle and its kinds (ReportageNewsArticle...), BlogPosting...
_ARTICLE_TYPE = re.compile(r"\w*newsarticle|article|(live)?blogposting|report", re.IGNORECASE)
# fmt: off
_BLOCK_TAGS = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "tr", "section",
               "article", "figcaption", "dd", "dt")
# fmt: on


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
    """An Article from a fetched HTML, plain-text or PDF page; raises ValueError when there is no article text."""
    if page.kind == "pdf":
        return article_from_pdf(page.body, url=strip_tracking(page.final_url))
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
    canonical = _canonical(tree, url, meta)
    return make_article(
        title=title,
        text=_body_text(found["text"], title),
        url=canonical,
        # no name found: the loader names the outlet after the URL's domain (ingest.outlets)
        source=meta.site_name or _named_site(found.get("sitename"), [url, canonical]) or hints.source,
        author=found.get("author") or meta.author or hints.author,
        # structured data first for the date: it carries the time, trafilatura's date only the day
        published_at=parse_date(meta.published) or hints.published_at or parse_date(found.get("date")),
    )


def _named_site(sitename: str | None, urls: list[str]) -> str | None:
    """trafilatura's site name, unless it is only its guess from the host name of the page or its canonical URL
    (a feed title, or the outlet named after the domain, is better)."""
    if not sitename:
        return None
    for url in urls:
        host = (urlsplit(url).hostname or "").removeprefix("www.")
        if sitename.casefold() in (host.casefold(), host.split(".")[0].casefold()):
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
