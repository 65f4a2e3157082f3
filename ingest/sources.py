"""Sources to articles: files read by the loader for their suffix, folders walked, and whatever the caller's
handlers claim first (URLs, feeds, sitemaps).

Each file, and each record of a JSON or JSONL file, fails alone: whatever a loader or a library under it raises
(a `RecursionError` from JSON nested a thousand levels deep, a `MemoryError`) becomes a `LoadFailure` naming the
file (and the line), and the rest of the command goes on. Every file and record is held to `max_bytes`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Protocol

from ingest.config import DEFAULT_MAX_ARTICLE_BYTES
from ingest.documents import load_docx, load_pdf
from ingest.loaders import (
    LoadFailure,
    LoadResult,
    failure_reason,
    load_html,
    load_json,
    load_jsonl,
    load_plain,
    read_text_file,
)


class FileLoader(Protocol):
    def __call__(self, path: Path, *, max_bytes: int) -> Iterator[LoadResult]: ...


# A source handler claims sources it understands (e.g. http URLs) before they are treated as paths.
SourceHandler = Callable[[str], Iterator[LoadResult] | None]

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
    ".pdf": load_pdf,
    ".docx": load_docx,
}
# A folder's own documentation is not news: skipped when walking folders (still loadable by name).
_FOLDER_DOCS = frozenset({"readme", "license", "licence", "changelog", "notice", "contributing"})
_LINE_FILES = frozenset({".jsonl", ".ndjson"})


def supported_suffixes() -> list[str]:
    return sorted(FILE_LOADERS)


def load_sources(
    sources: Iterable[str],
    handlers: Sequence[SourceHandler] = (),
    *,
    max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES,
) -> Iterator[LoadResult]:
    """Articles (or failures) from each source, folders walked recursively in a stable order; each source is
    offered to `handlers` first, in order, and read as a path when none claims it. A file's path is its real
    path (absolute, symlinks resolved), so an article's path is the same however the file was named."""
    for source in sources:
        for handler in handlers:
            handled = handler(source)
            if handled is not None:
                yield from handled
                break
        else:
            yield from _load_path(_absolute(source), max_bytes)


def count_inputs(sources: Iterable[str], claimed: Callable[[str], bool], max_bytes: int) -> int | None:
    """How many results `load_sources` will yield, counted cheaply first (for a progress display): a file is
    one, a JSONL file its non-blank lines, a JSON file its records. None when a source can only be counted by
    loading it (`claimed` says which: URLs, feeds)."""
    total = 0
    for source in sources:
        if claimed(source):
            return None
        path = _absolute(source)
        for file in _files(path) if path.is_dir() else [path]:
            total += _count_file(file, max_bytes)
    return total


def _absolute(source: str) -> Path:
    return Path(source).expanduser().absolute()


def _files(folder: Path) -> list[Path]:
    """The loadable files under a folder, in a stable order, hidden files and folder documentation left out."""
    found = (p for p in folder.rglob("*") if p.suffix.lower() in FILE_LOADERS and p.is_file())
    return sorted(p for p in found if not _hidden(p.relative_to(folder)))


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts) or relative.stem.lower() in _FOLDER_DOCS


def _load_path(path: Path, max_bytes: int) -> Iterator[LoadResult]:
    if path.is_dir():
        for file in _files(path):
            yield from _load_file(file, max_bytes)
        return
    if not path.exists():
        yield LoadFailure(str(path), "no such file or directory")
        return
    if path.suffix.lower() not in FILE_LOADERS:
        known = ", ".join(supported_suffixes())
        yield LoadFailure(str(path), f"unsupported file type {path.suffix or '(none)'!r} (known: {known})")
        return
    yield from _load_file(path, max_bytes)


def _load_file(name: Path, max_bytes: int) -> Iterator[LoadResult]:
    """The file read by the loader for its name's suffix, under its real path (symlinks resolved), so that one
    file has one path however it was named."""
    path = name.resolve()
    try:
        yield from FILE_LOADERS[name.suffix.lower()](path, max_bytes=max_bytes)
    except Exception as exc:  # whatever a loader raises: this file fails, the next one is read
        yield LoadFailure(str(path), failure_reason(exc))


def _count_file(path: Path, max_bytes: int) -> int:
    suffix = path.suffix.lower()
    try:
        if suffix in _LINE_FILES:
            return _count_lines(path) or 1  # an empty file is one failure
        if suffix == ".json":
            data = json.loads(read_text_file(path, max_bytes))
            return len(data) if isinstance(data, list) else 1
    except Exception:  # what cannot be counted fails when it is loaded: one failure
        return 1
    return 1


def _count_lines(path: Path) -> int:
    """Non-blank lines, read in blocks (one line may be longer than memory allows)."""
    count, pending = 0, False
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            lines = block.split(b"\n")
            for line in lines[:-1]:
                count += pending or bool(line.strip())
                pending = False
            pending = pending or bool(lines[-1].strip())
    return count + pending
