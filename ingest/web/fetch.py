"""Fetching pages, feeds and sitemaps politely: a named User-Agent, timeouts, bounded retries, robots.txt,
per-host limits, a size cap and conditional requests.

Every outcome is a value: a `Page` (200, or 304 when the validators still match) or a `FetchFailure` naming
the URL and the reason, so one bad URL never stops a batch.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import httpx

from ingest.config import WebSettings
from ingest.web.robots import RobotsRules, parse_robots

Kind = Literal["html", "xml", "text", "pdf"]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# robots.txt files larger than this are cut (RFC 9309 asks parsers to read at least 500 KiB).
ROBOTS_MAX_BYTES = 512_000

_KIND_BY_TYPE: dict[str, Kind] = {
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/rss+xml": "xml",
    "application/atom+xml": "xml",
    "application/rdf+xml": "xml",
    "application/xml": "xml",
    "text/xml": "xml",
    "text/plain": "text",
    "application/pdf": "pdf",
}
_PDF_MAGIC = b"%PDF-"
# Magic numbers of what is sometimes served under an HTML or XML content type.
_MAGIC = (
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (or an office document)"),
)
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class Page:
    """A response worth reading: status 200 with a supported body, or 304 (body empty, nothing changed)."""

    url: str
    final_url: str
    status: int
    kind: Kind | None
    content_type: str
    body: bytes
    etag: str | None = None
    last_modified: str | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304

    @property
    def charset(self) -> str | None:
        for param in self.content_type.split(";")[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "charset" and value.strip():
                return value.strip().strip("\"'")
        return None

    def text(self) -> str:
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # an unknown charset name
            return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class FetchFailure:
    """Why a URL gave nothing; `permanent` means retrying on the next poll would not help."""

    url: str
    reason: str
    permanent: bool = False


FetchResult = Page | FetchFailure


class _Failed(Exception):
    def __init__(self, reason: str, *, permanent: bool = False, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.status = status


@dataclass(slots=True)
class _Reply:
    status: int
    headers: httpx.Headers
    body: bytes = b""


class _Host:
    def __init__(self, concurrency: int, delay: float) -> None:
        self.semaphore = threading.BoundedSemaphore(concurrency)
        self.delay = delay
        self.next_at = 0.0


class HostGate:
    """Per-host concurrency limit and politeness delay between the starts of requests to one host."""

    def __init__(self, concurrency: int, delay: float) -> None:
        self._concurrency = concurrency
        self._delay = delay
        self._lock = threading.Lock()
        self._hosts: dict[str, _Host] = {}

    def _host(self, host: str) -> _Host:
        with self._lock:
            return self._hosts.setdefault(host, _Host(self._concurrency, self._delay))

    @contextmanager
    def slot(self, host: str) -> Iterator[None]:
        state = self._host(host)
        with state.semaphore:
            with self._lock:
                now = time.monotonic()
                start = max(now, state.next_at)
                state.next_at = start + state.delay
            if start > now:
                time.sleep(start - now)
            yield

    def defer(self, host: str, seconds: float) -> None:
        """Hold back every request to `host` for `seconds` (a 429's Retry-After, a backoff)."""
        state = self._host(host)
        with self._lock:
            state.next_at = max(state.next_at, time.monotonic() + seconds)

    def slow_down(self, host: str, delay: float) -> None:
        state = self._host(host)
        with self._lock:
            state.delay = max(state.delay, delay)


class Fetcher:
    """One polite HTTP client; thread-safe, so pages can be fetched from a pool (see `map_bounded`)."""

    def __init__(self, settings: WebSettings) -> None:
        self.settings = settings
        self._client = httpx.Client(
            headers={"User-Agent": settings.user_agent},
            timeout=httpx.Timeout(settings.timeout),
            # followed by hand: each hop is checked against robots.txt, and loops are named
            follow_redirects=False,
            limits=httpx.Limits(max_connections=settings.concurrency + 2),
        )
        self._gate = HostGate(settings.per_host_concurrency, settings.delay)
        self._robots: dict[str, RobotsRules | bool] = {}
        self._robots_locks: dict[str, threading.Lock] = {}
        self._robots_guard = threading.Lock()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        """GET `url`, following redirects; with validators, an unchanged resource comes back as a 304 Page."""
        try:
            return self._fetch(url, etag, last_modified)
        except _Failed as exc:
            return FetchFailure(url, exc.reason, exc.permanent)

    def _fetch(self, url: str, etag: str | None, last_modified: str | None) -> Page:
        headers = {
            "Accept": "text/html,application/xhtml+xml,application/rss+xml,application/atom+xml,"
            "application/xml;q=0.9,text/plain;q=0.8,application/pdf;q=0.8,*/*;q=0.1"
        }
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        chain = [url]
        current = url
        while True:
            _check_scheme(current)
            self._check_robots(current)
            reply = self._send(current, headers, self.settings.max_bytes)
            if reply.status not in REDIRECT_STATUSES:
                break
            location = reply.headers.get("location")
            if not location:
                raise _Failed(f"HTTP {reply.status} redirect without a Location header", permanent=True)
            target = urljoin(current, location.strip())
            if target in chain:
                raise _Failed("redirect loop: " + " -> ".join([*chain, target]), permanent=True)
            chain.append(target)
            if len(chain) - 1 > self.settings.max_redirects:
                raise _Failed(f"more than {self.settings.max_redirects} redirects (last: {target})", permanent=True)
            current = target
        if reply.status == 304:
            return Page(
                url=url,
                final_url=current,
                status=304,
                kind=None,
                content_type="",
                body=b"",
                etag=reply.headers.get("etag") or etag,
                last_modified=reply.headers.get("last-modified") or last_modified,
            )
        content_type = reply.headers.get("content-type", "")
        body = _gunzip(reply.body, self.settings.max_bytes) if reply.body[:2] == _GZIP_MAGIC else reply.body
        return Page(
            url=url,
            final_url=current,
            status=reply.status,
            kind=_classify(content_type, body),
            content_type=content_type,
            body=body,
            etag=reply.headers.get("etag"),
            last_modified=reply.headers.get("last-modified"),
        )

    def _send(self, url: str, headers: dict[str, str], max_bytes: int, *, truncate: bool = False) -> _Reply:
        """One hop with bounded retries on timeouts, dropped connections, 429 and 5xx."""
        host = urlsplit(url).netloc.lower()
        attempt = 0
        while True:
            failure: _Failed | None = None
            reply: _Reply | None = None
            with self._gate.slot(host):
                try:
                    reply = self._read(url, headers, max_bytes, truncate=truncate)
                except httpx.TimeoutException as exc:
                    failure = _Failed(_timeout_reason(exc, self.settings.timeout))
                except httpx.TransportError as exc:
                    failure = _connection_failure(exc)
            if reply is not None and reply.status not in RETRY_STATUSES:
                return reply
            if reply is not None:
                phrase = httpx.codes.get_reason_phrase(reply.status)
                failure = _Failed(f"HTTP {reply.status} {phrase}", status=reply.status)
            assert failure is not None
            if failure.permanent or attempt >= self.settings.retries:
                if attempt:
                    failure.reason += f" (after {attempt + 1} attempts)"
                raise failure
            wait = self.settings.backoff * 2**attempt * random.uniform(1.0, 1.25)
            retry_after = _retry_after(reply.headers) if reply is not None else None
            if retry_after is not None:
                if retry_after > self.settings.max_retry_after:
                    raise _Failed(
                        f"{failure.reason}: Retry-After {retry_after:.0f} s is longer than the "
                        f"{self.settings.max_retry_after:.0f} s max_retry_after; try again later"
                    )
                wait = max(wait, retry_after)
            self._gate.defer(host, wait)
            attempt += 1

    def _read(self, url: str, headers: dict[str, str], max_bytes: int, *, truncate: bool = False) -> _Reply:
        """Stream one response, stopping as soon as it is unsupported, too large or too slow.

        With `truncate`, a body over `max_bytes` is cut there instead of failing (robots.txt).
        """
        deadline = time.monotonic() + self.settings.max_seconds
        with self._client.stream("GET", url, headers=headers) as response:
            status = response.status_code
            if status in REDIRECT_STATUSES or status in RETRY_STATUSES or status == 304:
                return _Reply(status, response.headers)
            if status >= 400:
                phrase = response.reason_phrase or httpx.codes.get_reason_phrase(status)
                raise _Failed(f"HTTP {status} {phrase}", permanent=status < 500, status=status)
            unsupported = _unsupported_type(response.headers.get("content-type", ""))
            if unsupported:
                raise _Failed(unsupported, permanent=True)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes and not truncate:
                raise _Failed(f"too large: {int(declared):,} bytes declared, limit {max_bytes:,}", permanent=True)
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    if truncate:
                        return _Reply(status, response.headers, bytes(body[:max_bytes]))
                    raise _Failed(f"too large: more than {max_bytes:,} bytes, stopped reading", permanent=True)
                if time.monotonic() > deadline:
                    raise _Failed(f"too slow: body not complete after {self.settings.max_seconds:g} s")
            return _Reply(status, response.headers, bytes(body))

    def _check_robots(self, url: str) -> None:
        if not self.settings.respect_robots:
            return
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._robots_guard:
            lock = self._robots_locks.setdefault(origin, threading.Lock())
        with lock:  # one robots.txt request per origin, however many threads ask
            if origin not in self._robots:
                self._robots[origin] = self._load_robots(origin)
        rules = self._robots[origin]
        if rules is False or (isinstance(rules, RobotsRules) and not rules.allows(url, self.settings.user_agent)):
            why = "robots.txt unreadable (server error)" if rules is False else "disallowed by robots.txt"
            # a disallow lasts (a feed entry behind it is not retried until it changes); an outage does not
            raise _Failed(
                f"{why} for this user agent (set web.respect_robots=false for your own sites)",
                permanent=rules is not False,
            )

    def _load_robots(self, origin: str) -> RobotsRules | bool:
        """RFC 9309: a missing robots.txt (4xx) allows everything; a server error disallows everything."""
        url = f"{origin}/robots.txt"
        for _ in range(5):
            try:
                reply = self._send(url, {}, ROBOTS_MAX_BYTES, truncate=True)
            except _Failed as exc:
                if exc.status is not None:
                    # 429 counts as unreachable, like a server error (as the big crawlers treat it)
                    return exc.status < 500 and exc.status != 429
                raise _Failed(f"{exc.reason} (while reading {url})", permanent=exc.permanent) from None
            if reply.status in REDIRECT_STATUSES and reply.headers.get("location"):
                url = urljoin(url, reply.headers["location"])
                continue
            break
        else:
            return True
        rules = parse_robots(reply.body)
        crawl_delay = rules.crawl_delay(self.settings.user_agent)
        if crawl_delay:
            self._gate.slow_down(urlsplit(origin).netloc.lower(), min(crawl_delay, self.settings.max_crawl_delay))
        return rules


def _classify(content_type: str, body: bytes) -> Kind:
    """What a body is, by its content type checked against its first bytes; raises on unsupported bodies."""
    head = body[:512]
    if head.startswith(_PDF_MAGIC):  # a PDF, whatever it was served as
        return "pdf"
    for magic, name in _MAGIC:
        if head.startswith(magic):
            raise _Failed(f"unsupported content: the response is {name}", permanent=True)
    mime = content_type.split(";")[0].strip().lower()
    kind = _KIND_BY_TYPE.get(mime)
    if kind is None and (mime.endswith("+xml") or mime.endswith("/xml")):
        kind = "xml"
    sniffed = _sniff_markup(head)
    if kind in (None, "text") and sniffed:
        return sniffed
    if kind == "html" and sniffed == "xml":  # feeds are often served as text/html
        return "xml"
    if kind is None:
        raise _Failed(f"unsupported content type {mime or '(none)'}", permanent=True)
    return kind


def _sniff_markup(head: bytes) -> Kind | None:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if start.startswith((b"<!doctype html", b"<html")):
        return "html"
    if start.startswith(b"<?xml") or any(
        tag in start for tag in (b"<rss", b"<feed", b"<rdf:rdf", b"<urlset", b"<sitemapindex")
    ):
        return "html" if b"<html" in start else "xml"
    return None


def _unsupported_type(content_type: str) -> str | None:
    mime = content_type.split(";")[0].strip().lower()
    if mime.split("/")[0] in ("image", "audio", "video", "font"):
        return f"unsupported content type {mime}"
    return None


def _gunzip(body: bytes, max_bytes: int) -> bytes:
    """A gzipped file (e.g. sitemap.xml.gz), decompressed under the same size cap."""
    inflater = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
    try:
        data = inflater.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise _Failed(f"corrupt gzip data: {exc}", permanent=True) from None
    if len(data) > max_bytes or inflater.unconsumed_tail:
        raise _Failed(f"too large: more than {max_bytes:,} bytes once decompressed", permanent=True)
    return data


def _check_scheme(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise _Failed("not an http(s) URL", permanent=True)


def _retry_after(headers: httpx.Headers) -> float | None:
    value = headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _timeout_reason(exc: httpx.TimeoutException, seconds: float) -> str:
    if isinstance(exc, httpx.ConnectTimeout):
        return f"timed out connecting ({seconds:g} s)"
    if isinstance(exc, httpx.PoolTimeout):
        return f"timed out waiting for a connection ({seconds:g} s)"
    return f"timed out: no data for {seconds:g} s"


def _connection_failure(exc: httpx.TransportError) -> _Failed:
    text = str(exc) or type(exc).__name__
    lowered = text.lower()
    if "certificate" in lowered or "ssl" in lowered or "tls" in lowered:
        return _Failed(f"TLS error: {text}", permanent=True)
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "getaddrinfo" in lowered:
        return _Failed(f"DNS lookup failed: {text}")
    if isinstance(exc, httpx.UnsupportedProtocol):
        return _Failed(f"unsupported protocol: {text}", permanent=True)
    return _Failed(f"cannot connect: {text}" if isinstance(exc, httpx.ConnectError) else f"connection error: {text}")


T = TypeVar("T")
R = TypeVar("R")


def map_bounded(
    work: Callable[[T], R],
    items: Iterable[T],
    *,
    workers: int,
    should_stop: Callable[[], bool] = lambda: False,
) -> Iterator[R]:
    """`work` over `items` on a thread pool, results in input order, at most 2*workers items in flight.

    Items are drawn lazily, so a feed with 10,000 entries never has more than a window of pages in memory;
    `should_stop` is checked before each new item is started.
    """
    window: deque[Future[R]] = deque()
    source = iter(items)
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="byline-fetch")
    try:
        exhausted = False
        while True:
            while not exhausted and len(window) < 2 * workers and not should_stop():
                try:
                    item = next(source)
                except StopIteration:
                    exhausted = True
                    break
                window.append(executor.submit(work, item))
            if not window:
                return
            yield window.popleft().result()
    finally:
        for future in window:
            future.cancel()
        executor.shutdown(wait=True, cancel_futures=True)
