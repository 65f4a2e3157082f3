"""Every loader on real files, including the bad inputs that must fail alone with a reason."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from conftest import SEED_ARTICLE, SEED_JSONL

from ingest.loaders import LoadFailure, load_jsonl
from ingest.models import Article
from ingest.sources import load_sources

HTML = """<!doctype html><html><head>
<title>Bridge reopens after repairs | Harbour Gazette</title>
<link rel="canonical" href="https://gazette.example/news/bridge-reopens">
<meta property="og:site_name" content="Harbour Gazette">
<meta name="author" content="Dana Reyes">
<meta property="article:published_time" content="2024-03-05T08:00:00Z">
</head><body>
<nav><a href="/">Home</a> <a href="/sport">Sport</a></nav>
<article><h1>Bridge reopens after repairs</h1>
<p>The Old Harbour Bridge reopened to traffic on Tuesday after eight months of repairs that cost the city
4.2 million dollars, officials said at a ceremony attended by several hundred residents.</p>
<p>Engineers replaced the corroded steel cables and resurfaced the deck, and the mayor said the bridge
would now carry heavier lorries than before the closure began last July.</p>
</article>
<aside class="related"><a href="/x">Related: Ten things to do this weekend</a></aside>
<footer>Copyright 2024 Harbour Gazette</footer>
</body></html>"""


def load(*paths: Path | str) -> tuple[list[Article], list[LoadFailure]]:
    results = list(load_sources([str(p) for p in paths]))
    return [r for r in results if isinstance(r, Article)], [r for r in results if isinstance(r, LoadFailure)]


def test_text_seed_first_line_is_title() -> None:
    articles, failures = load(SEED_ARTICLE)
    assert not failures
    (article,) = articles
    assert article.title == "Jack Dorsey called Ilhan Omar after Trump tweet that prompted death threats: report"
    assert article.text.startswith("Twitter CEO Jack Dorsey reportedly called Rep. Ilhan Omar (D-Minn.)")
    assert article.path == str(SEED_ARTICLE) and article.url is None and article.id.startswith("c-")


def test_markdown_with_front_matter(tmp_path: Path) -> None:
    md = tmp_path / "note.md"
    md.write_text(
        "---\nsource: The Hill\ndate: 2019-04-16\nurl: https://thehill.example/a\n---\n# Heading\n\nBody text here.\n"
    )
    (article,), _ = load(md)
    assert (article.title, article.source, article.url) == ("Heading", "The Hill", "https://thehill.example/a")
    assert article.published_at is not None and article.published_at.date().isoformat() == "2019-04-16"
    assert article.text == "Body text here."


def test_a_title_in_front_matter_leaves_the_whole_body_as_text(tmp_path: Path) -> None:
    """The lead paragraph is text, not a second title: it was dropped when the first line was always the title."""
    md = tmp_path / "lead.md"
    md.write_text(
        "---\n"
        "title: 'Storm closes the port: ferries cancelled'\n"  # quoted YAML: the colon is part of the title
        "author: [Dana Reyes, Sam Okafor]\n"
        "published_at: 2019-04-16T08:30:00Z\n"
        "draft: yes\n"
        "---\n"
        "The port closed on Tuesday as the storm arrived.\n\nFerries will resume on Friday.\n"
    )
    repeated = tmp_path / "repeated.md"
    repeated.write_text("---\ntitle: Storm warning\n---\n# Storm warning\n\nThe warning lasts until noon.\n")
    (lead, again), failures = load(md, repeated)
    assert not failures
    assert lead.title == "Storm closes the port: ferries cancelled" and lead.author == "Dana Reyes, Sam Okafor"
    assert lead.text == "The port closed on Tuesday as the storm arrived.\n\nFerries will resume on Friday."
    assert lead.published_at is not None and lead.published_at.hour == 8
    assert (again.title, again.text) == ("Storm warning", "The warning lasts until noon.")


def test_front_matter_is_yaml_or_a_clear_failure(tmp_path: Path) -> None:
    broken = tmp_path / "broken.md"
    broken.write_text("---\ntitle: [unclosed\n---\nBody.\n")
    rule = tmp_path / "rule.md"  # a Markdown rule, then prose: not a mapping, so not front matter
    rule.write_text("---\nJust a line between rules\n---\nTitle line\n\nBody text.\n")
    (article,), (failure,) = load(broken, rule)
    assert failure.source == str(broken) and failure.reason.startswith("front matter is not valid YAML")
    assert (article.title, article.text) == ("---", "Just a line between rules --- Title line\n\nBody text.")


def test_paths_are_stored_absolute_however_the_file_was_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "news").mkdir()
    story = tmp_path / "news" / "story.txt"
    story.write_text("Story\n\nThe news itself.")
    (tmp_path / "link.txt").symlink_to(story)
    monkeypatch.chdir(tmp_path)
    spellings = ["news/story.txt", "./news/../news/story.txt", str(story), "link.txt", "news"]
    articles, _ = load(*spellings)
    assert [a.path for a in articles] == [str(story)] * len(spellings)


def test_jsonl_records_carry_metadata() -> None:
    articles, failures = load(SEED_JSONL)
    assert not failures and len(articles) == 37
    first = articles[0]
    assert first.source == "Wikinews" and first.url and first.url.startswith("https://en.wikinews.org/")
    assert first.published_at is not None and first.id.startswith("u-")


def test_html_extracts_main_text_and_metadata(tmp_path: Path) -> None:
    page = tmp_path / "bridge.html"
    page.write_text(HTML)
    (article,), failures = load(page)
    assert not failures
    assert article.title == "Bridge reopens after repairs"
    assert article.url == "https://gazette.example/news/bridge-reopens"
    assert article.source == "Harbour Gazette" and article.author == "Dana Reyes"
    assert article.published_at is not None and article.published_at.year == 2024
    assert "4.2 million dollars" in article.text
    assert article.text.startswith("The Old Harbour Bridge") and article.text.count("\n\n") == 1
    assert "Ten things to do" not in article.text and "Sport" not in article.text


def test_json_file_with_list_and_body_field(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text(
        json.dumps(
            [
                {"title": "T1", "body": "Body one is here.", "published_at": "2020-01-02"},
                {"title": "T2", "text": "Body two is here.", "outlet": "Daily"},
            ]
        )
    )
    articles, failures = load(path)
    assert not failures and [a.title for a in articles] == ["T1", "T2"] and articles[1].source == "Daily"


def test_bad_inputs_fail_alone_with_path_and_reason(tmp_path: Path) -> None:
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "good.txt").write_text("Good title\n\nA perfectly good article body.")
    (folder / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (folder / "empty.md").write_text("")
    (folder / "latin1.txt").write_bytes("Caf\xe9 title\n\nna\xefve".encode("latin-1"))
    (folder / "records.jsonl").write_text(
        json.dumps({"title": "Fine", "text": "A fine record."})
        + "\n{not json\n"
        + json.dumps({"title": "No text"})
        + "\n"
    )
    (folder / "notes.odt").write_text("ignored: unknown types inside folders are skipped")
    (folder / "notes.docx").write_text("not a Word file at all")
    (folder / "dangling.txt").symlink_to(folder / "missing.txt")
    (tmp_path / "x.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "x.odt").write_bytes(b"PK")
    articles, failures = load(folder, tmp_path / "nope.txt", tmp_path / "x.pdf", tmp_path / "x.odt")
    assert sorted(a.title for a in articles) == ["Fine", "Good title"]
    reasons = {
        Path(f.source.split(":")[0]).name + (":" + f.source.split(":")[1] if ":" in f.source else ""): f.reason
        for f in failures
    }
    assert reasons["binary.txt"] == "binary file, not text"
    assert reasons["empty.md"] == "empty file"
    assert reasons["latin1.txt"].startswith("not UTF-8 text")
    assert reasons["records.jsonl:2"].startswith("malformed JSON")
    assert reasons["records.jsonl:3"] == "record has no 'text' or 'body'"
    assert reasons["nope.txt"] == "no such file or directory"
    assert reasons["notes.docx"].startswith("damaged Word file")
    assert reasons["x.pdf"] == "truncated or damaged PDF: no end-of-file marker"
    assert reasons["x.odt"].startswith("unsupported file type '.odt'") and ".docx" in reasons["x.odt"]
    assert "notes.odt" not in reasons


def test_jsonl_is_read_line_by_line(tmp_path: Path) -> None:
    """Records come out while the file is still being written (a pipe): nothing waits for the whole file."""
    pipe = tmp_path / "records.jsonl"
    os.mkfifo(pipe)
    second_line_may_go = threading.Event()

    def writer() -> None:
        with pipe.open("w") as out:
            out.write(json.dumps({"title": "First", "text": "The first record of a long dump."}) + "\n")
            out.flush()
            if second_line_may_go.wait(timeout=10):  # else the reader waited for the end: no second record
                out.write(json.dumps({"title": "Second", "text": "The second record."}) + "\n")

    thread = threading.Thread(target=writer)
    thread.start()
    records = load_jsonl(pipe)
    first = next(records)
    assert isinstance(first, Article) and first.title == "First"  # read before the second line exists
    second_line_may_go.set()
    assert [a.title for a in records if isinstance(a, Article)] == ["Second"]
    thread.join()


def test_jsonl_lines_fail_alone_and_only_newlines_end_a_record(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    separated = json.dumps({"title": "Line\u2028separator", "text": "Para one.\u2029Para two."}, ensure_ascii=False)
    path.write_bytes(
        separated.encode()
        + b"\n"
        + b'{"title": "Caf\xe9", "text": "latin-1 bytes"}\n'
        + b'{"title": "Last", "text": "ok"}\n'
    )
    articles, failures = load(path)
    assert [a.title for a in articles] == ["Line\u2028separator", "Last"]
    assert [(f.source, f.reason.split(" (")[0]) for f in failures] == [(f"{path}:2", "not UTF-8 text")]


def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    # /proc/self/mem refuses a plain read with EIO, even to root: a real unreadable file.
    path = tmp_path / "unreadable.txt"
    path.symlink_to("/proc/self/mem")
    _, (failure,) = load(path)
    assert failure.source == str(path.resolve()) and failure.reason.startswith("cannot read:")


def test_folder_documentation_is_skipped_but_loadable_by_name(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# About this folder\n\nNotes for people, not news.")
    (tmp_path / ".hidden.txt").write_text("Hidden\n\nNot news either.")
    (tmp_path / "story.txt").write_text("Story\n\nThe news itself.")
    articles, _ = load(tmp_path)
    assert [a.title for a in articles] == ["Story"]
    articles, _ = load(tmp_path / "README.md")
    assert [a.title for a in articles] == ["About this folder"]
