"""Hostile inputs fail alone: each bad file or record is reported with its path (and line), and the good articles
given in the same command go in (issue 10: one record nested 1,000 levels deep used to lose 42 good articles).

The size limit is proved with a small `ingest.max_article_bytes` (set through its environment variable); one
check runs at the real default on a sparse 50 MB file, which costs no disk and no reading.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.app import Byline
from bot.settings import load_settings
from ingest import sources
from ingest.config import DEFAULT_MAX_ARTICLE_BYTES
from ingest.embedding import Embedder
from ingest.loaders import LoadResult, make_article
from ingest.models import Article

LIMIT = 64_000
GOOD = 42


def good_record(n: int) -> dict[str, str]:
    return {
        "title": f"Harbour notice {n}",
        "url": f"https://gazette.example/notices/{n}",
        "text": f"Notice {n}: the harbour office will repaint berth {n} on day {n} of the month, "
        "and ships are asked to moor elsewhere while the work goes on.",
    }


def deep_json(depth: int) -> str:
    return '{"title": "Deep", "text": ' + "[" * depth + "]" * depth + "}"


@pytest.fixture
def limited(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Byline:
    """A Byline on a fresh home whose size limit comes from BYLINE_INGEST_MAX_ARTICLE_BYTES."""
    monkeypatch.setenv("BYLINE_INGEST_MAX_ARTICLE_BYTES", str(LIMIT))
    settings = load_settings()
    assert settings.ingest.max_article_bytes == LIMIT
    return Byline(settings, embedder=embedder)


def hostile_folder(root: Path) -> dict[str, str]:
    """Writes the hostile files (and the good ones) under `root`; returns what each failure must name -> reason."""
    root.mkdir()
    lines = [json.dumps(good_record(n)) for n in range(GOOD - 2)]
    lines.insert(5, deep_json(1_000))
    lines.insert(9, json.dumps({"title": "Huge", "text": "x " * LIMIT}))
    lines.insert(12, "\x00\x01 not json")
    (root / "records.jsonl").write_text("\n".join(lines) + "\n")
    (root / "deep.json").write_text(deep_json(5_000))
    (root / "collection.json").write_text(
        json.dumps([{"title": f"Notice {n}", "text": "x " * 100} for n in range(LIMIT // 150)])
    )
    (root / "one-line.txt").write_text("word " * (LIMIT // 4))  # one line over the limit
    (root / "title-and-body.txt").write_text("A title line\n\n" + "Body text goes on. " * (LIMIT // 10))
    (root / "binary.md").write_bytes(bytes(range(256)) * 64)
    (root / "deep-front-matter.md").write_text("---\ntitle:\n" + "- " * 900 + "x\n---\nTitle\n\nBody.\n")
    (root / "laughs.md").write_text(  # the billion laughs: aliases of aliases, which nothing expands
        "---\na: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
        + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
        + "title: *i\nauthor: *i\n---\nLaughs\n\nThe lead paragraph survives the front matter.\n"
    )
    deep_html = "<html><body>" + "<div>" * 5_000 + "<p>Deep.</p>" + "</div>" * 5_000 + "</body></html>"
    (root / "deep.html").write_text(deep_html)
    (root / "good-one.txt").write_text("Ferry timetable\n\nThe summer ferry timetable starts on the first of June.")
    (root / "good-two.md").write_text("---\ntitle: Lighthouse\n---\nThe lighthouse reopens to visitors in May.\n")
    return {
        f"records.jsonl:{6}": "nested too deeply to read",
        f"records.jsonl:{10}": f"too large: {len(lines[9]):,} bytes, limit {LIMIT:,}",
        f"records.jsonl:{13}": "malformed JSON",
        "deep.json": "nested too deeply to read",
        "collection.json": "too large:",
        "one-line.txt": "too large:",
        "title-and-body.txt": "too large:",
        "binary.md": "binary file, not text",
        "deep-front-matter.md": "nested too deeply to read",
    }


def test_every_hostile_file_fails_alone_and_the_good_articles_go_in(limited: Byline, tmp_path: Path) -> None:
    expected = hostile_folder(tmp_path / "in")
    report = limited.ingest([str(tmp_path / "in")])
    failures = {f.source.removeprefix(str(tmp_path / "in") + "/"): f.reason for f in report.failed}
    assert set(failures) == set(expected) | {"deep.html"}, failures
    for where, reason in expected.items():
        assert failures[where].startswith(reason), (where, failures[where])
    assert failures["collection.json"].endswith("many articles go in a .jsonl file, one a line (the limit is per line)")
    assert "no article text" in failures["deep.html"]  # lxml stops at its depth limit: nothing left to read
    assert report.added == GOOD + 1  # the good records and files, and the file whose front matter laughs
    titles = {row[0] for row in limited.catalog.fetch("SELECT title FROM articles")}
    assert {"Ferry timetable", "Lighthouse", "Laughs", "Harbour notice 0", f"Harbour notice {GOOD - 3}"} <= titles


def test_a_failure_in_the_middle_of_a_file_keeps_what_came_before_and_the_next_file(
    byline: Byline, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a loader raises (a MemoryError from a hostile file, say) fails that file, named; the next file is
    read. A real MemoryError needs a real hostile file and gigabytes; here a loader raises it."""

    def exhausting(path: Path, *, max_bytes: int) -> Iterator[LoadResult]:
        yield make_article(title="Before", text="Read before the loader ran out of memory.", path=str(path))
        raise MemoryError

    monkeypatch.setitem(sources.FILE_LOADERS, ".boom", exhausting)
    (tmp_path / "a.boom").write_text("")
    (tmp_path / "b.txt").write_text("After\n\nThe next file is read all the same.")
    report = byline.ingest([str(tmp_path / "a.boom"), str(tmp_path / "b.txt")])
    assert [(f.source, f.reason) for f in report.failed] == [(str(tmp_path / "a.boom"), "too large to hold in memory")]
    assert report.added == 2


def test_control_characters_and_a_late_nul_never_reach_answers(byline: Byline, tmp_path: Path) -> None:
    """A NUL after the first 8 KB passes the binary check (it looks at the start only); cleaning removes it, as
    it removes terminal escapes and lone surrogates (a JSON record can spell one)."""
    filler = "The harbour board met again and discussed the weather at length. " * 140  # past 8 KB
    (tmp_path / "late-nul.txt").write_text(
        f"Board minutes\n\n{filler}\n\nThe dredger Mar\x00jorie will \x1b[2Jclear the channel by 3 June."
    )
    (tmp_path / "surrogate.jsonl").write_text(
        '{"title": "Quay \\ud800 works", "text": "The quay works end in \\udfffOctober.\\u0007"}\n'
    )
    report = byline.ingest([str(tmp_path / "late-nul.txt"), str(tmp_path / "surrogate.jsonl")])
    assert (report.added, report.failed) == (2, [])
    stored = "".join(row[0] for row in byline.catalog.fetch("SELECT text FROM chunks"))
    assert "Marjorie will [2Jclear the channel" in stored and "quay works end in October." in stored
    answer = byline.ask("When will the dredger Marjorie clear the channel?")
    shown = answer.text + "".join(c.quote + c.title for c in answer.citations)
    assert "3 June" in shown and not any(ord(ch) < 32 and ch not in "\n\t" for ch in shown)
    assert "Quay works" in {row[0] for row in byline.catalog.fetch("SELECT title FROM articles")}


def test_a_50_mb_file_is_refused_at_the_default_limit_before_reading(byline: Byline, tmp_path: Path) -> None:
    """A sparse file: 50 MB by its size, none of it written or read."""
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as out:
        out.truncate(50_000_000)
    good = tmp_path / "good.txt"
    good.write_text("Pier repairs\n\nThe pier repairs finish this week.")
    report = byline.ingest([str(huge), str(good)])
    assert report.added == 1
    assert [(f.source, f.reason) for f in report.failed] == [
        (str(huge), f"too large: 50,000,000 bytes, limit {DEFAULT_MAX_ARTICLE_BYTES:,} (ingest.max_article_bytes)")
    ]


def test_a_jsonl_line_over_the_limit_is_skipped_without_being_held(tmp_path: Path) -> None:
    """The line is read in pieces and dropped: the records after it still load, with their own line numbers."""
    path = tmp_path / "dump.jsonl"
    huge = '{"title": "Huge", "text": "' + "y" * 3 * LIMIT + '"}'
    with path.open("w") as out:
        out.write(json.dumps(good_record(1)) + "\n" + huge + "\n")
        out.write("\n" + json.dumps(good_record(2)))  # a blank line, and no newline at the end
    results = list(sources.load_sources([str(path)], max_bytes=LIMIT))
    assert [r.title if isinstance(r, Article) else (r.source, r.reason) for r in results] == [
        "Harbour notice 1",
        (f"{path}:2", f"too large: {len(huge):,} bytes, limit {LIMIT:,} (ingest.max_article_bytes)"),
        "Harbour notice 2",
    ]


def test_the_size_limit_counts_a_line_or_file_exactly(tmp_path: Path) -> None:
    """At the limit is in; one byte over is out (a line's newline does not count)."""
    record = json.dumps({"title": "Edge", "text": "z" * 2_000})
    size = len(record)
    path = tmp_path / "edge.jsonl"
    path.write_text(record + "\n" + record)
    at_limit = list(sources.load_sources([str(path)], max_bytes=size))
    assert [type(r).__name__ for r in at_limit] == ["Article", "Article"]
    over = list(sources.load_sources([str(path)], max_bytes=size - 1))
    assert [r.reason.split(":")[0] for r in over if not isinstance(r, Article)] == ["too large", "too large"]
    text = tmp_path / "edge.txt"
    text.write_text("t" * 1_500)
    assert isinstance(next(sources.load_sources([str(text)], max_bytes=1_500)), Article)
    assert not isinstance(next(sources.load_sources([str(text)], max_bytes=1_499)), Article)
    assert text.stat().st_size == 1_500
