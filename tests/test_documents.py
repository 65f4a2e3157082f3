"""PDF and Word loaders on the documents tests/data/make_documents.py typesets, and on page lines made here."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest

from bot.app import Byline
from ingest.documents import Line, article_from_docx, article_from_pdf, load_docx, load_pdf, reflow, strip_furniture
from ingest.loaders import LoadFailure
from ingest.models import Article

DOCUMENTS = Path(__file__).resolve().parent / "data" / "documents"


def expected_file(path: Path) -> Path:
    return path.with_name(path.stem + ".expected.json")


# the documents that load, each with what it should load as
LOADABLE = sorted(p.name for p in DOCUMENTS.iterdir() if p.suffix in (".pdf", ".docx") and expected_file(p).exists())


def load(name: str, **kwargs: int) -> Article | LoadFailure:
    path = DOCUMENTS / name
    results = list((load_pdf if path.suffix == ".pdf" else load_docx)(path, **kwargs))
    assert len(results) == 1
    return results[0]


@pytest.mark.parametrize("name", LOADABLE)
def test_each_document_loads_with_its_metadata_and_clean_paragraphs(name: str) -> None:
    expected = json.loads(expected_file(DOCUMENTS / name).read_text())
    article = load(name)
    assert isinstance(article, Article), article
    assert article.title == expected["title"]
    assert article.author == expected["author"]
    assert (article.published_at.isoformat() if article.published_at else None) == expected["date"]
    # headers, footers and page numbers gone; hyphenated line breaks joined; one paragraph per source paragraph
    assert article.text.split("\n\n") == expected["paragraphs"]
    assert article.path == str(DOCUMENTS / name) and article.whole_file


def test_the_documents_cover_what_extraction_must_undo() -> None:
    from pypdf import PdfReader

    raw = "\n".join(page.extract_text() for page in PdfReader(DOCUMENTS / "annual-report.pdf").pages)
    assert "- 2 -" in raw and raw.count("Harbour Authority · Annual Report 2023") == 3
    assert "inves-\ntment" in raw  # a word hyphenated across lines
    assert load("annual-report.pdf").text.count("investment") == 1  # type: ignore[union-attr]
    columns = "\n".join(page.extract_text() for page in PdfReader(DOCUMENTS / "annual-report-columns.pdf").pages)
    assert "Annual Report 2023  |  1" in columns and "2  |  Harbour Authority" in columns


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("scanned-letter.pdf", "no text layer: the pages are images (a scan?); run OCR on it first"),
        ("encrypted.pdf", "encrypted PDF: it needs a password to open"),
        ("truncated.pdf", "truncated or damaged PDF: no end-of-file marker"),
        ("corrupt.docx", "damaged Word file: File is not a zip file"),
    ],
)
def test_unreadable_documents_fail_with_a_reason(name: str, reason: str) -> None:
    failure = load(name)
    assert failure == LoadFailure(str(DOCUMENTS / name), reason)


def test_failures_fail_alone() -> None:
    documents = sorted(p for p in DOCUMENTS.iterdir() if p.suffix in (".pdf", ".docx"))
    results = [r for path in documents for r in (load_pdf if path.suffix == ".pdf" else load_docx)(path)]
    assert len(results) == len(documents)
    assert sorted(Path(r.path or "").name for r in results if isinstance(r, Article)) == LOADABLE
    assert len([r for r in results if isinstance(r, LoadFailure)]) == 4


def test_size_limit_is_checked_before_reading() -> None:
    failure = load("press-release.pdf", max_bytes=1000)
    assert isinstance(failure, LoadFailure) and failure.reason.startswith("too large: ")
    assert "limit 1,000" in failure.reason


def test_pdf_bytes_from_the_web_take_the_url() -> None:
    data = (DOCUMENTS / "press-release.pdf").read_bytes()
    article = article_from_pdf(data, url="https://harbour.example/press/terminal.pdf")
    assert article.url == "https://harbour.example/press/terminal.pdf" and article.path is None
    assert article.id.startswith("u-")
    with pytest.raises(ValueError, match="not a PDF file"):
        article_from_pdf(b"<html>not a pdf</html>")
    with pytest.raises(ValueError, match="damaged PDF"):
        article_from_pdf(b"%PDF-1.7\n1 0 obj <</Type /Catalog>> endobj\ntrailer <<>>\n%%EOF\n")


def test_protected_word_files_and_other_bytes() -> None:
    with pytest.raises(ValueError, match="encrypted Word file"):
        article_from_docx(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512)
    with pytest.raises(ValueError, match="damaged Word file"):
        article_from_docx(b"PK\x03\x04 not really a zip")


# -- page lines --------------------------------------------------------------------------------------------


def page(*texts: str, top: float = 800.0, spacing: float = 14.0, size: float = 11.0) -> list[Line]:
    """Lines down a page, a blank entry ("") leaving a paragraph gap."""
    lines, y = [], top
    for text in texts:
        if text:
            lines.append(Line(text, y, size))
        y -= spacing
    return lines


def test_running_heads_and_page_numbers_go_but_body_lines_stay() -> None:
    def body(n: int) -> list[str]:
        middle = ["The council met on Monday.", "Summary", "It voted 7 to 2.", "The vote was close.", "Summary"]
        return [f"Story {n} begins {'here' * n}.", *middle, "More text follows.", f"Section {n} ends {'now' * n}."]

    pages = [
        page("Harbour Review · March 2024", "", *body(n), "", footer)
        for n, footer in enumerate(["Page 1 of 3", "- 2 -", "3"], start=1)
    ]
    kept = strip_furniture(pages)
    # lines repeated on every page stay when they are not at the top or bottom of the page
    assert [[line.text for line in p] for p in kept] == [body(n) for n in (1, 2, 3)]
    # a lone page keeps its heading; its page number still goes
    alone = strip_furniture([page("Harbour Review · March 2024", "Text.", "Page 1 of 1")])
    assert [line.text for line in alone[0]] == ["Harbour Review · March 2024", "Text."]


def test_reflow_joins_lines_hyphens_and_pages() -> None:
    pages = [
        page(
            "The long-term plan for the water-",
            "front was approved by the gov-",
            "ernment, after a long-",
            "term study.",
            "",
            "A new paragraph about Anglo-",
            "French trade and COVID-",
            "19 rules that",
        ),
        page("continues on the next page.", "", "Another paragraph."),
    ]
    paragraphs = [text for text, _ in reflow(pages)]
    assert paragraphs == [
        # "waterfront" has no hyphenated spelling here: joined; "long-term" has one: kept
        "The long-term plan for the waterfront was approved by the government, after a long-term study.",
        # a capital or a digit after the hyphen: a real hyphen
        "A new paragraph about Anglo-French trade and COVID-19 rules that continues on the next page.",
        "Another paragraph.",
    ]


def test_reflow_without_positions_breaks_after_short_sentence_ends() -> None:
    lines = [Line("A first paragraph that runs on over"), Line("two lines."), Line("Then a second one.")]
    assert [text for text, _ in reflow([lines])] == [
        "A first paragraph that runs on over two lines.",
        "Then a second one.",
    ]


@pytest.mark.slow
def test_the_documents_are_ingested_and_answered(byline: Byline) -> None:
    """The PDF and Word files of tests/data/documents through `ingest` (by the suffix table, under the size
    limit), then asked about with the real model: the answers cite the PDF and the Word file they came from."""
    documents = sorted(str(p) for p in DOCUMENTS.iterdir() if p.suffix in (".pdf", ".docx"))
    report = byline.ingest(documents)
    assert report.articles == len(LOADABLE)
    assert sorted(Path(f.source).name for f in report.failed) == [
        "corrupt.docx",
        "encrypted.pdf",
        "scanned-letter.pdf",
        "truncated.pdf",
    ]
    # copy-protected.pdf is the press release again (encrypted with an empty password): one article, two files
    press_release = {"press-release.pdf", "copy-protected.pdf"}
    for question, fact, documents in [
        ("How much will the Quay Street ferry terminal cost?", "14.2 million pounds", press_release),
        ("How many cables of the Old Mill footbridge are corroded?", "two of the four main cables", {"statement.docx"}),
    ]:
        answer = byline.ask(question)
        assert answer.citations and Path(answer.citations[0].path or "").name in documents, answer.text
        best = byline.retriever.search(question)[0]
        assert Path(best.path or "").name in documents and fact in best.text


def test_pypdf_warnings_are_quiet_while_ingesting(
    byline: Byline, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A PDF whose cross-reference offset is wrong loads (pypdf rebuilds the table), with warnings that would
    print over the progress display; during ingest they are silenced, and the logger is as it was afterwards."""
    data = re.sub(rb"startxref\s+\d+", b"startxref\n999999", (DOCUMENTS / "press-release.pdf").read_bytes())
    damaged = tmp_path / "damaged.pdf"
    damaged.write_bytes(data)
    caplog.set_level(logging.WARNING)
    article_from_pdf(data)
    assert any(r.name.startswith("pypdf") for r in caplog.records)  # what the ingest must not show
    caplog.clear()
    report = byline.ingest([str(damaged)])
    assert report.added == 1 and not [r for r in caplog.records if r.name.startswith("pypdf")]
    assert logging.getLogger("pypdf").level == logging.NOTSET
