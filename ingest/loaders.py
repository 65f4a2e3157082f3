"""Loaders: turn sources (files, folders, and, through the handlers a caller passes, URLs and feeds) into Articles.

Every failure is a value (`LoadFailure`) naming the input and the reason, so one bad file never stops a batch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ingest.clean import clean_inline, clean_text
from ingest.models import Article, article_id_for


@dataclass(frozen=True, slots=True)
class LoadFailure:
    source: str
    reason: str


LoadResult = Article | LoadFailure
FileLoader = Callable[[Path], Iterator[LoadResult]]
# A source handler claims sources it understands (e.g. http URLs) before they are treated as paths.
SourceHandler = Callable[[str], Iterator[LoadResult] | None]


def supported_suffixes() -> list[str]:
    return sorted(FILE_LOADERS)


def load_sources(sources: Iterable[str], handlers: Sequence[SourceHandler] = ()) -> Iterator[LoadResult]:
    """Articles (or failures) from each source, folders walked recursively in a stable order; each source is
    offered to `handlers` first, in order, and read as a path when none claims it."""
    for source in sources:
        for handler in handlers:
            handled = handler(source)
            if handled is not None:
                yield from handled
                break
        else:
            yield from _load_path(Path(source).expanduser())


def _load_path(path: Path) -> Iterator[LoadResult]:
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and not _hidden(p.relative_to(path)))
        for file in files:
            if file.suffix.lower() in FILE_LOADERS:
                yield from _load_file(file)
        return
    if not path.exists():
        yield LoadFailure(str(path), "no such file or directory")
        return
    if path.suffix.lower() not in FILE_LOADERS:
        known = ", ".join(supported_suffixes())
        yield LoadFailure(str(path), f"unsupported file type {path.suffix or '(none)'!r} (known: {known})")
        return
    yield from _load_file(path)


# A folder's own documentation is not news: skipped when walking folders (still loadable by name).
_FOLDER_DOCS = frozenset({"readme", "license", "licence", "changelog", "notice", "contributing"})


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts) or relative.stem.lower() in _FOLDER_DOCS


def _load_file(path: Path) -> Iterator[LoadResult]:
    try:
        yield from FILE_LOADERS[path.suffix.lower()](path)
    except PermissionError:
        yield LoadFailure(str(path), "permission denied")
    except OSError as exc:
        yield LoadFailure(str(path), f"cannot read: {exc.strerror or exc}")


def read_bytes_checked(path: Path) -> bytes:
    data = path.read_bytes()
    if b"\x00" in data[:8192]:
        raise ValueError("binary file, not text")
    return data


def read_text_file(path: Path) -> str:
    """Text of a file, refusing binary data and undecodable bytes with a reason."""
    data = read_bytes_checked(path)
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


_FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def load_plain(path: Path) -> Iterator[LoadResult]:
    """First non-empty line is the title (a leading '# ' is dropped); optional `key: value` front matter."""
    try:
        raw = read_text_file(path)
    except ValueError as exc:
        yield LoadFailure(str(path), str(exc))
        return
    meta: dict[str, str] = {}
    if match := _FRONT_MATTER.match(raw):
        for line in match.group(1).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                meta[key.strip().lower()] = value.strip().strip("\"'")
        raw = raw[match.end() :]
    lines = raw.strip().split("\n", 1)
    title = lines[0].lstrip("#").strip() if lines[0].strip() else None
    body = lines[1] if len(lines) > 1 else ""
    if not title and not body.strip():
        yield LoadFailure(str(path), "empty file")
        return
    try:
        yield make_article(
            title=meta.get("title") or title,
            text=body if body.strip() else raw,
            url=meta.get("url"),
            path=str(path),
            source=meta.get("source"),
            author=meta.get("author"),
            published_at=meta.get("date") or meta.get("published_at"),
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


def load_jsonl(path: Path) -> Iterator[LoadResult]:
    """One article per line, read line by line: a multi-gigabyte dump never sits in memory whole.

    A line that is not UTF-8 or not a JSON object fails alone, with its line number.
    """
    records = 0
    with path.open("rb") as lines:
        if b"\x00" in lines.peek(8192)[:8192]:  # peek: no seek back, so a pipe can be read too
            yield LoadFailure(str(path), "binary file, not text")
            return
        # Split on newlines only: JSON strings may hold U+2028 and other characters str.splitlines() breaks on.
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            records += 1
            where = f"{path}:{number}"
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                yield LoadFailure(where, f"not UTF-8 text (byte {exc.start})")
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("a JSON line must be an object")
                yield article_from_record(record, str(path))
            except json.JSONDecodeError as exc:
                yield LoadFailure(where, f"malformed JSON: {exc.msg}")
            except ValueError as exc:
                yield LoadFailure(where, str(exc))
    if not records:
        yield LoadFailure(str(path), "empty file")


def load_json(path: Path) -> Iterator[LoadResult]:
    try:
        data = json.loads(read_text_file(path))
    except json.JSONDecodeError as exc:
        yield LoadFailure(str(path), f"malformed JSON: {exc.msg} (line {exc.lineno})")
        return
    except ValueError as exc:
        yield LoadFailure(str(path), str(exc))
        return
    records = data if isinstance(data, list) else [data]
    for index, record in enumerate(records):
        where = f"{path}[{index}]" if isinstance(data, list) else str(path)
        try:
            if not isinstance(record, dict):
                raise ValueError("expected an object")
            yield article_from_record(record, str(path))
        except ValueError as exc:
            yield LoadFailure(where, str(exc))


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


def load_html(path: Path) -> Iterator[LoadResult]:
    try:
        # bytes: trafilatura honours the page's declared or detected encoding
        yield article_from_html(read_bytes_checked(path), path=str(path), whole_file=True)
    except ValueError as exc:
        yield LoadFailure(str(path), str(exc))


# The file loaders by suffix.
FILE_LOADERS: dict[str, FileLoader] = {
    ".txt": load_plain,
    ".md": load_plain,
    ".markdown": load_plain,
    ".jsonl": load_jsonl,
    ".ndjson": load_jsonl,
    ".json": load_json,
    ".html": load_html,
    ".htm": load_html,
}
