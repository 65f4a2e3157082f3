"""Text quality of the PDF and Word loaders on tests/data/documents: `python tests/bench_documents.py`.

For each document with a `.expected.json` (written by tests/data/make_documents.py from the text it typeset),
prints word-level recall and precision of the extracted body against the source paragraphs (as multisets of
words, so order is not scored), paragraphs matched exactly, furniture lines left (lines of the running heads
and page numbers found in the body), whether title, author and date are right, and the load time. For PDFs, a
second line gives the same for pypdf's plain text of all pages (no furniture removal, no hyphen joining).
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path

from ingest.documents import load_docx, load_pdf
from ingest.models import Article

DOCUMENTS = Path(__file__).resolve().parent / "data" / "documents"
# What the generator prints as page furniture; none of it may reach an article body.
FURNITURE = re.compile(
    r"Page \d+ of \d+|- \d+ -|Press Office ·|· Annual Report 2023"
    r"|Annual Report 2023\s+\|\s+\d|\d\s+\|\s+Harbour Authority"
)


def words(text: str) -> Counter[str]:
    return Counter(re.findall(r"\w+(?:[-'’.,]\w+)*", text.casefold()))


def plain_pypdf(path: Path) -> str:
    from pypdf import PdfReader

    reader = PdfReader(path)
    if reader.is_encrypted:
        reader.decrypt("")
    return "\n".join(page.extract_text() for page in reader.pages)


def main() -> None:
    totals = Counter[str]()
    print(f"{'document':28} {'recall':>7} {'precision':>9} {'paragraphs':>10} {'furniture':>9}  meta  ms")
    for expected_file in sorted(DOCUMENTS.glob("*.expected.json")):
        expected = json.loads(expected_file.read_text())
        stem = expected_file.name.removesuffix(".expected.json")
        path = next(p for p in DOCUMENTS.glob(f"{stem}.*") if p.suffix in (".pdf", ".docx"))
        started = time.perf_counter()
        result = next((load_pdf if path.suffix == ".pdf" else load_docx)(path))
        elapsed = (time.perf_counter() - started) * 1000
        assert isinstance(result, Article), result
        got, want = words(result.text), words("\n".join(expected["paragraphs"]))
        common = sum((got & want).values())
        paragraphs = result.text.split("\n\n")
        exact = sum(p in paragraphs for p in expected["paragraphs"])
        furniture = len(FURNITURE.findall(result.text))
        meta = (
            result.title == expected["title"],
            result.author == expected["author"],
            (result.published_at.isoformat() if result.published_at else None) == expected["date"],
        )
        totals.update(common=common, got=sum(got.values()), want=sum(want.values()), furniture=furniture)
        totals.update(exact=exact, paragraphs=len(expected["paragraphs"]), meta=sum(meta), fields=3)
        print(
            f"{path.name:28} {common / sum(want.values()):7.3f} {common / sum(got.values()):9.3f} "
            f"{exact:>4}/{len(expected['paragraphs']):<5} {furniture:>9}  {sum(meta)}/3  {elapsed:4.0f}"
        )
        if path.suffix == ".pdf":
            raw_text = plain_pypdf(path)
            raw = words(raw_text)
            shared = sum((raw & want).values())
            print(
                f"{'  pypdf plain text':28} {shared / sum(want.values()):7.3f} {shared / sum(raw.values()):9.3f} "
                f"{'':10} {len(FURNITURE.findall(raw_text)):>9}"
            )
    print(
        f"{'all':28} {totals['common'] / totals['want']:7.3f} {totals['common'] / totals['got']:9.3f} "
        f"{totals['exact']:>4}/{totals['paragraphs']:<5} {totals['furniture']:>9}  {totals['meta']}/{totals['fields']}"
    )


if __name__ == "__main__":
    main()
