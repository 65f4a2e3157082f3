"""Loaders: one file format each (text and Markdown, JSON, JSONL, HTML) turned into Articles, and the helpers
every loader shares (`make_article`, bounded reads, failure reasons). `ingest.sources` picks the loader for a
file by its suffix and walks folders.

Every failure is a value (`LoadFailure`) naming the input (a JSONL record by its line) and the reason, so one bad
file or record never stops a batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from ingest.clean import clean_inline, clean_text, strip_controls
from ingest.config import DEFAULT_MAX_ARTICLE_BYTES
from ingest.models import Article, article_id_for


@dataclass(frozen=True, slots=True)
class LoadFailure:
    source: str
    reason: str


LoadResult = Article | LoadFailure

# The setting that bounds every file and record, named in the reason when one is refused.
_LIMIT_SETTING = "ingest.max_article_bytes"
_BINARY_SNIFF = 8192


def failure_reason(exc: BaseException) -> str:
    """Why a file or record could not be loaded, for any exception a loader or a library under it raises."""
    if isinstance(exc, json.JSONDecodeError):
        return f"malformed JSON: {exc.msg}"
    if isinstance(exc, RecursionError):
        return "nested too deeply to read"
    if isinstance(exc, MemoryError):
        return "too large to hold in memory"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    if isinstance(exc, ValueError):
        return str(exc)
    return f"cannot load ({type(exc).__name__}: {exc})"


class TooLargeError(ValueError):
    """A file or record over the size limit."""


def too_large(size: int, max_bytes: int, more: bool = False) -> str:
    over = f"more than {size:,}" if more else f"{size:,}"
    return f"too large: {over} bytes, limit {max_bytes:,} ({_LIMIT_SETTING})"


def read_limited(path: Path, max_bytes: int) -> bytes:
    """The bytes of a file of at most `max_bytes`; a larger one raises TooLargeError, its size checked before
    reading and the read itself bounded (a pipe, or a file growing meanwhile, has no size to check)."""
    size = path.stat().st_size
    if size > max_bytes:
        raise TooLargeError(too_large(size, max_bytes))
    with path.open("rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TooLargeError(too_large(max_bytes, max_bytes, more=True))
    return data


def read_bytes_checked(path: Path, max_bytes: int) -> bytes:
    data = read_limited(path, max_bytes)
    if b"\x00" in data[:_BINARY_SNIFF]:
        raise ValueError("binary file, not text")
    return data


def read_text_file(path: Path, max_bytes: int) -> str:
    """Text of a file, refusing binary data, undecodable bytes and files over `max_bytes` with a reason."""
    data = read_bytes_checked(path, max_bytes)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text (byte {exc.start})") from exc


def parse_date(value: Any) -> datetime | None:
    """Publication date from ISO strings, dates, or epoch seconds; naive values are taken as UTC."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    elif isinstance(value, int | float):
        parsed = datetime.fromtimestamp(value, tz=UTC)
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                parsed = parsedate_to_datetime(text)
            except (TypeError, ValueError):
                return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def make_article(
    *,
    title: str | None,
    text: str,
    url: str | None = None,
    path: str | None = None,
    source: str | None = None,
    author: str | None = None,
    published_at: Any = None,
    article_id: str | None = None,
    whole_file: bool = False,
) -> Article:
    """An Article with cleaned text; raises ValueError when there is no text to index."""
    body = clean_text(text)
    if not body:
        raise ValueError("no article text")
    clean_title = clean_inline(title or "") or body.split("\n", 1)[0][:120]
    url = strip_controls(url) if url else None
    return Article(
        id=article_id or article_id_for(url, body),
        title=clean_title,
        text=body,
        url=url or None,
        path=path,
        source=clean_inline(source) if source else None,
        author=clean_inline(author) if author else None,
        published_at=parse_date(published_at),
        whole_file=whole_file,
    )


# YAML front matter: a first line of `---`, the YAML, then `---` (or `...`) on a line of its own.
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(?:(.*?)\r?\n)?(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_FRONT_MATTER_KEYS = {
    "title": "title",
    "url": "url",
    "source": "source",
    "outlet": "source",
    "site_name": "source",
    "author": "author",
    "authors": "author",
    "date": "date",
    "published_at": "date",
    "published": "date",
}


def front_matter(raw: str) -> tuple[dict[str, str], str]:
    """The metadata in a file's YAML front matter (title, url, source, author, date) and the text after it.

    Parsed by a real YAML parser with every value read as text (no `yes` turned into True, no date objects), the
    way static site generators read it; a file whose opening block is not a YAML mapping has no front matter.
    Raises ValueError when the block is not valid YAML.
    """
    import yaml

    match = _FRONT_MATTER.match(raw)
    if match is None:
        return {}, raw
    loader = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # libyaml when installed: the same result, faster
    try:
        data = yaml.load(match.group(1) or "", Loader=loader)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 2})" if where is not None else ""
        raise ValueError(f"front matter is not valid YAML: {getattr(exc, 'problem', None) or exc}{line}") from None
    if not isinstance(data, dict):
        return {}, raw
    meta: dict[str, str] = {}
    for key, value in data.items():
        field = _FRONT_MATTER_KEYS.get(str(key).strip().lower())
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            value = ", ".join(value)  # authors: [A, B]
        if field and isinstance(value, str) and value.strip() and field not in meta:
            meta[field] = value.strip()
    return meta, raw[match.end() :]


def load_plain(path: Path, *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES) -> Iterator[LoadResult]:
    """A text or Markdown article. The title is the front matter's when it names one, and then the text is all
    of the body (less a first line that only repeats the title); otherwise the first non-empty line (a leading
    '# ' dropped) is the title and the text starts after it."""
    try:
        meta, body = front_matter(read_text_file(path, max_bytes))
    except ValueError as exc:
        yield LoadFailure(str(path), str(exc))
        return
    lines = body.strip().split("\n", 1)
    first = lines[0].lstrip("#").strip()
    rest = lines[1] if len(lines) > 1 else ""
    if meta.get("title"):
        title = meta["title"]
        text = rest if clean_inline(first).casefold() == clean_inline(title).casefold() else body
    else:
        title, text = first, rest if rest.strip() else body
    if not title and not text.strip():
        yield LoadFailure(str(path), "empty file")
        return
    try:
        yield make_article(
            title=title,
            text=text,
            url=meta.get("url"),
            path=str(path),
            source=meta.get("source"),
            author=meta.get("author"),
            published_at=meta.get("date"),
            whole_file=True,
        )
    except ValueError as exc:
        yield LoadFailure(str(path), str(exc))


def article_from_record(record: dict[str, Any], path: str | None) -> Article:
    """An Article from a JSON record with fields id, title, url, date/published_at, author, source, text/body."""
    text = record.get("text") or record.get("body")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("record has no 'text' or 'body'")
    url = record.get("url")
    record_id = record.get("id")
    return make_article(
        title=record.get("title"),
        text=text,
        url=url if isinstance(url, str) else None,
        path=path,
        source=record.get("source") or record.get("outlet") or record.get("site_name"),
        author=record.get("author") if isinstance(record.get("author"), str) else None,
        published_at=record.get("published_at") or record.get("date"),
        # A record's own id names it only when there is no URL to derive a stable id from.
        article_id=None if url else (f"r-{record_id}" if record_id not in (None, "") else None),
    )


def load_jsonl(path: Path, *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES) -> Iterator[LoadResult]:
    """One article per line, read line by line: a multi-gigabyte dump never sits in memory whole, and a line
    longer than `max_bytes` is skipped without being held.

    A line that is not UTF-8, not a JSON object or too large fails alone, with its line number; so does one
    that makes the parser fail in any other way (nested a thousand levels deep, say).
    """
    records = 0
    with path.open("rb") as stream:
        if b"\x00" in stream.peek(_BINARY_SNIFF)[:_BINARY_SNIFF]:  # peek: no seek back, so a pipe can be read too
            yield LoadFailure(str(path), "binary file, not text")
            return
        for number, raw in _bounded_lines(stream, max_bytes):
            if isinstance(raw, bytes) and not raw.strip():
                continue
            records += 1
            where = f"{path}:{number}"
            if isinstance(raw, int):
                yield LoadFailure(where, too_large(raw, max_bytes))
                continue
            try:
                # Split on newlines only: JSON strings may hold U+2028 and other characters str.splitlines()
                # breaks on.
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield LoadFailure(where, f"not UTF-8 text (byte {exc.start})")
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("a JSON line must be an object")
                yield article_from_record(record, str(path))
            except Exception as exc:  # any failure of one record is that record's alone
                yield LoadFailure(where, failure_reason(exc))
    if not records:
        yield LoadFailure(str(path), "empty file")


def _bounded_lines(stream: IO[bytes], max_bytes: int) -> Iterator[tuple[int, bytes | int]]:
    """(number, line) for each line; for a line longer than `max_bytes`, (number, its length) instead, its
    bytes read in pieces and dropped."""
    number = 0
    while line := stream.readline(max_bytes + 1):
        number += 1
        if len(line) <= max_bytes or line.endswith(b"\n"):
            yield number, line
            continue
        size = len(line)
        while (piece := stream.readline(1 << 20)) and not piece.endswith(b"\n"):
            size += len(piece)
        yield number, size + len(piece.rstrip(b"\n"))


def load_json(path: Path, *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES) -> Iterator[LoadResult]:
    """One article, or a list of them, in a JSON file read whole (a larger collection belongs in a .jsonl file,
    one article a line, which is read line by line)."""
    try:
        data = json.loads(read_text_file(path, max_bytes))
    except json.JSONDecodeError as exc:
        yield LoadFailure(str(path), f"malformed JSON: {exc.msg} (line {exc.lineno})")
        return
    except TooLargeError as exc:
        yield LoadFailure(str(path), f"{exc}; many articles go in a .jsonl file, one a line (the limit is per line)")
        return
    except Exception as exc:  # binary, nested too deeply...
        yield LoadFailure(str(path), failure_reason(exc))
        return
    records = data if isinstance(data, list) else [data]
    for index, record in enumerate(records):
        where = f"{path}[{index}]" if isinstance(data, list) else str(path)
        try:
            if not isinstance(record, dict):
                raise ValueError("expected an object")
            yield article_from_record(record, str(path))
        except Exception as exc:  # any failure of one record is that record's alone
            yield LoadFailure(where, failure_reason(exc))


def article_from_html(
    html: str | bytes, *, url: str | None = None, path: str | None = None, whole_file: bool = False
) -> Article:
    """Main text and metadata (title, author, date, canonical URL, site name) via trafilatura."""
    import trafilatura

    extracted = trafilatura.bare_extraction(
        html, url=url, with_metadata=True, include_comments=False, include_tables=False, favor_precision=True
    )
    if extracted is None:
        raise ValueError("no article text found in the HTML")
    fields = extracted.as_dict() if hasattr(extracted, "as_dict") else dict(extracted)
    text = fields.get("text") or ""
    if not text.strip():
        raise ValueError("no article text found in the HTML")
    canonical = fields.get("url") if isinstance(fields.get("url"), str) else None
    # trafilatura puts one paragraph a line, and often repeats the headline as the first one.
    paragraphs = [line for line in text.split("\n") if line.strip()]
    if paragraphs and fields.get("title") and clean_inline(paragraphs[0]) == clean_inline(fields["title"]):
        paragraphs = paragraphs[1:]
    return make_article(
        title=fields.get("title"),
        text="\n\n".join(paragraphs),
        url=canonical or url,
        path=path,
        source=fields.get("sitename"),
        author=fields.get("author"),
        published_at=fields.get("date"),
        whole_file=whole_file,
    )


def load_html(path: Path, *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES) -> Iterator[LoadResult]:
    try:
        # bytes: trafilatura honours the page's declared or detected encoding
        yield article_from_html(read_bytes_checked(path, max_bytes), path=str(path), whole_file=True)
    except ValueError as exc:
        yield LoadFailure(str(path), str(exc))
