"""Regenerates tests/data/documents/: PDF and Word files as offices publish them, and what each should load as.

    .venv/bin/python tests/data/make_documents.py

PDFs are typeset here line by line (fpdf2), so they carry what extraction must undo: running headers and
footers, page numbers in several styles, words hyphenated across lines, and metadata that is good, junk or
missing. Beside each document, `<name>.expected.json` holds the title, author, date and paragraphs it was made
from: the tests and `tests/bench_documents.py` compare extraction against them. The texts are invented.
"""

from __future__ import annotations

import io
import json
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from docx import Document
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from fpdf import FPDF
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DictionaryObject, NameObject

OUT = Path(__file__).resolve().parent / "documents"
# Fixed so regenerating gives byte-identical files where the libraries allow it.
FILE_ID = "4279746c696e6520746573742064636d"


@dataclass
class Source:
    """What a document is made from; `paragraphs` are the body as a reader sees it (headings included)."""

    name: str
    title: str
    author: str | None
    date: datetime | None
    paragraphs: list[str]
    headings: set[int] = field(default_factory=set)  # indexes of paragraphs set as headings

    def expected(self) -> dict[str, Any]:
        """What loading should give: the body is every paragraph but the title's own line."""
        body = list(self.paragraphs)
        if self.title in body:
            body.remove(self.title)
        return {
            "title": self.title,
            "author": self.author,
            "date": self.date.isoformat() if self.date else None,
            "paragraphs": body,
        }


PRESS_RELEASE = Source(
    name="press-release",
    title="Harbour Authority approves new ferry terminal at Quay Street",
    author="Harbour Authority Press Office",
    date=datetime(2024, 3, 12, 9, 30, tzinfo=UTC),
    headings={1},
    paragraphs=[
        "FOR IMMEDIATE RELEASE",
        "Harbour Authority approves new ferry terminal at Quay Street",
        "The Harbour Authority board yesterday approved plans for a new ferry terminal at Quay Street, replacing "
        "the building damaged by the storm surge of 5 March. Construction is expected to begin in September and "
        "to take eighteen months, at a cost of 14.2 million pounds.",
        "The new terminal will stand 1.2 metres higher than the old one and will be protected by a flood wall "
        "designed for a one-in-two-hundred-year tide. Its waiting hall will hold three hundred passengers, twice "
        "the capacity of the current temporary building on the east pier.",
        '"The storm showed us how exposed the old terminal was," said Ines Okafor, the harbourmaster. "This '
        "design keeps the ferries running when the next surge comes, and it gives passengers a proper place to "
        'wait in winter."',
        "During construction, sailings to the islands will continue from the east pier. Timetables will not "
        "change, but passengers with vehicles are asked to arrive thirty minutes before departure, as the "
        "marshalling area there is smaller.",
        "Funding comes from the authority's capital reserve, a government resilience grant of 6.5 million pounds "
        "and a loan from the regional development bank. The board rejected a proposal to raise passenger fares "
        "to pay for the work.",
        "Local businesses on Quay Street will be consulted on the design of the public square in front of the "
        "terminal. An exhibition of the plans opens at the harbour office on 20 March and runs for two weeks.",
        "The authority will publish monthly progress reports on its website once work begins, including any "
        "changes to the timetable and to access for pedestrians and cyclists along the waterfront.",
        "ENDS",
        "Notes to editors: The Harbour Authority manages the port, its ferry services and twelve kilometres of "
        "waterfront. Photographs of the design are available on request from the press office.",
    ],
)

REPORT = Source(
    name="annual-report",
    title="Annual Report 2023: a year of recovery on the waterfront",
    author=None,
    date=datetime(2024, 2, 28, 16, 0, tzinfo=UTC),
    headings={0, 1, 6, 11},
    paragraphs=[
        "Annual Report 2023: a year of recovery on the waterfront",
        "Chair's introduction",
        "Twenty twenty-three was the year in which the port returned to the traffic it handled before the "
        "pandemic. Container volumes rose by eleven per cent, ferry passenger numbers passed one million for "
        "the first time since 2019, and the authority ended the year with an operating surplus of 3.1 million "
        "pounds.",
        "That recovery did not come by itself. It followed a programme of investment agreed by the board in "
        "2021, which modernised the container quay, renewed two of the three harbour tugs and replaced the "
        "electrical infrastructure of the north basin. Each of those projects finished on time and within its "
        "budget, an achievement that belongs to the engineering team and to our contractors.",
        "The year also brought a reminder of how vulnerable the waterfront remains. The winter storms damaged "
        "the sea wall near the lifeboat station and flooded the lower car park twice. Our environmental "
        "monitoring shows that high tides now reach levels that were exceptional a generation ago, and the "
        "board has asked for a long-term resilience plan to be ready by the autumn.",
        "I thank the staff of the authority for their commitment, and the communities around the harbour for "
        "their patience during a year of construction work and disruption.",
        "Operations and traffic",
        "The container quay handled 412,000 twenty-foot equivalent units, against 371,000 in 2022. The "
        "increase came mainly from two new weekly services to northern Europe, which began calling in April "
        "after the quay's new cranes were commissioned. Average vessel turnaround fell from thirty-one hours "
        "to twenty-six hours.",
        "Bulk cargo was stable at 1.9 million tonnes. Grain exports recovered after a poor harvest in 2022, "
        "while imports of aggregates for construction fell as several regional building projects were delayed "
        "by rising costs.",
        "Ferry services carried 1,043,000 passengers and 212,000 vehicles. Reliability, measured as sailings "
        "departing within ten minutes of their scheduled time, improved to ninety-four per cent. Weather "
        "caused the cancellation of sixty-three sailings, most of them in January and December.",
        "Pilotage and towage services completed 2,870 movements without a reportable incident. The two new "
        "hybrid tugs reduced fuel consumption on towage work by around a third compared with the vessels they "
        "replaced, and they are quieter for the residents of the waterfront apartments.",
        "Finance and governance",
        "Income rose to 48.6 million pounds, an increase of nine per cent, while operating costs rose by six "
        "per cent, largely because of higher energy prices and the pay settlement agreed with staff in June. "
        "Capital expenditure was 17.4 million pounds, funded from reserves and from the sale of surplus land "
        "at the old timber yard.",
        "The board met eleven times during the year. Two new members with experience in civil engineering and "
        "environmental science were appointed in September, following an open recruitment process overseen by "
        "the department of transport.",
        "The authority's accounts were audited without qualification. The full financial statements, together "
        "with the report of the audit committee, are published alongside this report on the authority's "
        "website.",
    ],
)

BRIEFING = Source(
    name="council-briefing",
    title="Council briefing: parking charges on the waterfront",
    author=None,
    date=None,
    paragraphs=[
        "Council briefing: parking charges on the waterfront",
        "The council's transport committee will consider on Thursday a proposal to introduce parking charges "
        "in the waterfront car parks, which have been free since they opened in 2011. Officers estimate the "
        "charges would raise 380,000 pounds a year, to be spent on maintaining the promenade and the sea "
        "defences.",
        "Under the proposal, the first hour would remain free, followed by a charge of one pound for each "
        "additional hour up to a daily maximum of six pounds. Residents of the harbour ward would be able to "
        "buy an annual permit for forty pounds, and blue badge holders would continue to park without charge.",
        "The proposal has divided opinion. The chamber of commerce argues that charges would drive visitors "
        "away from cafes and shops on the seafront during the quiet months, when many businesses already "
        "struggle. Residents' groups have said that free parking encourages commuters to leave their cars by "
        "the harbour all day, leaving no spaces for people who live there.",
        "A public consultation in the autumn received 1,284 responses. Of those, fifty-two per cent opposed "
        "any charge, thirty-one per cent supported charges with a free period, and the rest supported charges "
        "from the first hour. Many respondents asked for the money raised to be kept for the waterfront rather "
        "than the council's general budget.",
        "If the committee approves the scheme, it would go to a meeting of the full council in April, and "
        "charges could begin in the summer after the ticket machines are installed.",
    ],
)

STATEMENT = Source(
    name="statement",
    title="Statement on the Old Mill footbridge inspection",
    author="Dev Patel",
    date=datetime(2024, 3, 6, 14, 0, tzinfo=UTC),
    headings={0, 4},
    paragraphs=[
        "Old Mill footbridge: inspection findings",
        "Engineers have found corrosion in two of the four main cables of the Old Mill footbridge, and the "
        "crossing will stay closed to pedestrians for at least six months while repairs are designed.",
        "The inspection, carried out with drones and rope-access teams, showed that water had entered the cable "
        "anchorages through cracked seals installed during a 2009 refurbishment.",
        "Cyclists and walkers are being diverted over the Station Road bridge, adding about twelve minutes to a "
        "typical commute between the east bank and the town centre.",
        "What happens next",
        "The council will appoint a specialist contractor in April to design the repairs. A temporary ferry "
        "across the river for pedestrians is being considered for the summer months.",
        "Updates will be posted at the bridge and on the council's website as the work progresses.",
    ],
)

NEWSLETTER = Source(
    name="museum-newsletter",
    title="Figurehead gallery to reopen in March",
    author="Sofia Brandt",
    date=None,
    headings={0},
    paragraphs=[
        "Figurehead gallery to reopen in March",
        "The maritime museum will reopen its restored figurehead gallery in March after a two-year conservation "
        "project funded by a national heritage grant of 2.4 million pounds.",
        "Curator Tomas Lindqvist said the team had removed eleven layers of paint from the oldest figurehead, "
        "revealing the original colours chosen by its carver in 1842.",
        "Entry to the gallery will be free for residents during the first month, and the museum plans evening "
        "openings with talks by the conservators who worked on the collection.",
    ],
)


# -- PDF ---------------------------------------------------------------------------------------------------


class FixedId(FPDF):
    """fpdf2's FPDF with a fixed file identifier (it draws a random one), so output is reproducible."""

    def file_id(self) -> str:
        return f"<{FILE_ID}><{FILE_ID}>"


def typeset(pdf: Any, source: Source, *, width: float, line_height: float, size: float) -> None:
    """The paragraphs set line by line, breaking long words with a hyphen as a word processor does."""
    for index, paragraph in enumerate(source.paragraphs):
        heading = index in source.headings
        pdf.set_font(
            "Helvetica", "B" if heading else "", size + (3 if paragraph == source.title else 1 if heading else 0)
        )
        for line in break_lines(pdf, paragraph, width):
            pdf.cell(width, line_height, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(line_height * 0.8)


def break_lines(pdf: Any, text: str, width: float) -> list[str]:
    lines: list[str] = []
    line = ""
    words = text.split()
    while words:
        word = words.pop(0)
        candidate = f"{line} {word}" if line else word
        if pdf.get_string_width(candidate) <= width:
            line = candidate
            continue
        head, tail = hyphenate(pdf, line, word, width)
        if head:
            lines.append(f"{line} {head}" if line else head)
            line = ""
            words.insert(0, tail)
        else:
            lines.append(line)
            line = word
    if line:
        lines.append(line)
    return lines


def hyphenate(pdf: Any, line: str, word: str, width: float) -> tuple[str, str]:
    """Split `word` so its head (with a hyphen) still fits the line: at its own hyphen when it has one, else
    anywhere leaving at least three letters on each side."""
    if "-" in word.strip("-"):
        head, _, tail = word.partition("-")
        fits = pdf.get_string_width(f"{line} {head}-") <= width
        return (f"{head}-", tail) if fits and tail else ("", word)
    letters = word.rstrip(".,;:!?\"'")
    for cut in range(len(letters) - 3, 2, -1):
        head = word[:cut] + "-"
        if word[:cut].isalpha() and pdf.get_string_width(f"{line} {head}") <= width:
            return head, word[cut:]
    return "", word


def pdf_document(
    source: Source,
    *,
    header: str | None,
    footer: str,
    metadata_title: str | None,
    page_format: tuple[float, float] = (148, 210),
    size: float = 10.5,
) -> bytes:
    """A PDF with a running header and a page-number footer (`footer` is a format string with {n} and
    {total}), and the given metadata."""

    class Document(FixedId):
        def header(self) -> None:
            if header:
                self.set_font("Helvetica", "I", 8)
                self.cell(0, 6, header, align="R", new_x="LMARGIN", new_y="NEXT")
                self.ln(4)

        def footer(self) -> None:
            self.set_y(-14)
            self.set_font("Helvetica", "", 8)
            self.cell(0, 6, footer.format(n=self.page_no(), total="{nb}"), align="C")

    pdf = Document(format=page_format)
    pdf.set_margins(16, 14, 16)
    pdf.set_auto_page_break(True, margin=20)
    pdf.set_creation_date(source.date or datetime(2000, 1, 1, tzinfo=UTC))
    if metadata_title:
        pdf.set_title(metadata_title)
    if source.author:
        pdf.set_author(source.author)
    pdf.set_creator("Byline test documents")
    pdf.add_page()
    typeset(pdf, source, width=pdf.epw, line_height=size * 0.5, size=size)
    return bytes(pdf.output())


def two_column_pdf(source: Source) -> bytes:
    """The source in two justified columns (word spacing stretched, soft hyphens at long words), headings
    across, with left and right running headers that differ on even and odd pages and carry the page number."""

    class Document(FixedId):
        def header(self) -> None:
            self.set_font("Helvetica", "I", 8)
            odd = self.page_no() % 2
            text = f"Annual Report 2023  |  {self.page_no()}" if odd else f"{self.page_no()}  |  Harbour Authority"
            self.cell(0, 6, text, align="R" if odd else "L", new_x="LMARGIN", new_y="NEXT")
            self.ln(3)

    pdf = Document(format=(148, 210))
    pdf.set_margins(12, 12, 12)
    pdf.set_auto_page_break(True, margin=18)
    pdf.set_creation_date(source.date or datetime(2000, 1, 1, tzinfo=UTC))
    pdf.set_title(source.title)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.multi_cell(0, 8, source.paragraphs[0], new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 8.5)
    with pdf.text_columns(ncols=2, gutter=8, text_align="J", line_height=1.25) as columns:
        for index, paragraph in enumerate(source.paragraphs[1:], start=1):
            if index in source.headings:
                pdf.set_font("Helvetica", "B", 9.5)
                columns.write(paragraph + "\n")
                pdf.set_font("Helvetica", "", 8.5)
            else:
                # soft hyphens in long words: the layout may break there and show a hyphen
                columns.write(" ".join(_soft_hyphens(word) for word in paragraph.split()) + "\n")
            columns.ln(1.5)
    return bytes(pdf.output())


def _soft_hyphens(word: str) -> str:
    if len(word) < 10 or not word.isalpha():
        return word
    middle = len(word) // 2
    return word[:middle] + "\u00ad" + word[middle:]


def without_creation_date(data: bytes) -> bytes:
    """A PDF whose Info dictionary has no /CreationDate (most scanners and many converters write none)."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    info = writer._info.get_object() if writer._info is not None else None
    if isinstance(info, DictionaryObject):
        for key in ("/CreationDate", "/ModDate"):
            info.pop(NameObject(key), None)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def scanned_pdf() -> bytes:
    """A page that is only a picture of text, as a scanner without OCR makes it."""
    image = Image.new("1", (620, 877), 1)
    draw = ImageDraw.Draw(image)
    lines = ["HARBOUR AUTHORITY", "", "Dear residents,", "", *_wrap(PRESS_RELEASE.paragraphs[1], 70)]
    for row, text in enumerate(lines):
        draw.text((50, 60 + row * 18), text, fill=0)
    png = io.BytesIO()
    image.save(png, format="PNG", optimize=True)
    pdf = FixedId(format=(148, 210))
    pdf.set_creation_date(datetime(2024, 3, 1, tzinfo=UTC))
    pdf.add_page()
    pdf.image(io.BytesIO(png.getvalue()), x=0, y=0, w=pdf.w)
    return bytes(pdf.output())


def _wrap(text: str, width: int) -> list[str]:

    return textwrap.wrap(text, width)


def encrypted(data: bytes, *, user_password: str, algorithm: str) -> bytes:

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password="owner-secret", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


# -- DOCX --------------------------------------------------------------------------------------------------


def docx_document(source: Source, *, core_title: bool, header: str, page_field: bool) -> bytes:
    """A Word file: core properties, a header and a footer with a PAGE field, headings and body paragraphs."""
    document = Document()
    props = document.core_properties
    props.title = source.title if core_title else ""
    props.author = source.author or ""
    props.last_modified_by = "Press Office"
    props.created = (source.date or datetime(2000, 1, 1, tzinfo=UTC)).replace(tzinfo=None)
    props.modified = props.created
    props.revision = 1
    if not source.date:
        # python-docx's template carries a creation date of its own; a file with none must say so
        element = props._element
        for child in list(element):
            if child.tag == qn("dcterms:created"):
                element.remove(child)
    section = document.sections[0]
    section.header.paragraphs[0].text = header
    footer = section.footer.paragraphs[0]
    footer.add_run("Harbour Council · Page ")
    if page_field:
        field = OxmlElement("w:fldSimple")
        field.set(qn("w:instr"), "PAGE")
        run = OxmlElement("w:r")
        text = OxmlElement("w:t")
        text.text = "1"
        run.append(text)
        field.append(run)
        footer._p.append(field)
    for index, paragraph in enumerate(source.paragraphs):
        if index in source.headings:
            document.add_heading(paragraph, level=0 if paragraph == source.title else 1)
        else:
            document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


# -- all of them -------------------------------------------------------------------------------------------


def write(name: str, data: bytes, expected: dict[str, Any] | None = None) -> None:
    (OUT / name).write_bytes(data)
    if expected is not None:
        stem = name.rsplit(".", 1)[0]
        (OUT / f"{stem}.expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    release = pdf_document(
        PRESS_RELEASE,
        header="Harbour Authority · Press Office",
        footer="Page {n} of {total}",
        metadata_title=PRESS_RELEASE.title,
    )
    write("press-release.pdf", release, PRESS_RELEASE.expected())
    # a word processor's junk title: the first heading is the real one
    report = pdf_document(
        REPORT,
        header="Harbour Authority · Annual Report 2023",
        footer="- {n} -",
        metadata_title="Microsoft Word - annual_report_2023_FINAL_v3.docx",
    )
    write("annual-report.pdf", report, REPORT.expected())
    write("annual-report-columns.pdf", two_column_pdf(REPORT), REPORT.expected())
    briefing = pdf_document(BRIEFING, header=None, footer="{n}", metadata_title=None, page_format=(105, 148), size=9)
    write("council-briefing.pdf", without_creation_date(briefing), BRIEFING.expected())
    write("scanned-letter.pdf", scanned_pdf())
    write("encrypted.pdf", encrypted(release, user_password="reader-secret", algorithm="RC4-128"))
    # permissions only (no password to open), as many published PDFs are: it loads like any other
    write(
        "copy-protected.pdf",
        encrypted(release, user_password="", algorithm="AES-256"),
        PRESS_RELEASE.expected(),
    )
    write("truncated.pdf", report[: len(report) * 2 // 3])
    write(
        "statement.docx",
        docx_document(STATEMENT, core_title=True, header="Harbour Council · Press statement", page_field=True),
        STATEMENT.expected(),
    )
    # no title in the core properties: the Title-styled first heading is used
    write(
        "museum-newsletter.docx",
        docx_document(NEWSLETTER, core_title=False, header="Maritime Museum newsletter", page_field=True),
        NEWSLETTER.expected(),
    )
    statement = (OUT / "statement.docx").read_bytes()
    write("corrupt.docx", statement[: len(statement) // 2])
    for path in sorted(OUT.iterdir()):
        print(f"{path.name:36} {path.stat().st_size:>8,} bytes")


if __name__ == "__main__":
    main()
