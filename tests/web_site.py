"""A small news site on 127.0.0.1 for the web tests: article pages with navigation, related-link cards,
JSON-LD and Open Graph; RSS 0.91/1.0/2.0 and Atom feeds; a sitemap index; robots.txt; and misbehaving URLs.

Pages are kept in `site.pages` (path -> Resource), so a test can change an article and poll again.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from loopback import LoopbackServer

# A real PDF (tests/data/make_documents.py typeset it), served as application/pdf.
PRESS_RELEASE = (Path(__file__).resolve().parent / "data" / "documents" / "press-release.pdf").read_bytes()

NAV = """
<header class="site-header">
  <a class="logo" href="/">The Harbour Gazette</a>
  <nav><ul>
    <li><a href="/news/">News</a></li><li><a href="/business/">Business</a></li>
    <li><a href="/sport/">Sport</a></li><li><a href="/opinion/">Opinion</a></li>
    <li><a href="/subscribe">Subscribe for $1</a></li>
  </ul></nav>
</header>
"""

RELATED = """
<aside class="related">
  <h2>More from the Gazette</h2>
  <ul>
    <li class="card"><a href="/news/ferry-timetable.html"><img src="/img/ferry.jpg" alt="">
      <span>Ferry timetable changes announced for the summer season</span></a></li>
    <li class="card"><a href="/news/council-budget.html"><img src="/img/council.jpg" alt="">
      <span>Council budget vote delayed again amid row over parking fees</span></a></li>
    <li class="card"><a href="/sport/rowing.html"><img src="/img/rowing.jpg" alt="">
      <span>Rowing club celebrates a century on the water</span></a></li>
  </ul>
</aside>
<div class="ad" id="ad-slot-3">Advertisement <a href="https://ads.example/">Buy cheap flights now</a></div>
"""

FOOTER = """
<footer><p>© 2024 The Harbour Gazette. All rights reserved.</p>
<ul><li><a href="/about">About us</a></li><li><a href="/privacy">Privacy</a></li></ul></footer>
"""


def article_html(
    *,
    path: str,
    headline: str,
    author: str,
    published: str,
    paragraphs: list[str],
    json_ld: bool = True,
    open_graph: bool = True,
    canonical: str | None = None,
    base: str = "",
) -> str:
    """A page as a CMS would render it: head metadata, navigation, the story, related cards, footer."""
    canonical_url = canonical or f"{base}{path}"
    meta = [f'<link rel="canonical" href="{canonical_url}">']
    if open_graph:
        meta += [
            f'<meta property="og:title" content="{headline}">',
            '<meta property="og:site_name" content="The Harbour Gazette">',
            f'<meta property="og:url" content="{canonical_url}">',
            '<meta property="og:type" content="article">',
            f'<meta property="article:published_time" content="{published}">',
        ]
    if json_ld:
        meta.append(
            '<script type="application/ld+json">{"@context": "https://schema.org", "@type": "NewsArticle", '
            f'"headline": "{headline}", "datePublished": "{published}", '
            f'"author": [{{"@type": "Person", "name": "{author}"}}], '
            '"publisher": {"@type": "Organization", "name": "The Harbour Gazette"}, '
            f'"mainEntityOfPage": {{"@type": "WebPage", "@id": "{canonical_url}"}}}}</script>'
        )
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{headline} | The Harbour Gazette</title>
{chr(10).join(meta)}
</head><body>
{NAV}
<main>
<article>
<h1>{headline}</h1>
<p class="byline">By <span class="author">{author}</span> · <time datetime="{published}">{published[:10]}</time></p>
{body}
</article>
{RELATED}
</main>
{FOOTER}
</body></html>"""


STORM = [
    "A storm surge flooded the lower harbour on Tuesday night, forcing the evacuation of forty homes along "
    "Quay Street and closing the ferry terminal until further notice.",
    "Harbourmaster Ines Okafor said the water rose 1.8 metres above the spring-tide mark within two hours, "
    "the highest level recorded since the sea wall was rebuilt in 1998.",
    "Emergency crews used sandbags and two portable pumps to protect the lifeboat station, which stayed "
    "operational throughout the night and rescued three people from a stranded fishing boat.",
    "The council said damage assessments would begin on Thursday and that residents could claim temporary "
    "accommodation costs from its emergency fund.",
]
BRIDGE = [
    "Engineers have found corrosion in two of the four main cables of the Old Mill footbridge, and the "
    "crossing will stay closed to pedestrians for at least six months while repairs are designed.",
    "The inspection, carried out with drones and rope-access teams, showed that water had entered the cable "
    "anchorages through cracked seals installed during a 2009 refurbishment.",
    "Cyclists and walkers are being diverted over the Station Road bridge, adding about twelve minutes to a "
    "typical commute between the east bank and the town centre.",
]
MUSEUM = [
    "The maritime museum will reopen its restored figurehead gallery in March after a two-year conservation "
    "project funded by a national heritage grant of 2.4 million pounds.",
    "Curator Tomas Lindqvist said the team had removed eleven layers of paint from the oldest figurehead, "
    "revealing the original colours chosen by its carver in 1842.",
    "Entry to the gallery will be free for residents during the first month, and the museum plans evening "
    "openings with talks by the conservators who worked on the collection.",
]


def generated_paragraphs(n: int) -> list[str]:
    return [
        f"Item {n}: the harbour authority published its weekly shipping report number {n}, listing vessel "
        f"arrivals, berth allocations and the tonnage handled at the container quay during week {n}.",
        f"Report {n} notes that dredging of the northern channel continued as planned and that pilots "
        "boarded every vessel above forty metres, in line with the port's safety rules.",
    ]


@dataclass
class Resource:
    body: bytes | Callable[[], Iterator[bytes]]
    content_type: str = "text/html; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    validators: bool = True  # send ETag and Last-Modified, answer conditional requests with 304
    etag_header: bool = True  # False: only Last-Modified, as many older servers do
    modified: datetime = field(default_factory=lambda: datetime(2024, 3, 5, 9, 0, tzinfo=UTC))

    @property
    def etag(self) -> str:
        data = self.body if isinstance(self.body, bytes) else b""
        return '"' + hashlib.sha256(data).hexdigest()[:16] + '"'


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    status: int
    at: float  # time.monotonic() when the request arrived


class Site:
    """The site's content and a log of every request it answered."""

    def __init__(self) -> None:
        self.base = ""
        self.pages: dict[str, Resource] = {}
        self.hits: list[Hit] = []
        self.bytes_sent: dict[str, int] = {}
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.on_request: Callable[[str], None] | None = None

    def url(self, path: str) -> str:
        return self.base + path

    def hits_for(self, path: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path == path]

    def count(self, path: str) -> int:
        return len(self.hits_for(path))

    def sent(self, path: str, wait: float = 5.0) -> int:
        """Bytes a streamed response got out before the client hung up (waits for the server to notice)."""
        deadline = time.monotonic() + wait
        while path not in self.bytes_sent and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.bytes_sent[path]

    def set_article(self, path: str, headline: str, paragraphs: list[str], **kwargs: Any) -> None:
        html = article_html(path=path, headline=headline, paragraphs=paragraphs, base=self.base, **kwargs)
        self.pages[path] = Resource(html.encode())

    def build(self) -> None:
        """The standard content; `base` must be set first (absolute links and canonical URLs)."""
        storm: dict[str, Any] = {"author": "Maria Keane", "published": "2024-03-05T08:30:00+00:00"}
        self.set_article("/news/storm-surge.html", "Storm surge floods lower harbour", STORM, **storm)
        self.set_article(
            "/news/bridge-closed.html",
            "Old Mill footbridge closed after corrosion found",
            BRIDGE,
            author="Dev Patel",
            published="2024-03-06T14:10:00+00:00",
        )
        # Open Graph only: no JSON-LD
        self.set_article(
            "/culture/museum.html",
            "Figurehead gallery to reopen at maritime museum",
            MUSEUM,
            author="Sofia Brandt",
            published="2024-03-07T11:00:00+00:00",
            json_ld=False,
        )
        # the same story at a second address (an AMP copy) whose canonical points at the first
        amp = article_html(
            path="/amp/storm-surge",
            headline="Storm surge floods lower harbour",
            paragraphs=STORM,
            canonical=self.url("/news/storm-surge.html"),
            **storm,
        )
        self.pages["/amp/storm-surge"] = Resource(amp.encode())
        self.pages["/robots.txt"] = Resource(
            b"User-agent: *\nDisallow: /private/\n\nUser-agent: BadBot\nDisallow: /\n",
            "text/plain",
        )
        self.set_article(
            "/private/memo.html",
            "Internal memo",
            STORM,
            author="Nobody",
            published="2024-03-01T00:00:00+00:00",
        )
        self.pages["/notes/tide-tables.txt"] = Resource(
            b"Tide tables for April published\n\nThe harbour office has published the tide tables for April. "
            b"High water on the first of the month is at 06:12 and 18:40, with a spring tide of 5.1 metres "
            b"expected on the ninth.\n",
            "text/plain; charset=utf-8",
        )
        self.pages["/empty.html"] = Resource(
            f"<!DOCTYPE html><html><head><title>Section</title></head><body>{NAV}{FOOTER}</body></html>".encode()
        )
        self.pages["/report.html"] = Resource(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\n", "text/html")
        self.pages["/docs/annual-report.pdf"] = Resource(b"%PDF-1.7\n", "application/pdf")
        self.pages["/docs/press-release.pdf"] = Resource(PRESS_RELEASE, "application/pdf")
        self.pages["/img/ferry.jpg"] = Resource(b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg")
        self.pages["/missing"] = Resource(b"<h1>Not found</h1>", status=404)
        self.pages["/gone"] = Resource(b"<h1>Gone</h1>", status=410)
        self.pages["/moved"] = Resource(b"", status=301, headers={"Location": "/news/storm-surge.html"})
        self.pages["/loop/a"] = Resource(b"", status=302, headers={"Location": "/loop/b"})
        self.pages["/loop/b"] = Resource(b"", status=302, headers={"Location": "/loop/a"})
        self.pages["/feeds/not-xml"] = Resource(b"this is {not} a feed, just text", "application/rss+xml")
        self.pages["/feeds/html-page"] = self.pages["/empty.html"]
        self.pages["/feeds/rss2.xml"] = Resource(self.rss2().encode(), "application/rss+xml")
        self.pages["/feeds/atom.xml"] = Resource(self.atom().encode(), "application/atom+xml")
        self.pages["/feeds/rss1.rdf"] = Resource(self.rss1().encode(), "application/rdf+xml")
        self.pages["/feeds/rss091.xml"] = Resource(self.rss091().encode(), "text/xml")
        self.pages["/feeds/with-broken-entry.xml"] = Resource(self.broken_entry_feed().encode(), "application/rss+xml")
        self.pages["/sitemap.xml"] = Resource(self.sitemap_index().encode(), "application/xml")
        self.pages["/sitemap-2024.xml"] = Resource(self.sitemap_2024().encode(), "application/xml")
        self.pages["/sitemap-2019.xml"] = Resource(self.sitemap_2019().encode(), "application/xml")

    # -- feeds -------------------------------------------------------------------------------------------

    def rss2(self) -> str:
        """RSS 2.0 carrying only summaries, with tracking parameters on the links."""
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel><title>The Harbour Gazette</title><link>{self.url("/")}</link><description>Local news</description>
<item><title>Storm surge floods lower harbour</title>
  <link>{self.url("/news/storm-surge.html?utm_source=rss&amp;utm_medium=feed")}</link>
  <guid isPermaLink="false">gazette-1001</guid>
  <pubDate>Tue, 05 Mar 2024 08:30:00 GMT</pubDate><dc:creator>Maria Keane</dc:creator>
  <description>Forty homes evacuated on Quay Street.</description></item>
<item><title>Old Mill footbridge closed after corrosion found</title>
  <link>{self.url("/news/bridge-closed.html")}</link>
  <guid isPermaLink="false">gazette-1002</guid>
  <pubDate>Wed, 06 Mar 2024 14:10:00 GMT</pubDate>
  <description>&lt;p&gt;Engineers found corrosion in two cables.&lt;/p&gt;</description></item>
</channel></rss>"""

    def atom(self) -> str:
        """Atom with the full text in each entry (no page fetch needed)."""
        entries = []
        for n in (1, 2):
            content = "".join(f"&lt;p&gt;{p}&lt;/p&gt;" for p in generated_paragraphs(n) + MUSEUM)
            entries.append(f"""<entry><title>Weekly shipping report {n}</title>
  <link rel="alternate" href="{self.url(f"/reports/{n}.html")}"/>
  <id>tag:gazette,2024:report-{n}</id>
  <published>2024-03-0{n}T07:00:00Z</published><updated>2024-03-0{n}T07:30:00Z</updated>
  <author><name>Port Desk</name></author>
  <summary>Shipping report {n}.</summary>
  <content type="html">{content}</content></entry>""")
        return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Gazette Port Reports</title>
<id>tag:gazette,2024:reports</id><updated>2024-03-02T07:30:00Z</updated>
{"".join(entries)}
</feed>"""

    def rss1(self) -> str:
        return f"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns="http://purl.org/rss/1.0/"
  xmlns:dc="http://purl.org/dc/elements/1.1/">
<channel rdf:about="{self.url("/feeds/rss1.rdf")}"><title>Gazette Culture</title>
  <link>{self.url("/culture/")}</link><description>Culture</description>
  <items><rdf:Seq><rdf:li resource="{self.url("/culture/museum.html")}"/></rdf:Seq></items></channel>
<item rdf:about="{self.url("/culture/museum.html")}"><title>Figurehead gallery to reopen</title>
  <link>{self.url("/culture/museum.html")}</link><dc:date>2024-03-07T11:00:00Z</dc:date>
  <description>The gallery reopens in March.</description></item>
</rdf:RDF>"""

    def rss091(self) -> str:
        return f"""<?xml version="1.0"?>
<rss version="0.91"><channel><title>Gazette Classic</title><link>{self.url("/")}</link>
<description>Old style</description><language>en</language>
<item><title>Storm surge floods lower harbour</title><link>{self.url("/amp/storm-surge")}</link>
<description>Forty homes evacuated.</description></item>
</channel></rss>"""

    def broken_entry_feed(self) -> str:
        """One good entry, one pointing at a 404, one at a page with no article text."""
        items = [
            ("Bridge", "/news/bridge-closed.html"),
            ("Missing", "/missing"),
            ("Empty", "/empty.html"),
            ("Flaky", "/flaky"),
        ]
        body = "".join(f"<item><title>{t}</title><link>{self.url(p)}</link><guid>{p}</guid></item>" for t, p in items)
        return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Mixed</title>{body}</channel></rss>'

    def big_feed(self, entries: int) -> bytes:
        """A feed with `entries` summary-only entries, each linking to a generated page."""
        start = datetime(2024, 1, 1, tzinfo=UTC)
        parts = [
            '<?xml version="1.0"?><rss version="2.0"><channel><title>Firehose</title>'
            f"<link>{self.url('/')}</link><description>Everything</description>"
        ]
        for n in range(entries):
            when = format_datetime(start + timedelta(minutes=n), usegmt=True)
            parts.append(
                f"<item><title>Report {n}</title><link>{self.url(f'/gen/{n}.html')}</link>"
                f"<guid>gen-{n}</guid><pubDate>{when}</pubDate><description>Report {n}.</description></item>"
            )
        parts.append("</channel></rss>")
        return "".join(parts).encode()

    # -- sitemaps ----------------------------------------------------------------------------------------

    def sitemap_index(self) -> str:
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>{self.url("/sitemap-2024.xml")}</loc><lastmod>2024-03-07</lastmod></sitemap>
  <sitemap><loc>{self.url("/sitemap-2019.xml")}</loc><lastmod>2019-12-31</lastmod></sitemap>
</sitemapindex>"""

    def sitemap_2024(self) -> str:
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{self.url("/news/storm-surge.html")}</loc><lastmod>2024-03-05T08:30:00+00:00</lastmod></url>
  <url><loc>{self.url("/news/bridge-closed.html")}</loc><lastmod>2024-03-06</lastmod></url>
  <url><loc>{self.url("/culture/museum.html")}</loc><lastmod>2023-11-02</lastmod></url>
  <url><loc>{self.url("/about")}</loc></url>
</urlset>"""

    def sitemap_2019(self) -> str:
        return f"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>{self.url("/archive/2019/old.html")}</loc><lastmod>2019-05-01</lastmod></url>
</urlset>"""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    site: Site
    hit: Hit

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        site = self.site
        path = self.path
        bare = path.split("?", 1)[0]
        # logged on arrival, its status set before the response goes out: a test never misses a hit
        self.hit = Hit(bare, {k.lower(): v for k, v in self.headers.items()}, 0, time.monotonic())
        with site.lock:
            site.hits.append(self.hit)
            site.in_flight += 1
            site.max_in_flight = max(site.max_in_flight, site.in_flight)
        if site.on_request:
            site.on_request(bare)
        try:
            self._answer(site, path, bare)
        finally:
            with site.lock:
                site.in_flight -= 1

    def _answer(self, site: Site, path: str, bare: str) -> int:
        special = _SPECIAL.get(bare)
        if special is not None:
            return special(self, site)
        resource = site.pages.get(bare) or _generated(site, path, bare)
        if resource is None:
            return self._send(404, b"<h1>Not found</h1>", "text/html")
        headers = dict(resource.headers)
        if resource.validators and resource.status == 200 and isinstance(resource.body, bytes):
            headers["Last-Modified"] = format_datetime(resource.modified, usegmt=True)
            if resource.etag_header:
                headers["ETag"] = resource.etag
            if (resource.etag_header and self.headers.get("If-None-Match") == resource.etag) or (
                not resource.etag_header and self.headers.get("If-Modified-Since") == headers["Last-Modified"]
            ):
                return self._send(304, b"", None, headers)
        body = resource.body if isinstance(resource.body, bytes) else b"".join(resource.body())
        return self._send(resource.status, body, resource.content_type, headers)

    def _send(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> int:
        self.hit.status = status
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)) if status != 304 else "0")
        self.end_headers()
        if status != 304:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeouts)
                self.wfile.write(body)
        return status

    def _stream(self, status: int, chunks: Iterator[bytes], content_type: str, length: int | None = None) -> int:
        """A body sent piece by piece (no Content-Length unless given): the client must stop reading itself."""
        self.hit.status = status
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        sent = 0
        try:
            for chunk in chunks:
                self.wfile.write(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        with self.site.lock:
            self.site.bytes_sent[self.path] = sent
        return status


def _generated(site: Site, path: str, bare: str) -> Resource | None:
    """/gen/N.html: a shipping report page, made on request (a 10,000-entry feed links to them all)."""
    if not bare.startswith("/gen/"):
        return None
    n = int(bare.removeprefix("/gen/").removesuffix(".html"))
    if "?sleep=" in path:
        time.sleep(float(path.split("?sleep=", 1)[1]))
    html = article_html(
        path=bare,
        headline=f"Weekly shipping report {n}",
        author="Port Desk",
        published="2024-01-01T00:00:00+00:00",
        paragraphs=generated_paragraphs(n) + BRIDGE,
        base=site.base,
    )
    return Resource(html.encode())


def _huge(handler: _Handler, site: Site, *, declared: bool) -> int:
    size = 50 * 1024 * 1024
    block = b"<p>" + b"lorem ipsum dolor sit amet " * 2400 + b"</p>\n"

    def chunks() -> Iterator[bytes]:
        yield b"<!DOCTYPE html><html><body>"
        sent = 0
        while sent < size:
            yield block
            sent += len(block)

    return handler._stream(200, chunks(), "text/html", size if declared else None)


def _slow(handler: _Handler, site: Site) -> int:
    time.sleep(1.5)
    return handler._send(200, b"<html><body><p>late</p></body></html>", "text/html")


def _trickle(handler: _Handler, site: Site) -> int:
    def chunks() -> Iterator[bytes]:
        yield b"<!DOCTYPE html><html><body><p>"
        for _ in range(40):
            time.sleep(0.1)
            yield b"slowly "

    return handler._stream(200, chunks(), "text/html")


def _attempt(site: Site, key: str) -> int:
    with site.lock:
        site.attempts[key] = site.attempts.get(key, 0) + 1
        return site.attempts[key]


def _busy(handler: _Handler, site: Site) -> int:
    """429 with Retry-After: 1 on the first request, then the article."""
    if _attempt(site, "busy") == 1:
        return handler._send(429, b"slow down", "text/plain", {"Retry-After": "1"})
    return handler._send(200, site.pages["/news/bridge-closed.html"].body, "text/html")  # type: ignore[arg-type]


def _always_busy(handler: _Handler, site: Site) -> int:
    return handler._send(429, b"come back tomorrow", "text/plain", {"Retry-After": "86400"})


def _flaky(handler: _Handler, site: Site) -> int:
    """503 on the first request, then the article."""
    if _attempt(site, "flaky") == 1:
        return handler._send(503, b"overloaded", "text/plain")
    return handler._send(200, site.pages["/culture/museum.html"].body, "text/html")  # type: ignore[arg-type]


def _broken(handler: _Handler, site: Site) -> int:
    return handler._send(500, b"oops", "text/plain")


_SPECIAL: dict[str, Callable[[_Handler, Site], int]] = {
    "/huge": lambda h, s: _huge(h, s, declared=False),
    "/huge-declared": lambda h, s: _huge(h, s, declared=True),
    "/slow": _slow,
    "/trickle": _trickle,
    "/busy": _busy,
    "/always-busy": _always_busy,
    "/flaky": _flaky,
    "/broken": _broken,
}


class SiteServer:
    """The site served on 127.0.0.1:<free port> from a background thread."""

    def __init__(self) -> None:
        self.site = Site()
        handler = type("Handler", (_Handler,), {"site": self.site})
        self.server = LoopbackServer(handler)
        self.site.base = self.server.base_url
        self.site.build()
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> Site:
        self.thread.start()
        return self.site

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
