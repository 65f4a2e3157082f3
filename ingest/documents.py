"""PDF (pypdf) and Word .docx (python-docx) documents as Articles.

A PDF holds positioned lines, not paragraphs. What extraction undoes here, because no maintained library does
it for plain text: running headers and footers (lines repeated at the top or bottom of most pages, digits
aside) and page numbers ("Page 3 of 10", "- 3 -", "3"); words hyphenated across lines ("gov-" + "ernment");
and lines re-flowed into paragraphs, a paragraph ending where the gap to the next line is wider than the
page's usual line spacing. Word files keep their paragraphs; their headers and footers are not in the body.

Title, author and date come from the document's metadata when it has them (PDF /Title /Author /CreationDate,
Word core properties); a word processor's junk title ("Microsoft Word - report.docx") gives way to the first
page's largest heading, or its first line. The text goes through `make_article`, so offsets are into the
cleaned text as for every other format. Every failure is a `LoadFailure` naming the reason: a scan with no
text layer, a password, a truncated or damaged file, a file over the size limit.
"""

from __future__ import annotations

import io
import itertools
import logging
import math
import re
import statistics
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.clean import clean_inline
from ingest.config import DEFAULT_MAX_ARTICLE_BYTES
from ingest.loaders import LoadFailure, LoadResult, failure_reason, make_article, read_limited
from ingest.models import Article

# Lines this close to a page's top or bottom edge may be furniture (fewer on a short page).
EDGE_LINES = 3
_PDF_EOF_TAIL = 4096
# Below this many letters across all pages a PDF has no usable text layer.
_MIN_LETTERS = 20
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"

_PAGE_NUMBER = re.compile(
    r"(page|p\.|seite|página|pagina)?\s*\d{1,4}(\s*(of|/|von|de|sur)\s*\d{1,4})?|[-–—|]\s*\d{1,4}\s*[-–—|]"
    r"|[ivxlc]{1,6}",
    re.IGNORECASE,
)
_NUMBERED_HEAD = re.compile(r"(?:(\d{1,4})\s*[|·•–—-]\s*\D.*|.*\D\s*[|·•–—-]\s*(\d{1,4}))")
# Titles that name the file or the program rather than the document.
_JUNK_TITLE = re.compile(
    r"(microsoft (word|powerpoint|excel)|untitled|document\d*|slide \d+)\b.*|.*\.(docx?|pdf|rtf|odt|indd|pages)",
    re.IGNORECASE,
)
_JUNK_AUTHORS = frozenset({"python-docx", "microsoft office user", "user", "admin", "administrator", "author"})
_LINE_END_HYPHEN = re.compile(r"(\w*[^\W\d_])-$")
_LEADING_WORD = re.compile(r"^(\w+)")
_WORD = re.compile(r"[^\W\d_][\w'’-]*")


@dataclass(frozen=True, slots=True)
class Line:
    """A line of a PDF page: its text, baseline height (up the page; None when unknown) and font size."""

    text: str
    y: float | None = None
    size: float | None = None


# -- loading -----------------------------------------------------------------------------------------------


@contextmanager
def quiet_pdf_warnings() -> Iterator[None]:
    """pypdf logs a warning for each oddity it reads past in a malformed file ("Ignoring wrong pointing
    object..."); while ingesting they are noise over the progress display, and a file it cannot read fails
    with a reason of its own. Its logger is silenced for the duration, then restored."""
    logger = logging.getLogger("pypdf")
    previous = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(previous)


def load_pdf(path: Path, *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES) -> Iterator[LoadResult]:
    """The article in a PDF file, or why there is none."""
    yield _load(path, max_bytes, lambda data: article_from_pdf(data, path=str(path), whole_file=True))


def load_docx(path: Path, *, max_bytes: int = DEFAULT_MAX_ARTICLE_BYTES) -> Iterator[LoadResult]:
    """The article in a Word .docx file, or why there is none."""
    yield _load(path, max_bytes, lambda data: article_from_docx(data, path=str(path), whole_file=True))


def _load(path: Path, max_bytes: int, parse: Callable[[bytes], Article]) -> LoadResult:
    # Larger files are refused before reading: pypdf and python-docx hold the whole file in memory.
    try:
        return parse(read_limited(path, max_bytes))
    except Exception as exc:  # pypdf and python-docx raise all sorts on malformed files: each fails alone
        return LoadFailure(str(path), failure_reason(exc))


# -- PDF ---------------------------------------------------------------------------------------------------


def article_from_pdf(
    data: bytes, *, url: str | None = None, path: str | None = None, whole_file: bool = False
) -> Article:
    """The article in a PDF's bytes (a file, or a response served as application/pdf); raises ValueError
    with the reason when there is none."""
    if not data.startswith(b"%PDF-"):
        raise ValueError("not a PDF file")
    if b"%%EOF" not in data[-_PDF_EOF_TAIL:]:
        raise ValueError("truncated or damaged PDF: no end-of-file marker")
    reader = _open_pdf(data)
    pages = [_page_lines(page) for page in _pages(reader)]
    if sum(sum(ch.isalpha() for line in page for ch in line.text) for page in pages) < _MIN_LETTERS:
        if any(_has_images(page) for page in _pages(reader)):
            raise ValueError("no text layer: the pages are images (a scan?); run OCR on it first")
        raise ValueError("no text in the PDF")
    paragraphs = reflow(strip_furniture(pages))
    info = _pdf_info(reader)
    title = _usable_title(info.get("title")) or _largest_heading(paragraphs)
    return make_article(
        title=title,
        text="\n\n".join(_without_title([text for text, _ in paragraphs], title)),
        url=url,
        path=path,
        author=_usable_author(info.get("author")),
        published_at=info.get("created"),
        whole_file=whole_file,
    )


def _open_pdf(data: bytes) -> Any:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ValueError("encrypted PDF: it needs a password to open")
        len(reader.pages)  # the page tree: a damaged file fails here, not halfway through
    except (FileNotDecryptedError, DependencyError) as exc:
        raise ValueError(f"encrypted PDF: {exc}") from None
    except PdfReadError as exc:
        raise ValueError(f"damaged PDF: {exc}") from None
    except ValueError:
        raise
    except Exception as exc:  # pypdf raises assorted errors (KeyError, TypeError...) on malformed files
        raise ValueError(f"damaged PDF: {type(exc).__name__}: {exc}") from None
    return reader


def _pages(reader: Any) -> Iterator[Any]:
    try:
        yield from reader.pages
    except Exception as exc:  # as in _open_pdf: a malformed page tree
        raise ValueError(f"damaged PDF: {type(exc).__name__}: {exc}") from None


def _page_lines(page: Any) -> list[Line]:
    """The page's lines in reading order, each with the height and font size of its first text."""
    pieces: list[tuple[str, float, float]] = []

    def visit(text: str, cm: list[float], tm: list[float], font: Any, size: float) -> None:
        # the text matrix times the current transformation matrix: where the text lands, and how tall it is
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        height = math.hypot(tm[2] * cm[0] + tm[3] * cm[2], tm[2] * cm[1] + tm[3] * cm[3])
        pieces.append((text, y, abs(size) * height))

    try:
        text = page.extract_text(visitor_text=visit)
    except Exception as exc:  # a malformed content stream
        raise ValueError(f"damaged PDF: {type(exc).__name__}: {exc}") from None
    if "".join(piece for piece, _, _ in pieces) != text:
        # the pieces do not add up to the text (not seen with pypdf 6-7): lines without positions
        return [Line(line.strip()) for line in text.split("\n") if line.strip()]
    lines: list[Line] = []
    current, y, size = "", None, None
    for piece, piece_y, piece_size in pieces:
        parts = piece.split("\n")
        for index, part in enumerate(parts):
            if index:
                if current.strip():
                    lines.append(Line(current.strip(), y, size))
                current, y, size = "", None, None
            if part.strip() and y is None:
                y, size = piece_y, piece_size
            current += part
    if current.strip():
        lines.append(Line(current.strip(), y, size))
    return lines


def _has_images(page: Any) -> bool:
    try:
        return bool(page.images)
    except Exception:  # an undecodable image still says the page is a picture
        return True


def _pdf_info(reader: Any) -> dict[str, Any]:
    """Title, author and creation date from the Info dictionary, each None when missing or unreadable."""
    try:
        meta = reader.metadata
    except Exception:  # a damaged Info dictionary: the text may still be fine
        return {}
    if meta is None:
        return {}
    info: dict[str, Any] = {}
    for key, attribute in (("title", "title"), ("author", "author"), ("created", "creation_date")):
        try:
            info[key] = getattr(meta, attribute)
        except Exception:  # e.g. a /CreationDate that is not a PDF date
            info[key] = None
    return info


# -- page furniture and paragraphs -------------------------------------------------------------------------


def strip_furniture(pages: list[list[Line]]) -> list[list[Line]]:
    """The pages without running headers and footers (the same line, digits aside, near the top or bottom of
    three pages, or of two in a document of up to four), page numbers, and running heads that carry the page's
    number."""
    edge_keys: Counter[str] = Counter()
    for page in pages:
        edge_keys.update({_furniture_key(line.text) for line in _edges(page)})
    # three pages make a pattern (chapter heads change every few pages); a short document has fewer to give
    needed = 2 if len(pages) <= 4 else 3
    repeated = {key for key, count in edge_keys.items() if count >= needed}
    kept = []
    for number, page in enumerate(pages, start=1):
        edges = {id(line) for line in _edges(page)}
        kept.append([line for line in page if id(line) not in edges or not _furniture(line.text, number, repeated)])
    return kept


def _furniture(text: str, page_number: int, repeated: set[str]) -> bool:
    """A repeated running head, a page number, or a short running head carrying this page's number at one end
    ("Annual Report 2023 | 7", "8 · Harbour Authority": they differ on odd and even pages)."""
    text = text.strip()
    if _furniture_key(text) in repeated or _PAGE_NUMBER.fullmatch(text):
        return True
    numbered = _NUMBERED_HEAD.fullmatch(text)
    return bool(numbered and len(text) <= 80 and str(page_number) in (numbered.group(1), numbered.group(2)))


def _edges(page: list[Line]) -> list[Line]:
    """The lines nearest the top and bottom of the page: by height when known (producers write footers
    anywhere in the content stream), else by reading order."""
    placed = [line for line in page if line.y is not None]
    ordered = sorted(placed, key=lambda line: -(line.y or 0.0)) if len(placed) == len(page) else page
    count = min(EDGE_LINES, max(1, len(ordered) // 4))  # a short page is mostly body
    return ordered[:count] + ordered[-count:]


def _furniture_key(text: str) -> str:
    return re.sub(r"\d+", "#", " ".join(text.casefold().split()))


def reflow(pages: list[list[Line]]) -> list[tuple[str, float | None]]:
    """Paragraphs (text, font size of their first line) from the pages' lines: a paragraph ends at a gap wider
    than the page's usual line spacing, a change of font size, or a jump back up the page (a new column); it
    goes on over a page break when its last line does not end a sentence."""
    vocabulary = _vocabulary(pages)
    paragraphs: list[list[Line]] = []
    for page in pages:
        spacing = _line_spacing(page)
        for previous, line in zip([None, *page], page, strict=False):
            if previous is None or _moves_up(previous, line):
                # a new page or column: the paragraph goes on unless its last line ends a sentence
                last = paragraphs[-1][-1] if paragraphs else None
                starts = last is None or _ends_sentence(last.text) or _resized(last, line)
            else:
                starts = _breaks(previous, line, spacing)
            if starts:
                paragraphs.append([line])
            else:
                paragraphs[-1].append(line)
    return [(_join_lines([line.text for line in lines], vocabulary), lines[0].size) for lines in paragraphs]


def _line_spacing(page: list[Line]) -> dict[float, float]:
    """The distance between consecutive lines of a paragraph, for each font size on the page."""
    gaps: dict[float, list[float]] = {}
    for a, b in itertools.pairwise(page):
        if a.y is not None and b.y is not None and a.size is not None and a.y > b.y and not _resized(a, b):
            gaps.setdefault(round(a.size, 1), []).append(a.y - b.y)
    # the smallest gap, as paragraph gaps are wider; capped for a page whose every line starts a paragraph
    return {size: min(min(values), 1.6 * size) for size, values in gaps.items()}


def _moves_up(previous: Line, line: Line) -> bool:
    return previous.y is not None and line.y is not None and line.y >= previous.y


def _breaks(previous: Line, line: Line, spacing: dict[float, float]) -> bool:
    if previous.y is None or line.y is None or previous.size is None:
        # no positions: a short line that ends a sentence ends its paragraph
        return _ends_sentence(previous.text) and len(previous.text) < 0.75 * max(len(line.text), 60)
    if _resized(previous, line):
        return True
    usual = spacing.get(round(previous.size, 1), 1.2 * previous.size)
    return previous.y - line.y > 1.3 * usual


def _resized(previous: Line, line: Line) -> bool:
    return previous.size is not None and line.size is not None and abs(previous.size - line.size) > 0.5


def _ends_sentence(text: str) -> bool:
    return text.rstrip().endswith((".", "!", "?", ":", '"', "”", "’", ")"))


def _vocabulary(pages: list[list[Line]]) -> tuple[set[str], set[str]]:
    """The document's own words, and its hyphenated compounds, to tell a hyphenated line break from a compound
    broken at its hyphen."""
    words: set[str] = set()
    for page in pages:
        for line in page:
            words.update(word.casefold().strip("-") for word in _WORD.findall(line.text))
    return {w for w in words if "-" not in w}, {w for w in words if "-" in w}


def _join_lines(lines: list[str], vocabulary: tuple[set[str], set[str]]) -> str:
    """Lines joined with spaces; a word hyphenated at a line end is joined ("gov-" + "ernment"), unless the
    document writes it with a hyphen elsewhere ("long-term") or the next line starts with a capital or a digit
    ("Anglo-" + "French", "COVID-" + "19")."""
    words, compounds = vocabulary
    text = lines[0]
    for line in lines[1:]:
        head = _LINE_END_HYPHEN.search(text)
        tail = _LEADING_WORD.match(line)
        if head and tail:
            first, second = head.group(1), tail.group(1)
            joined = (first + second).casefold()
            hyphenated = f"{first}-{second}".casefold()
            if second[0].islower() and (joined in words or hyphenated not in compounds):
                text = text[:-1] + line
            else:
                text += line
        else:
            text += " " + line
    return text


# -- titles and metadata -----------------------------------------------------------------------------------


def _usable_title(title: Any) -> str | None:
    if not isinstance(title, str):
        return None
    cleaned = clean_inline(title)
    return cleaned if cleaned and not _JUNK_TITLE.fullmatch(cleaned) else None


def _usable_author(author: Any) -> str | None:
    if not isinstance(author, str):
        return None
    cleaned = clean_inline(author)
    return cleaned if cleaned and cleaned.casefold() not in _JUNK_AUTHORS else None


def _largest_heading(paragraphs: list[tuple[str, float | None]], search: int = 8) -> str | None:
    """The first paragraph in the largest type among the first few, when it is larger than the body text and
    short enough for a headline; else None (the first line then serves, as `make_article` does)."""
    sized = [(text, size) for text, size in paragraphs if size]
    if not sized:
        return None
    body = statistics.median(size for _, size in sized)
    heads = [(text, size) for text, size in sized[:search] if size > body + 0.5 and len(text.split()) <= 25]
    if not heads:
        return None
    largest = max(size for _, size in heads)
    return next(text for text, size in heads if size == largest)


def _without_title(paragraphs: list[str], title: str | None, search: int = 3) -> list[str]:
    """The paragraphs without the title's own line, when one of the first few repeats it."""
    if title:
        folded = " ".join(title.split()).casefold()
        for index, paragraph in enumerate(paragraphs[:search]):
            if " ".join(paragraph.split()).casefold() == folded:
                return paragraphs[:index] + paragraphs[index + 1 :]
    return paragraphs


# -- Word --------------------------------------------------------------------------------------------------

# The parts of a .docx python-docx reads; their size once unzipped is checked before parsing (a zip bomb).
_DOCX_MAX_XML_RATIO = 20


def article_from_docx(data: bytes, *, path: str | None = None, whole_file: bool = False) -> Article:
    """The article in a Word .docx file's bytes: body paragraphs and tables in order, headings included;
    headers and footers (and their page numbers) are not part of the body. Raises ValueError with the reason
    when there is none."""
    if data.startswith(_OLE_MAGIC):
        raise ValueError("encrypted Word file (or an old binary .doc): save it as an unprotected .docx")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        unpacked = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile as exc:
        raise ValueError(f"damaged Word file: {exc}") from None
    if unpacked > _DOCX_MAX_XML_RATIO * max(len(data), 1_000_000):
        raise ValueError(f"damaged Word file: {unpacked:,} bytes once unzipped from {len(data):,}")
    document = _open_docx(data)
    blocks = _docx_blocks(document)
    props = document.core_properties
    title = _usable_title(props.title) or _docx_heading(blocks)
    texts = [text for text, _ in blocks]
    if not any(text.strip() for text in texts):
        raise ValueError("no text in the Word file")
    return make_article(
        title=title,
        text="\n\n".join(_without_title(texts, title)),
        path=path,
        author=_usable_author(props.author),
        published_at=props.created,
        whole_file=whole_file,
    )


def _open_docx(data: bytes) -> Any:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        return docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"not a Word document: {exc}") from None
    except Exception as exc:  # python-docx and lxml raise assorted errors on malformed parts
        raise ValueError(f"damaged Word file: {type(exc).__name__}: {exc}") from None


def _docx_blocks(document: Any) -> list[tuple[str, str]]:
    """(text, style name) of each body paragraph, and of each table row (cells joined with " | ")."""
    from docx.table import Table

    blocks: list[tuple[str, str]] = []
    try:
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                for row in item.rows:
                    cells = [" ".join(cell.text.split()) for cell in row.cells]
                    unique = [c for i, c in enumerate(cells) if c and c not in cells[:i]]  # merged cells repeat
                    if unique:
                        blocks.append((" | ".join(unique), "Table"))
            elif item.text.strip():
                blocks.append((item.text, item.style.name if item.style is not None else ""))
    except Exception as exc:  # as in _open_docx
        raise ValueError(f"damaged Word file: {type(exc).__name__}: {exc}") from None
    return blocks


def _docx_heading(blocks: list[tuple[str, str]], search: int = 5) -> str | None:
    """The first Title-styled paragraph, else the first Heading 1, among the first few."""
    for style in ("Title", "Heading 1"):
        for text, name in blocks[:search]:
            if name == style:
                return text
    return None
